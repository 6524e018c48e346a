package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/orecdn/ore/testnet"
)

const benchLedgerHelp = `usage: ore bench ledger [flags]

A committee of coordinators (--members: 3 under the majority rule, 4 or 5
under byzantine-safe finality, two voting steps per block) and a publisher
box run in this process on loopback. The publisher gossips a paced stream of countersigned receipts;
the bench measures how fast they land in final blocks (receipts/s) and how
long each takes from publish to final block (p50, p99, in epochs). A
receipt's latency starts at its time in the paced schedule, so a publisher
that falls behind the schedule shows in the figures.

The nodes talk over TCP unless --quic. Four nodes share this machine's
cores, so their transport's CPU comes out of the committee's: QUIC (in
user space) costs more per byte than TCP, and a leader sending a block's
multi-megabyte Raft entry over QUIC while the cores are busy took up to
4.3 s to deliver it (measured with --blocks), where TCP took ~0.3 s.

`

func benchLedger(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench ledger", "[flags]")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, benchLedgerHelp)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	rate := fs.Int("rate", 20000, "receipts per second the publisher box offers")
	dur := fs.Duration("for", 20*time.Second, "how long the stream of receipts lasts")
	epoch := fs.Duration("epoch", 2*time.Second, "epoch length of the bench network (receipts more than 3 epochs old are refused)")
	useQUIC := fs.Bool("quic", false, "the nodes listen on QUIC too, which libp2p dials first (default: TCP only, as in bench swarm; see above)")
	perBlock := fs.Bool("blocks", false, "print each final block's times from the end of its epoch (built, final)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the stream and its blocks to this file")
	members := fs.Int("members", 4, "committee size: 3 (majority rule, 2 of 3 signatures), 4 or 5 (byzantine-safe: 3 of 4, 4 of 5 precommits)")
	tickets := fs.Bool("tickets", false, "a ledger of rules version 4: one ticket per client (64 receipts, one per server), every receipt paid under its client's ticket")
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
	if *members < 3 || *members > 5 {
		return fmt.Errorf("%w: --members must be 3, 4 or 5", errUsage)
	}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "bench ledger: %d coordinators and a publisher box in this process; signing %d receipts, then gossiping %d/s for %s...\n",
			*members, int(float64(*rate)*dur.Seconds()), *rate, *dur)
	}
	coordinatorGC() // the process runs coordinators: measure them as they run
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute+2**dur+10**epoch)
	defer cancel()
	cfg := testnet.LedgerConfig{Rate: *rate, Duration: *dur, Epoch: *epoch, Tickets: *tickets, Members: *members}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench ledger: %w", err)
		}
		defer pf.Close()
		cfg.CPUProfile = pf
	}
	var bopts []testnet.Option
	if !*useQUIC {
		bopts = append(bopts, testnet.WithTCPOnly())
	}
	f, err := testnet.BenchLedger(ctx, cfg, bopts...)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(f)
	}
	fmt.Fprintf(e.stdout, "committee of %d, finality rule %d; %d receipts offered at %.0f/s, published at %.0f/s\n", f.Members, f.Finality, f.Receipts, f.OfferedRate, f.PublishedPer)
	fmt.Fprintf(e.stdout, "finalized: %d of %d, %.0f receipts/s from the first publish to the last of %d blocks (%.2fs)\n",
		f.Final, f.Receipts, f.FinalizedPerSec, f.Blocks, f.Seconds)
	if f.SteadyPerSec > 0 {
		fmt.Fprintf(e.stdout, "steady: %.0f receipts/s finalized by the blocks of whole epochs (all but the first and the last)\n", f.SteadyPerSec)
	}
	if f.Final < f.Receipts {
		fmt.Fprintf(e.stdout, "overloaded: %d receipts not final, %d of them never published (the publisher fell 3 epochs behind); lower --rate to find what the process sustains\n", f.Receipts-f.Final, f.Stale)
	}
	fmt.Fprintf(e.stdout, "latency publish → final block: p50 %.2fs, p99 %.2fs (%.2f epochs of %.0fs)\n", f.P50Seconds, f.P99Seconds, f.P99Epochs, f.EpochSeconds)
	if *perBlock {
		for _, b := range f.PerBlock {
			fmt.Fprintf(e.stdout, "block %d: epoch %d, %d receipts, built %+.2fs and final %+.2fs from the epoch's end\n",
				b.Height, b.Epoch, b.Receipts, b.Built, b.Final)
		}
	}
	fmt.Fprintf(e.stdout, "process CPU: %.1f µs per receipt (%d nodes, 2 signatures each)\n", f.CPUPerReceipt, f.Members+1)
	if f.Tickets > 0 {
		fmt.Fprintf(e.stdout, "rules 4: every receipt paid under one of %d tickets (one per client), handed to the ledger before the stream\n", f.Tickets)
	}
	_, why := f.Goal()
	fmt.Fprintf(e.stdout, "goal (≥ %d receipts/s final, p99 ≤ %.0f epochs): %s\n", testnet.GoalRate, testnet.GoalP99Epochs, why)
	return nil
}
