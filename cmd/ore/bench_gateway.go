package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/testnet"
)

func benchGateway(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench gateway", "[flags]")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	small := fs.Int("requests", 200, "requests for the 1 MiB object")
	big := fs.Int("big-requests", 10, "requests for the 256 MiB object")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *small < 1 || *big < 1 {
		return fmt.Errorf("%w: request counts must be positive", errUsage)
	}
	if !*asJSON {
		fmt.Fprintln(e.stderr, "bench gateway: cached 1 MiB and 256 MiB objects, ore's gateway next to http.FileServer on the same bytes...")
	}
	figs, err := testnet.BenchGateway(ctx, []int64{1 << 20, 256 << 20}, []int{*small, *big})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"objects": figs})
	}
	for _, f := range figs {
		fmt.Fprintf(e.stdout, "%s object, %d requests each\n", humanize.IBytes(uint64(f.Bytes)), f.Requests)
		fmt.Fprintf(e.stdout, "  TTFB p50/p99   ore %.2f / %.2f ms   file server %.2f / %.2f ms   ratio %.2f\n",
			f.OreTTFBp50, f.OreTTFBp99, f.FileTTFBp50, f.FileTTFBp99, f.TTFBRatio)
		fmt.Fprintf(e.stdout, "  throughput     ore %.0f MB/s   file server %.0f MB/s   ratio %.2f\n", f.OreMBps, f.FileMBps, f.ThroughputRat)
	}
	return nil
}
