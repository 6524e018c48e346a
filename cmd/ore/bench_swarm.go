package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // --pprof
	"os"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// swarmReport is `ore bench swarm --json`: the same flash crowd with heat
// scheduling off and on, in one run.
type swarmReport struct {
	Off testnet.SwarmResult `json:"scheduling_off"`
	On  testnet.SwarmResult `json:"scheduling_on"`
}

// swarmUsage explains what the bench models.
const swarmUsage = `usage: ore bench swarm [flags]

An origin box publishes a file; a crowd of boxes in this process requests
it within --ramp (a flash crowd). Figures: the origin's upload over the
file's size, the crowd's completion time over one box fetching alone, the
replicas before and after; with heat scheduling off and on, in one run.

Every box's upload is capped at --upload (default 2 MiB/s, ~17 Mbit/s: the
upstream of a home cable or DSL line, where boxes live; 2-5 MiB/s is
typical). The crowd is then bound by its uplinks, as a real one is, and
not by this machine's cores moving every byte of every box at once; with
a cap far above what the cores can move (16 MiB/s on 2 cores) the figures
measure the test rig. One box alone takes size/upload; a crowd can at best
finish in about the same time, the origin's upload spent once and the
crowd trading the rest.

The boxes talk over loopback TCP (--quic: QUIC too), or with --mocknet over
go-libp2p's in-memory network: no sockets, so the per-process file limit
does not cap the crowd (--boxes 150 and more start that way; add
--small-memory), and no kernel TCP or encryption cost on the cores.

`

func benchSwarm(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench swarm", "[flags]")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, swarmUsage)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	boxes := fs.Int("boxes", 50, "boxes in the flash crowd")
	sizeFlag := fs.String("size", "64MiB", "bytes of the published file")
	upFlag := fs.String("upload", "2MiB", "upload limit of every box, per second (a home uplink; see above)")
	spread := fs.Duration("spread", node.DefaultSpreadHold, "a block a box seeds leaves it at most once per this while the crowd asks (0: as often as asked)")
	ramp := fs.Duration("ramp", 5*time.Second, "the crowd's requests arrive evenly over this")
	epoch := fs.Duration("epoch", time.Second, "ledger epoch (the committee plans once per epoch)")
	only := fs.String("scheduling", "both", "run with scheduling off, on, or both")
	prewarm := fs.Int("prewarm", 0, "with scheduling on, the publisher pre-warms this many replicas before the crowd (0: none)")
	small := fs.Bool("small-memory", false, "every box with the small-memory profile (for hundreds of boxes)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the crowd's fetches to this file (with --scheduling both, the last mode's)")
	receipts := fs.Bool("receipts", true, "proof of delivery on (off: to measure what it costs)")
	mock := fs.Bool("mocknet", false, "run the boxes on go-libp2p's in-memory mocknet (no sockets: for hundreds of boxes) instead of loopback TCP")
	latency := fs.Duration("latency", 0, "with --mocknet, every link's one-way delay")
	quic := fs.Bool("quic", false, "boxes listen on QUIC too (default TCP: many QUIC hosts in one process throttle each other)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address while the bench runs (goroutine dumps of a stalled crowd: /debug/pprof/goroutine?debug=1)")
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
	up, err := sizeArg("upload", *upFlag, "2MiB (bytes per second)")
	if err != nil {
		return err
	}
	if *boxes < 2 || *epoch < 100*time.Millisecond {
		return fmt.Errorf("%w: need at least 2 boxes and epochs of 100ms or more", errUsage)
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("bench swarm: --pprof: %w", err)
		}
		defer ln.Close()
		go http.Serve(ln, nil) //nolint:errcheck // ends when ln closes
		fmt.Fprintf(e.stderr, "bench swarm: pprof on http://%s/debug/pprof/\n", ln.Addr())
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
	var (
		rep    swarmReport
		failed []error
	)
	for _, on := range modes {
		cfg := testnet.SwarmConfig{Boxes: *boxes, Size: int64(size), UploadLimit: int64(up), Ramp: *ramp, Epoch: *epoch, Scheduling: on, QUIC: *quic, Prewarm: *prewarm, SmallMemory: *small, SpreadHold: *spread, Mocknet: *mock, Latency: *latency, ReceiptsOff: !*receipts}
		if *spread == 0 {
			cfg.SpreadHold = -1
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			cfg.CPUProfile = f
		}
		if !*asJSON {
			cfg.Progress = func(s string) { fmt.Fprintf(e.stderr, "bench swarm: %s\n", s) }
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		res, err := testnet.BenchSwarm(rctx, cfg)
		cancel()
		if err != nil {
			// A crowd in which some fetches failed still measured the
			// others: show them, then fail.
			if res.Failed == 0 || res.Failed == res.Boxes {
				return fmt.Errorf("bench swarm (scheduling %v): %w", on, err)
			}
			failed = append(failed, fmt.Errorf("bench swarm (scheduling %v): %w", on, err))
		}
		if on {
			rep.On = res
		} else {
			rep.Off = res
		}
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(rep); err != nil {
			return err
		}
		return errors.Join(failed...)
	}
	fmt.Fprintf(e.stdout, "flash crowd of %d boxes for %s (upload %s/s per box, requests over %s, epochs of %s)\n",
		*boxes, humanize.IBytes(size), humanize.IBytes(up), *ramp, *epoch)
	fmt.Fprintf(e.stdout, "  %-34s %14s %14s\n", "", "scheduling off", "scheduling on")
	row := func(name string, f func(r testnet.SwarmResult) string) {
		fmt.Fprintf(e.stdout, "  %-34s %14s %14s\n", name, pick(rep.Off, modes, false, f), pick(rep.On, modes, true, f))
	}
	row("origin bytes / content size", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.2f", r.OriginRatio) })
	row("offload (bytes not from origin)", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.1f%%", r.Offload*100) })
	row("crowd bytes received / needed", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.2f", r.Received) })
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
	row("process CPU / cores (crowd)", func(r testnet.SwarmResult) string { return fmt.Sprintf("%.0f%%", 100*r.CPUShare) })
	row("crowd fetches failed", func(r testnet.SwarmResult) string { return fmt.Sprintf("%d", r.Failed) })
	fmt.Fprintln(e.stdout, "goals: origin ≤ 1.5× the size (≥ 97 % offload), crowd ≤ 3× one box")
	return errors.Join(failed...)
}

func pick(r testnet.SwarmResult, modes []bool, on bool, f func(testnet.SwarmResult) string) string {
	for _, m := range modes {
		if m == on {
			return f(r)
		}
	}
	return "-"
}
