package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/orecdn/ore/testnet"
)

func benchLedger(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench ledger", "[flags]")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	rate := fs.Int("rate", 20000, "receipts per second the publisher box offers")
	dur := fs.Duration("for", 20*time.Second, "how long the stream of receipts lasts")
	epoch := fs.Duration("epoch", 2*time.Second, "epoch length of the bench network (receipts more than 3 epochs old are refused)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the stream and its blocks to this file")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *rate < 1 || *dur < time.Second || *epoch < time.Second {
		return fmt.Errorf("%w: need --rate ≥ 1, --for ≥ 1s and --epoch ≥ 1s", errUsage)
	}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "bench ledger: 3 coordinators and a publisher box in this process; signing %d receipts, then gossiping %d/s for %s...\n",
			int(float64(*rate)*dur.Seconds()), *rate, *dur)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute+2**dur+10**epoch)
	defer cancel()
	cfg := testnet.LedgerConfig{Rate: *rate, Duration: *dur, Epoch: *epoch}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench ledger: %w", err)
		}
		defer pf.Close()
		cfg.CPUProfile = pf
	}
	f, err := testnet.BenchLedger(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(f)
	}
	fmt.Fprintf(e.stdout, "%d receipts offered at %.0f/s, published at %.0f/s\n", f.Receipts, f.OfferedRate, f.PublishedPer)
	fmt.Fprintf(e.stdout, "finalized: %d of %d, %.0f receipts/s from the first publish to the last of %d blocks (%.2fs)\n",
		f.Final, f.Receipts, f.FinalizedPerSec, f.Blocks, f.Seconds)
	if f.SteadyPerSec > 0 {
		fmt.Fprintf(e.stdout, "steady: %.0f receipts/s finalized by the blocks of whole epochs (all but the first and the last)\n", f.SteadyPerSec)
	}
	if f.Final < f.Receipts {
		fmt.Fprintf(e.stdout, "overloaded: %d receipts not final, %d of them never published (the publisher fell 3 epochs behind); lower --rate to find what the process sustains\n", f.Receipts-f.Final, f.Stale)
	}
	fmt.Fprintf(e.stdout, "latency publish → final block: p50 %.2fs, p99 %.2fs (%.2f epochs of %.0fs)\n", f.P50Seconds, f.P99Seconds, f.P99Epochs, f.EpochSeconds)
	fmt.Fprintf(e.stdout, "process CPU: %.1f µs per receipt (4 nodes, 2 signatures each)\n", f.CPUPerReceipt)
	return nil
}
