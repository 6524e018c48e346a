package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orecdn/ore/ledger/committee"
)

const benchChaosHelp = `usage: ore bench chaos [--for 5m] [--seed N] [--json]

A committee of 4 coordinators (byzantine-safe finality) runs in this
process on loopback while receipts stream in (10 a second) and a fault
schedule drawn from --seed plays: kill and restart a coordinator, cut one
off and heal it, skew its clock an hour either way, make the leader
equivocate (a different block for every other member, votes for all of
them), cut the link between two members. One fault at a time: at most one
member is faulty, as a committee of 4 tolerates. Then everything heals and
the invariants are checked: one history (every member's final chain is
the same and verifies from genesis), one state hash, each receipt paid at
most once, supply conserved, no final block from the future. The last
line says whether all held.

The schedule is the same for a seed; its interleaving with the network's
timing is not. Receipts that wait longer than 3 epochs while a fault
stalls the committee expire unpaid: the bench reports how many were paid
in full, and checks that none was paid more than once.

`

func benchChaos(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench chaos", "[flags]")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, benchChaosHelp)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	dur := fs.Duration("for", 5*time.Minute, "how long the fault schedule runs")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()%1_000_000), "the schedule's seed (the same seed, the same schedule)")
	epoch := fs.Duration("epoch", 3*time.Second, "epoch length of the network")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *dur < 5*time.Second || *epoch < time.Second {
		return fmt.Errorf("%w: need --for ≥ 5s and --epoch ≥ 1s", errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, *dur+5*time.Minute)
	defer cancel()
	cfg := committee.ChaosConfig{Duration: *dur, Seed: *seed, Epoch: *epoch}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "bench chaos: 4 coordinators in this process, seed %d, faults for %s...\n", *seed, *dur)
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(e.stderr, "  "+format+"\n", args...) }
	}
	rep, err := committee.Chaos(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "seed %d: %d faults in %.0fs; height %d; %d round timeouts, %d equivocating votes seen; excluded members %v\n",
			rep.Seed, len(rep.Events), rep.Seconds, rep.Height, int(rep.RoundTimeouts), int(rep.Equivocations), rep.Excluded)
		fmt.Fprintf(e.stdout, "receipts: %d published, %d paid in full\n", rep.Receipts, rep.Paid)
		for _, inv := range rep.Invariants {
			mark := "held"
			if !inv.Held {
				mark = "BROKEN"
			}
			fmt.Fprintf(e.stdout, "%-32s %-6s %s\n", inv.Name, mark, inv.Detail)
		}
		if rep.AllHeld {
			fmt.Fprintf(e.stdout, "chaos seed %d: every invariant held\n", rep.Seed)
		} else {
			fmt.Fprintf(e.stdout, "chaos seed %d: an invariant was BROKEN\n", rep.Seed)
		}
	}
	if !rep.AllHeld {
		return fmt.Errorf("bench chaos: an invariant was broken (seed %d)", rep.Seed)
	}
	return nil
}
