package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orecdn/ore/testnet"
)

func benchLedger(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench ledger", "[flags]")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	n := fs.Int("receipts", 20000, "receipts to gossip")
	epoch := fs.Duration("epoch", 10*time.Second, "epoch length of the bench network (receipts older than 3 epochs are refused)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *n < 64 || *epoch < time.Second {
		return fmt.Errorf("%w: need at least 64 receipts and 1s epochs", errUsage)
	}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "bench ledger: 3 coordinators and a publisher box in this process, %d receipts gossiped...\n", *n)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute+10**epoch)
	defer cancel()
	f, err := testnet.BenchLedger(ctx, *n, *epoch)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(f)
	}
	fmt.Fprintf(e.stdout, "%d receipts final in %d blocks in %.2fs: %.0f receipts/s\n", f.Receipts, f.Blocks, f.Seconds, f.ReceiptsPerSec)
	fmt.Fprintf(e.stdout, "latency publish → final block: p50 %.2fs, p99 %.2fs (%.2f epochs of %.0fs)\n", f.P50Seconds, f.P99Seconds, f.P99Epochs, f.EpochSeconds)
	return nil
}
