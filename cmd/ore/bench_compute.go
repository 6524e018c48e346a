package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// Goals of `ore bench compute` (issue 23).
const (
	goalMeteredNative = 3.0  // the function under the runtime within 3x of native Go
	goalMeterOverhead = 0.25 // the work meter's cost
	goalCachedOver    = 1.5  // a cached job's answer and output read against reading the same content
	goalVerifyShare   = 0.10 // checks' share of the compute sold, at the ledger's sampling rate
	goalColdFirstByte = 2.0  // a cold job's first byte through the gateway against the job's own run
)

type computeRow struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  float64 `json:"goal,omitempty"` // 0: reported, no goal
	Holds bool    `json:"holds"`
}

// computeReport is `ore bench compute --json`.
type computeReport struct {
	Job         string                 `json:"job"`
	InputBytes  int                    `json:"input_bytes"`
	Runtime     compute.RuntimeFigures `json:"runtime"`
	Jobs        int                    `json:"jobs"`
	Concurrency int                    `json:"concurrency"`
	JobsPerSec  float64                `json:"jobs_per_s"` // one box, its default concurrency
	RunMs       float64                `json:"run_ms"`     // a job on the box, p50 (fresh: not in its index)
	CachedMs    float64                `json:"cached_ms"`  // the same job asked again: index, then the output read, p50
	PlainMs     float64                `json:"plain_ms"`   // the output read as plain content, p50
	CheckMs     float64                `json:"check_ms"`   // a second box's check of a job (fetching the input), p50
	// Through box A's gateway (GET /ipfs/{input}?ore-fn=…, the redirect
	// followed), time to the output's first byte: a job not run before
	// (the module compiled), the same job asked again, and the output
	// asked for directly (plain cached content).
	ColdTTFB    [2]float64   `json:"gateway_cold_ttfb_ms"`   // p50, p99
	CachedTTFB  [2]float64   `json:"gateway_cached_ttfb_ms"` // p50, p99
	PlainTTFB   [2]float64   `json:"gateway_plain_ttfb_ms"`  // p50, p99
	VerifyShare float64      `json:"verify_share"`
	Rows        []computeRow `json:"rows"`
	AllHold     bool         `json:"all_hold"`
}

func benchCompute(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench compute", "[flags]")
	sizeFlag := fs.String("size", "1MiB", "bytes of each job's input (slices of the ore binary)")
	jobs := fs.Int("jobs", 6, "jobs run, asked again, and checked")
	rounds := fs.Int("rounds", 5, "rounds of native, unmetered and metered runs, by turns")
	interp := fs.Bool("interpreter", false, "also time wazero's interpreter (what armv7 boxes run); slow")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	size, err := sizeArg("size", *sizeFlag, "1MiB")
	if err != nil {
		return err
	}
	if *jobs < 1 || *rounds < 1 {
		return fmt.Errorf("%w: --jobs and --rounds must be at least 1", errUsage)
	}
	logf := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(e.stderr, "bench compute: "+format+"\n", a...)
		}
	}
	rep, err := runBenchCompute(ctx, int(size), *jobs, *rounds, *interp, logf)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	w := e.stdout
	fmt.Fprintf(w, "compute: %s over %s inputs (the ore binary's bytes), ratios measured by turns in one run\n", rep.Job, humanize.IBytes(uint64(rep.InputBytes)))
	r := rep.Runtime
	fmt.Fprintf(w, "  (ratios of the fastest of the rounds, %s time; in wall time: metered/native %.2fx, meter %+.1f %%)\n", r.Clock, r.WallMeteredNative, 100*r.WallMeterOverhead)
	fmt.Fprintf(w, "  native Go              %8.1f ms  (CPU %.1f ms)\n", r.NativeMs, r.NativeCPUMs)
	fmt.Fprintf(w, "  wasm, unmetered        %8.1f ms  (CPU %.1f ms; %.2fx native)\n", r.UnmeteredMs, r.UnmeteredCPUMs, r.UnmeteredNative)
	fmt.Fprintf(w, "  wasm, metered          %8.1f ms  (CPU %.1f ms; %.2fx native; %d work units)\n", r.MeteredMs, r.MeteredCPUMs, r.MeteredNative, r.Work)
	if r.InterpreterMs > 0 {
		fmt.Fprintf(w, "  interpreter (armv7)    %8.1f ms  (%.1fx the compiler)\n", r.InterpreterMs, r.InterpreterRatio)
	}
	fmt.Fprintf(w, "  one box, %d at once    %8.2f jobs/s  (run p50 %.1f ms)\n", rep.Concurrency, rep.JobsPerSec, rep.RunMs)
	fmt.Fprintf(w, "  cached answer + read   %8.2f ms p50  (the output read as plain content: %.2f ms)\n", rep.CachedMs, rep.PlainMs)
	fmt.Fprintf(w, "  a second box's check   %8.1f ms p50  (input fetched)\n", rep.CheckMs)
	fmt.Fprintf(w, "  gateway, first byte    cold job %.1f / %.1f ms, cached job %.2f / %.2f ms, the output as plain content %.2f / %.2f ms (p50 / p99)\n",
		rep.ColdTTFB[0], rep.ColdTTFB[1], rep.CachedTTFB[0], rep.CachedTTFB[1], rep.PlainTTFB[0], rep.PlainTTFB[1])
	for _, row := range rep.Rows {
		goal := "reported"
		if row.Goal > 0 {
			goal = fmt.Sprintf("goal <= %g: %s", row.Goal, holds(row.Holds))
		}
		fmt.Fprintf(w, "  %-34s %8.3f  %s\n", row.Name, row.Value, goal)
	}
	fmt.Fprintf(w, "every row holds: %s\n", holds(rep.AllHold))
	return nil
}

func holds(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func p50(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1e3
}

// p50p99 are the median and the 99th percentile (the largest of fewer
// than 100), in ms.
func p50p99(ds []time.Duration) [2]float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*99/100)
	return [2]float64{float64(s[len(s)/2].Microseconds()) / 1e3, float64(s[i].Microseconds()) / 1e3}
}

// firstByte GETs u (following redirects), and returns the time to the
// body's first byte; it reads the rest and checks the status.
func firstByte(ctx context.Context, u string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
		return 0, fmt.Errorf("GET %s: %s: %w", u, resp.Status, err)
	}
	d := time.Since(t0)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return d, nil
}

// runBenchCompute measures the runtime against native Go, then a job's
// life on two boxes: runs on box A, the same jobs asked again (cache
// hits), and box B's checks of them.
func runBenchCompute(ctx context.Context, size, nJobs, rounds int, interp bool, logf func(string, ...any)) (*computeReport, error) {
	module, err := compute.SampleModule()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench compute reads its inputs from the ore binary, but cannot find it: %w", err)
	}
	exe, err := os.ReadFile(self)
	if err != nil {
		return nil, fmt.Errorf("bench compute: read the ore binary: %w", err)
	}
	if len(exe) < (2*nJobs+2)*size {
		return nil, fmt.Errorf("%w: the ore binary holds %d bytes, fewer than %d inputs of %d", errUsage, len(exe), 2*nJobs+2, size)
	}
	input := func(i int) []byte { return exe[i*size : (i+1)*size] }
	rep := &computeReport{Job: "gzip -6 (the sample function)", InputBytes: size, Jobs: nJobs,
		Concurrency: node.DefaultComputeConcurrency()}
	logf("native, unmetered and metered runs by turns (%d rounds)...", rounds)
	rep.Runtime, err = compute.BenchRuntime(ctx, compute.RuntimeBench{Module: module, Args: []string{"gzip", "6"}, Input: input(0),
		Rounds: rounds, Interpreter: interp, Native: func(in []byte) error {
			zw, err := gzip.NewWriterLevel(io.Discard, 6)
			if err != nil {
				return err
			}
			if _, err := zw.Write(in); err != nil {
				return err
			}
			return zw.Close()
		}})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ore-bench-compute-*")
	if err != nil {
		return nil, fmt.Errorf("bench compute: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	logf("two boxes: %d jobs on one, asked again, checked by the other...", nJobs)
	nw, err := testnet.New(ctx, 2, testnet.WithDir(dir),
		// The bench is one client asking as fast as it can: the per-client
		// rate limit (100/s) would time the limiter, not the gateway.
		testnet.WithBoxOptions(0, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"), node.WithGatewayClientLimits(1e6, 0)))
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	a, b := nw.Nodes[0], nw.Nodes[1]
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		return nil, err
	}
	info, err := a.PublishFunction(ctx, module, compute.DefaultLimits(), nil)
	if err != nil {
		return nil, err
	}
	args := []string{"gzip", "6"}
	ins := make([]cid.Cid, 2*nJobs+1)
	for i := range ins {
		res, err := a.Add(ctx, files.NewBytesFile(input(i+1)))
		if err != nil {
			return nil, err
		}
		ins[i] = res.Root
	}
	// Box B compiles the function once (a box does, per machine), on
	// the spare input: not a check's cost.
	if _, err := b.CheckJob(ctx, info.Fn, ins[2*nJobs], args); err != nil {
		return nil, err
	}
	gwIns := ins[nJobs : 2*nJobs]
	ins = ins[:nJobs]
	runs := make([]time.Duration, nJobs)
	outs := make([]cid.Cid, nJobs)
	var wg sync.WaitGroup
	errs := make([]error, nJobs)
	t0 := time.Now()
	for i := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			out, err := a.RunJob(ctx, info.Fn, ins[i], args)
			runs[i], errs[i] = time.Since(t), err
			if err == nil {
				outs[i] = out.Claim.Output
			}
		}()
	}
	wg.Wait()
	total := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	rep.JobsPerSec = float64(nJobs) / total.Seconds()
	// The box runs Concurrency jobs at once; the others wait for a slot:
	// a run's own time is the total over the jobs, at that concurrency.
	rep.RunMs = float64(total.Microseconds()) / 1e3 / float64(nJobs) * float64(rep.Concurrency)
	readAll := func(c cid.Cid) error {
		f, err := a.Open(ctx, c)
		if err != nil {
			return err
		}
		defer f.Close()
		r, ok := f.(io.Reader)
		if !ok {
			return fmt.Errorf("bench compute: %s is not a file", c)
		}
		_, err = io.Copy(io.Discard, r)
		return err
	}
	var cached, plain, checks []time.Duration
	for i := range ins {
		// By turns: the plain read first on even jobs, second on odd ones.
		for k := range 2 {
			t := time.Now()
			if (i+k)%2 == 0 {
				if err := readAll(outs[i]); err != nil {
					return nil, err
				}
				plain = append(plain, time.Since(t))
				continue
			}
			out, err := a.RunJob(ctx, info.Fn, ins[i], args)
			if err != nil {
				return nil, err
			}
			if !out.Cached || out.Claim.Output != outs[i] {
				return nil, fmt.Errorf("bench compute: job %d asked again was not a cache hit of its output", i)
			}
			if err := readAll(out.Claim.Output); err != nil {
				return nil, err
			}
			cached = append(cached, time.Since(t))
		}
	}
	for i := range ins {
		t := time.Now()
		c, err := b.CheckJob(ctx, info.Fn, ins[i], args)
		if err != nil {
			return nil, err
		}
		checks = append(checks, time.Since(t))
		if !c.Output.Equals(outs[i]) {
			return nil, fmt.Errorf("bench compute: box B's check of job %d gives %s, box A got %s: not deterministic", i, c.Output, outs[i])
		}
	}
	// Through the gateway: jobs not run before (their inputs on box A,
	// the module compiled), then each asked again, and its output asked
	// for directly, by turns.
	logf("through the gateway: %d cold jobs, asked again, their outputs...", len(gwIns))
	var cold, cachedGW, plainGW []time.Duration
	for _, in := range gwIns {
		q := url.Values{gateway.FnParam: {info.Fn.String()}, gateway.ArgParam: args}
		u := "http://" + a.GatewayAddr() + "/ipfs/" + in.String() + "?" + q.Encode()
		d, err := firstByte(ctx, u)
		if err != nil {
			return nil, err
		}
		cold = append(cold, d)
		out, err := a.RunJob(ctx, info.Fn, in, args)
		if err != nil || !out.Cached {
			return nil, fmt.Errorf("bench compute: a job run through the gateway is not in box A's index: %v", err)
		}
		for i := range 20 {
			for k := range 2 {
				if (i+k)%2 == 0 {
					d, err = firstByte(ctx, u)
					cachedGW = append(cachedGW, d)
				} else {
					d, err = firstByte(ctx, "http://"+a.GatewayAddr()+"/ipfs/"+out.Claim.Output.String())
					plainGW = append(plainGW, d)
				}
				if err != nil {
					return nil, err
				}
			}
		}
	}
	rep.ColdTTFB, rep.CachedTTFB, rep.PlainTTFB = p50p99(cold), p50p99(cachedGW), p50p99(plainGW)
	rep.CachedMs, rep.PlainMs, rep.CheckMs = p50(cached), p50(plain), p50(checks)
	// The bench runs no ledger: a network's genesis may set another
	// rate; this is the default one's share.
	rep.VerifyShare = float64(ledger.DefaultJobCheckPermille) / 1000 * rep.CheckMs / rep.RunMs
	r := rep.Runtime
	rep.Rows = []computeRow{
		{Name: "metered wasm / native Go", Value: r.MeteredNative, Goal: goalMeteredNative},
		{Name: "work meter overhead", Value: r.MeterOverhead, Goal: goalMeterOverhead},
		{Name: "cached answer / plain read", Value: rep.CachedMs / rep.PlainMs, Goal: goalCachedOver},
		{Name: fmt.Sprintf("verification share (%d per mille)", ledger.DefaultJobCheckPermille), Value: rep.VerifyShare, Goal: goalVerifyShare},
		{Name: "gateway cold first byte / job run", Value: rep.ColdTTFB[0] / rep.RunMs, Goal: goalColdFirstByte},
		{Name: "gateway cached job / plain content", Value: rep.CachedTTFB[0] / rep.PlainTTFB[0]},
		{Name: "jobs/s per core", Value: rep.JobsPerSec / float64(rep.Concurrency)},
	}
	if r.InterpreterRatio > 0 {
		rep.Rows = append(rep.Rows, computeRow{Name: "interpreter / compiler (armv7)", Value: r.InterpreterRatio})
	}
	rep.AllHold = true
	for i := range rep.Rows {
		row := &rep.Rows[i]
		row.Holds = row.Goal == 0 || row.Value <= row.Goal
		rep.AllHold = rep.AllHold && row.Holds
	}
	return rep, nil
}
