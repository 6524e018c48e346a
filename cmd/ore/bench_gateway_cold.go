package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/testnet"
)

// coldTTFBGoal and coldLeafGoal are the cache-miss goals: the first byte
// within 50 ms of the request, and within twice the time the network takes
// to deliver the file's first leaf.
const (
	coldTTFBGoal = 50.0
	coldLeafGoal = 2.0
)

func benchGatewayCold(ctx context.Context, e *env, rounds int, asJSON bool) error {
	if rounds < 1 {
		return fmt.Errorf("%w: --rounds must be positive", errUsage)
	}
	var progress func(string)
	if !asJSON {
		fmt.Fprintf(e.stderr, "bench gateway --cold: a gateway fetching 1 MiB and 256 MiB objects from another box on loopback, %d new objects of each size...\n", rounds)
		progress = func(s string) { fmt.Fprintf(e.stderr, "  %s\n", s) }
	}
	figs, err := testnet.BenchGatewayCold(ctx, []int64{1 << 20, 256 << 20}, rounds, progress)
	if err != nil {
		return err
	}
	met := true
	for _, f := range figs {
		if f.Bytes >= 256<<20 {
			met = met && f.TTFBp50 <= coldTTFBGoal && f.LeafRatio <= coldLeafGoal
		}
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"cold": figs, "goal_met": met})
	}
	fmt.Fprintf(e.stdout, "cache misses on %d cores (the gateway box holds nothing of each object; another box on loopback does)\n", runtime.NumCPU())
	for _, f := range figs {
		fmt.Fprintf(e.stdout, "%s object, %d rounds\n", humanize.IBytes(uint64(f.Bytes)), f.Rounds)
		fmt.Fprintf(e.stdout, "  first byte of the body p50/p99   %.1f / %.1f ms\n", f.TTFBp50, f.TTFBp99)
		fmt.Fprintf(e.stdout, "  a fetch's first leaf p50/p99     %.1f / %.1f ms   first byte / first leaf %.2f\n", f.FirstLeafp50, f.FirstLeafp99, f.LeafRatio)
		fmt.Fprintf(e.stdout, "  whole object p50 %.0f ms (%.0f MB/s); 1 MB Range from the middle p50 %.1f ms\n", f.TotalP50, f.MBps, f.RangeP50)
	}
	verdict := "goal met"
	if !met {
		verdict = "goal NOT met"
	}
	fmt.Fprintf(e.stdout, "%s: 256 MiB cache miss, first byte ≤ %.0f ms and ≤ %.0f× the first leaf's time (p50)\n", verdict, coldTTFBGoal, coldLeafGoal)
	return nil
}
