package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/testnet"
)

func benchGateway(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench gateway", "[flags]")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	small := fs.Int("requests", 200, "requests for the 1 MiB object")
	big := fs.Int("big-requests", 10, "requests for the 256 MiB object")
	cold := fs.Bool("cold", false, "cache misses instead: 1 MiB and 256 MiB objects another box holds, time to the first byte next to the time a fetch's first leaf takes")
	coldRounds := fs.Int("rounds", 10, "--cold: new objects of each size")
	abuse := fs.Bool("abuse", false, "the gateway under abuse instead: slow readers, a flood, huge-directory and deep-DAG requests, beside an honest client")
	var ac testnet.AbuseConfig
	fs.DurationVar(&ac.Duration, "for", time.Minute, "--abuse: how long the abuse lasts")
	fs.Float64Var(&ac.HonestRate, "honest-rate", 20, "--abuse: the honest client's requests per second (cached 1 MiB object)")
	fs.Float64Var(&ac.FloodRate, "flood-rate", 2000, "--abuse: flood requests per second, all flood addresses together (small cached objects; 0: no flood)")
	fs.IntVar(&ac.SlowClients, "slow-clients", 8, "--abuse: addresses of slow readers")
	fs.IntVar(&ac.SlowConns, "slow-conns", 64, "--abuse: slow connections per address")
	fs.IntVar(&ac.HeavyClients, "heavy-clients", 2, "--abuse: addresses asking for the huge directory and the deep DAG, 2 requests in flight each")
	fs.IntVar(&ac.DirEntries, "dir-entries", 100_000, "--abuse: entries of the huge directory")
	fs.IntVar(&ac.ChainDepth, "chain-depth", 10_000, "--abuse: dag-pb nodes in the deep chain")
	fs.IntVar(&ac.Gateway.MaxPerClient, "max-per-client", 0, "--abuse: the gateway's per-client cap (0: its default, 16; 512 takes it away)")
	fs.DurationVar(&ac.Gateway.WriteTimeout, "write-timeout", 0, "--abuse: the gateway's write deadline (0: its default, 30s)")
	fs.Float64Var(&ac.Gateway.MinSendRate, "min-send-rate", 0, "--abuse: the gateway's minimum send rate, bytes/s (0: its default, 1024; negative: none)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *abuse {
		return benchGatewayAbuse(ctx, e, ac, *asJSON)
	}
	if *cold {
		return benchGatewayCold(ctx, e, *coldRounds, *asJSON)
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

func benchGatewayAbuse(ctx context.Context, e *env, ac testnet.AbuseConfig, asJSON bool) error {
	if ac.Duration <= 0 || ac.HonestRate <= 0 || ac.FloodRate < 0 || ac.SlowClients < 0 || ac.SlowConns < 0 || ac.HeavyClients < 0 || ac.DirEntries < 1 || ac.ChainDepth < 1 {
		return fmt.Errorf("%w: --for, --honest-rate, --dir-entries and --chain-depth must be positive, --flood-rate and the client counts not negative", errUsage)
	}
	if ac.FloodRate == 0 {
		ac.FloodRate = -1 // no flood
	}
	if ac.SlowClients == 0 || ac.SlowConns == 0 {
		ac.SlowClients, ac.SlowConns = -1, -1 // no slow readers
	}
	if ac.HeavyClients == 0 {
		ac.HeavyClients = -1
	}
	if !asJSON {
		fmt.Fprintf(e.stderr, "bench gateway --abuse: a gateway on loopback, %s of abuse beside an honest client...\n", ac.Duration)
	}
	f, err := testnet.BenchGatewayAbuse(ctx, ac)
	if err != nil {
		return err
	}
	met, why := f.Goal()
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(struct {
			testnet.AbuseFigures
			GoalMet bool   `json:"goal_met"`
			Goal    string `json:"goal"`
		}{f, met, why})
	}
	c := f.Config
	fmt.Fprintf(e.stdout, "abuse for %.0fs on %d cores: process CPU %.2f cores (gateway, attackers and honest client)\n", f.Seconds, runtime.NumCPU(), f.CPUCores)
	if g := c.Gateway; g.MaxPerClient != 0 || g.WriteTimeout != 0 || g.MinSendRate != 0 {
		fmt.Fprintf(e.stdout, "  gateway limits changed: per-client cap %d, write timeout %s, minimum send rate %.0f B/s (0: the default)\n", g.MaxPerClient, g.WriteTimeout, g.MinSendRate)
	}
	fmt.Fprintf(e.stdout, "  flood        %d requests at %.0f/s from %d addresses (small cached objects): %s\n", f.FloodSent, f.FloodRate, f.FloodClients, counts(f.FloodByStatus))
	fmt.Fprintf(e.stdout, "  slow readers %d addresses x %d connections (half read 8 B/s, half nothing): %d opened, %d answered 200 and held, %d refused at once\n",
		max(c.SlowClients, 0), max(c.SlowConns, 0), f.SlowDials, f.SlowHeld, f.SlowRefused)
	kinds := make([]string, 0, len(f.Heavy))
	for k := range f.Heavy {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		h := f.Heavy[k]
		fmt.Fprintf(e.stdout, "  heavy %-11s %d requests (%.1f MiB each), p50 %.0f ms, max %.0f ms: %s\n", k, h.Requests, h.MiB, h.P50Ms, h.MaxMs, counts(h.ByStatus))
	}
	fmt.Fprintf(e.stdout, "gateway: refused %d for the rate, %d for the per-client cap, %d for want of a slot; %d writes cut at the deadline; peak %d slots in use; %d client limiters\n",
		f.RefusedRate, f.RefusedCap, f.RefusedSlots, f.WriteTimeouts, f.PeakSlots, f.Limiters)
	fmt.Fprintf(e.stdout, "memory (whole process, sampled every 100 ms during the abuse): peak RSS %.0f MiB, peak Go heap %.0f MiB; VmHWM since start %.0f MiB\n", f.PeakRSSMB, f.PeakHeapMB, f.HWMMB)
	fmt.Fprintf(e.stdout, "honest: %d of %d answered (%.2f%%), p50 %.2f ms, p99 %.2f ms, max %.2f ms; failed: %s\n",
		f.HonestAnswered, f.HonestRequests, 100*f.HonestFraction, f.HonestP50Ms, f.HonestP99Ms, f.HonestMaxMs, counts(f.HonestFailed))
	fmt.Fprintf(e.stdout, "alive after: %v\n", f.Alive)
	fmt.Fprintf(e.stdout, "goal (honest >= %.0f%% answered, p99 < %.0f ms, peak RSS < %.0f MiB, no crash): %s\n",
		100*testnet.AbuseGoalAnswered, testnet.AbuseGoalP99Ms, testnet.AbuseGoalRSSMiB, why)
	return nil
}

// counts prints outcome counts in key order ("none" when empty).
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, m[k])
	}
	return b.String()
}
