package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/orecdn/ore/testnet"
)

const benchFraudHelp = `usage: ore bench fraud [flags]

A 3-coordinator committee and two publisher boxes run in this process on
a ledger of rules version 4 (tickets). Colluding servers and clients sign
receipts that try to take more than the publishers authorized: inflated
bytes, sybil clients without tickets, one ticket spent through many
servers, an expired and a forged ticket, a replayed claim, a squatted
registration, a flood against a publisher's spending cap; honest traffic
runs alongside. For each, the bench prints the base units that moved and
what the rules allow; its last line says whether every row holds.

`

func benchFraud(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench fraud", "[flags]")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, benchFraudHelp)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	epoch := fs.Duration("epoch", 2*time.Second, "epoch length of the bench network")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *epoch < time.Second {
		return fmt.Errorf("%w: --epoch must be at least 1s", errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+30**epoch)
	defer cancel()
	cfg := testnet.FraudConfig{Epoch: *epoch}
	if !*asJSON {
		fmt.Fprintln(e.stderr, "bench fraud: 3 coordinators and 2 publishers in this process, rules version 4...")
		cfg.Log = func(format string, args ...any) { fmt.Fprintf(e.stderr, "  "+format+"\n", args...) }
	}
	f, err := testnet.BenchFraud(ctx, cfg, testnet.WithTCPOnly())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(f)
	}
	fmt.Fprintf(e.stdout, "root of %d bytes at %d base units per GiB (rules %d)\n", f.RootSize, f.Price, f.Rules)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\tmoved\tallowed\tholds\twhy")
	for _, r := range f.Rows {
		rule := "≤"
		if r.Exact {
			rule = "="
		}
		holds := "yes"
		if !r.Holds {
			holds = "NO"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s %d\t%s\t%s\n", r.Attack, r.Moved, rule, r.Allowed, holds, r.Detail)
	}
	_ = tw.Flush()
	if f.Holds {
		fmt.Fprintln(e.stdout, "every row holds: no attack moved more than its ticket or budget allows, honest traffic was paid to the byte")
	} else {
		fmt.Fprintln(e.stdout, "NOT every row holds: see the rows marked NO")
	}
	return nil
}
