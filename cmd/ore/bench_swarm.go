package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/testnet"
)

// swarmReport is `ore bench swarm --json`: the same flash crowd with heat
// scheduling off and on, in one run.
type swarmReport struct {
	Off testnet.SwarmResult `json:"scheduling_off"`
	On  testnet.SwarmResult `json:"scheduling_on"`
}

func benchSwarm(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench swarm", "[flags]")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	boxes := fs.Int("boxes", 50, "boxes in the flash crowd")
	sizeFlag := fs.String("size", "64MiB", "bytes of the published file")
	upFlag := fs.String("upload", "16MiB", "upload limit of every box, per second")
	ramp := fs.Duration("ramp", 5*time.Second, "the crowd's requests arrive evenly over this")
	epoch := fs.Duration("epoch", time.Second, "ledger epoch (the committee plans once per epoch)")
	only := fs.String("scheduling", "both", "run with scheduling off, on, or both")
	prewarm := fs.Int("prewarm", 0, "with scheduling on, the publisher pre-warms this many replicas before the crowd (0: none)")
	small := fs.Bool("small-memory", false, "every box with the small-memory profile (for hundreds of boxes)")
	quic := fs.Bool("quic", false, "boxes listen on QUIC too (default TCP: many QUIC hosts in one process throttle each other)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	size, err := sizeArg("size", *sizeFlag, "64MiB")
	if err != nil {
		return err
	}
	up, err := sizeArg("upload", *upFlag, "16MiB (bytes per second)")
	if err != nil {
		return err
	}
	if *boxes < 2 || *epoch < 100*time.Millisecond {
		return fmt.Errorf("%w: need at least 2 boxes and epochs of 100ms or more", errUsage)
	}
	var modes []bool
	switch *only {
	case "both":
		modes = []bool{false, true}
	case "off":
		modes = []bool{false}
	case "on":
		modes = []bool{true}
	default:
		return fmt.Errorf("%w: --scheduling %q: off, on or both", errUsage, *only)
	}
	var rep swarmReport
	for _, on := range modes {
		cfg := testnet.SwarmConfig{Boxes: *boxes, Size: int64(size), UploadLimit: int64(up), Ramp: *ramp, Epoch: *epoch, Scheduling: on, QUIC: *quic, Prewarm: *prewarm, SmallMemory: *small}
		if !*asJSON {
			cfg.Progress = func(s string) { fmt.Fprintf(e.stderr, "bench swarm: %s\n", s) }
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		res, err := testnet.BenchSwarm(rctx, cfg)
		cancel()
		if err != nil {
			return fmt.Errorf("bench swarm (scheduling %v): %w", on, err)
		}
		if on {
			rep.On = res
		} else {
			rep.Off = res
		}
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	fmt.Fprintf(e.stdout, "flash crowd of %d boxes for %s (upload %s/s per box, requests over %s, epochs of %s)\n",
		*boxes, humanize.IBytes(size), humanize.IBytes(up), *ramp, *epoch)
	fmt.Fprintf(e.stdout, "  %-34s %14s %14s\n", "", "scheduling off", "scheduling on")
	row := func(name string, f func(r testnet.SwarmResult) string) {
		fmt.Fprintf(e.stdout, "  %-34s %14s %14s\n", name, pick(rep.Off, modes, false, f), pick(rep.On, modes, true, f))
	}
	row("origin bytes / content size", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.2f", r.OriginRatio) })
	row("offload (bytes not from origin)", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.1f%%", r.Offload*100) })
	row("one box alone", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.2fs", r.SingleSeconds) })
	row("whole crowd", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.2fs", r.CrowdSeconds) })
	row("crowd / one box", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.1f", r.CrowdOverOne) })
	row("replicas before → after", func(r testnet.SwarmResult) string {
		return fmt.Sprintf("%d → %d", r.ReplicasBefore, r.ReplicasAfter)
	})
	row("of them under committee orders", func(r testnet.SwarmResult) string { return fmt.Sprintf("%d", r.Ordered) })
	row("pre-warmed before the crowd", func(r testnet.SwarmResult) string {
		if r.Prewarmed == 0 {
			return "-"
		}
		return fmt.Sprintf("%d in %.1fs", r.Prewarmed, r.PrewarmSeconds)
	})
	fmt.Fprintln(e.stdout, "goals: origin ≤ 1.5× the size (≥ 97 % offload), crowd ≤ 3× one box")
	return nil
}

func pick(r testnet.SwarmResult, modes []bool, on bool, f func(testnet.SwarmResult) string) string {
	for _, m := range modes {
		if m == on {
			return f(r)
		}
	}
	return "-"
}
