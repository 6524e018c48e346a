package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/compute"
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
	VerifyShare float64                `json:"verify_share"`
	Rows        []computeRow           `json:"rows"`
	AllHold     bool                   `json:"all_hold"`
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
	fmt.Fprintf(w, "  native Go              %8.1f ms\n", r.NativeMs)
	fmt.Fprintf(w, "  wasm, unmetered        %8.1f ms  (%.2fx native)\n", r.UnmeteredMs, r.UnmeteredNative)
	fmt.Fprintf(w, "  wasm, metered          %8.1f ms  (%.2fx native; %d work units)\n", r.MeteredMs, r.MeteredNative, r.Work)
	if r.InterpreterMs > 0 {
		fmt.Fprintf(w, "  interpreter (armv7)    %8.1f ms  (%.1fx the compiler)\n", r.InterpreterMs, r.InterpreterRatio)
	}
	fmt.Fprintf(w, "  one box, %d at once    %8.2f jobs/s  (run p50 %.1f ms)\n", rep.Concurrency, rep.JobsPerSec, rep.RunMs)
	fmt.Fprintf(w, "  cached answer + read   %8.2f ms p50  (the output read as plain content: %.2f ms)\n", rep.CachedMs, rep.PlainMs)
	fmt.Fprintf(w, "  a second box's check   %8.1f ms p50  (input fetched)\n", rep.CheckMs)
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
	if len(exe) < (nJobs+1)*size {
		return nil, fmt.Errorf("%w: the ore binary holds %d bytes, fewer than %d inputs of %d", errUsage, len(exe), nJobs+1, size)
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
	nw, err := testnet.New(ctx, 2, testnet.WithDir(dir))
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
	ins := make([]cid.Cid, nJobs+1)
	for i := range ins {
		res, err := a.Add(ctx, files.NewBytesFile(input(i+1)))
		if err != nil {
			return nil, err
		}
		ins[i] = res.Root
	}
	// Box B compiles the function once (a box does, per machine), on
	// the spare input: not a check's cost.
	if _, err := b.CheckJob(ctx, info.Fn, ins[nJobs], args); err != nil {
		return nil, err
	}
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
	rep.CachedMs, rep.PlainMs, rep.CheckMs = p50(cached), p50(plain), p50(checks)
	rep.VerifyShare = float64(ledger.JobCheckPermille) / 1000 * rep.CheckMs / rep.RunMs
	r := rep.Runtime
	rep.Rows = []computeRow{
		{Name: "metered wasm / native Go", Value: r.MeteredNative, Goal: goalMeteredNative},
		{Name: "work meter overhead", Value: r.MeterOverhead, Goal: goalMeterOverhead},
		{Name: "cached answer / plain read", Value: rep.CachedMs / rep.PlainMs, Goal: goalCachedOver},
		{Name: fmt.Sprintf("verification share (%d per mille)", ledger.JobCheckPermille), Value: rep.VerifyShare, Goal: goalVerifyShare},
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
