package compute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/orecdn/ore/pod"
)

// Content is what the engine needs of a box's content: read a UnixFS
// file (fetching what the box lacks) and add one.
type Content interface {
	Open(ctx context.Context, c cid.Cid) (io.ReadCloser, error)
	Add(ctx context.Context, r io.Reader) (cid.Cid, error)
}

// Index keeps the box's job claims by job ID (store.Store's metadata).
type Index interface {
	GetMeta(ctx context.Context, key []byte) ([]byte, bool, error)
	PutMeta(ctx context.Context, key, value []byte) error
}

// EngineConfig is what an Engine is built from.
type EngineConfig struct {
	Runtime *Runtime
	Content Content
	Index   Index
	Key     crypto.PrivKey // the runner's: it signs the claims
	Network pod.Params
	Now     func() time.Time // for the claims' epochs (default time.Now)
	// Concurrency bounds the jobs this box runs at once, so jobs never
	// take every core from delivery (default 1).
	Concurrency int
	// Memory bounds the linear memory the box's jobs may hold at once,
	// counted at each function's limit (Limits.MemoryPages), since a job
	// may grow to it: a job waits until its limit fits beside the jobs in
	// flight, and a function whose limit is more than Memory is refused
	// (ErrMemoryBudget) rather than run into the box's swap or its OOM
	// killer (0: no bound beyond Concurrency functions' own limits).
	Memory int64
	// Timeout bounds a run's wall time, the box's own safety beside the
	// work limit (default 5 minutes; a stopped run is not a verdict).
	Timeout  time.Duration
	Registry prometheus.Registerer // nil: no metrics
	Logger   *slog.Logger
}

// Engine runs jobs on a box: (function, input, args) -> an output DAG in
// the box's store, and a claim signed by the box, kept in its index, so
// the same job asked again is answered from the index, not run again.
type Engine struct {
	cfg  EngineConfig
	self peer.ID
	sem  chan struct{}
	mem  *semaphore.Weighted // nil: no memory budget

	mu      sync.Mutex
	flights map[[32]byte]*flight
	failed  *lru.Cache[[32]byte, error] // deterministic failures, by job ID

	jobs    *prometheus.CounterVec
	work    prometheus.Counter
	running prometheus.Gauge
	now     atomic.Int32 // jobs running (the gauge, readable)
}

type flight struct {
	done chan struct{}
	out  Outcome
	err  error
}

// Outcome is a job's answer: a runner's claim, or the ledger's record.
type Outcome struct {
	Claim  *pod.JobReceipt // signed by the runner (this box, or the one that ran it first); nil when Final answers
	Cached bool            // answered from the index, a run in flight or the ledger
	Final  *Final          // the ledger's record, when a box answers from it (node: a gateway)
}

// Final is a job's outcome as the ledger's index of final outputs records
// it (ledger.State.FinalJob): paid out past its challenge window,
// undisputed. It stands on a final block, not on one box's word.
type Final struct {
	Job    [32]byte
	Output cid.Cid
	Work   uint64
}

// ErrUnknownFunction: the function's descriptor could not be read.
var ErrUnknownFunction = errors.New("compute: cannot read the function")

// NewEngine builds an engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Runtime == nil || cfg.Content == nil || cfg.Index == nil || cfg.Key == nil {
		return nil, errors.New("compute: an engine needs a runtime, content, an index and a key")
	}
	if cfg.Network.EpochLength <= 0 {
		return nil, errors.New("compute: the network's parameters have no epoch length (use pod.DefaultParams or the genesis's)")
	}
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("compute: runner key: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	failed, err := lru.New[[32]byte, error](4096)
	if err != nil {
		return nil, err
	}
	if cfg.Memory < 0 {
		return nil, fmt.Errorf("compute: a memory budget of %d bytes", cfg.Memory)
	}
	e := &Engine{cfg: cfg, self: self, sem: make(chan struct{}, cfg.Concurrency),
		flights: map[[32]byte]*flight{}, failed: failed,
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_compute_jobs_total",
			Help: "Jobs asked of this box by outcome: run, cached, limit (over a function's limit), function (it failed), error (the box could not run it)."}, []string{"outcome"}),
		work:    prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_compute_work_units_total", Help: "Work units of the jobs this box ran."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ore_compute_running", Help: "Jobs running now."}),
	}
	if cfg.Memory > 0 {
		e.mem = semaphore.NewWeighted(cfg.Memory)
	}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{e.jobs, e.work, e.running} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("compute: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Cap is how many jobs the engine runs at once (EngineConfig.Concurrency).
func (e *Engine) Cap() int { return cap(e.sem) }

// Running is how many jobs the engine runs now, of Cap.
func (e *Engine) Running() int { return int(e.now.Load()) }

// Compiled reports whether the engine's runtime compiles functions
// (Runtime.Compiled).
func (e *Engine) Compiled() bool { return e.cfg.Runtime.Compiled() }

// IndexKey is where the Index keeps the claim of job id.
func IndexKey(id [32]byte) []byte { return append([]byte("compute/job/"), id[:]...) }

// Lookup returns the claim this box holds for a job, if any.
func (e *Engine) Lookup(ctx context.Context, id [32]byte) (*pod.JobReceipt, bool, error) {
	b, ok, err := e.cfg.Index.GetMeta(ctx, IndexKey(id))
	if err != nil || !ok {
		return nil, false, err
	}
	r, err := pod.UnmarshalJobReceipt(b)
	if err != nil {
		return nil, false, fmt.Errorf("compute: the index's claim of job %x: %w", id[:8], err)
	}
	return r, true, nil
}

// Function reads and parses a function's descriptor.
func (e *Engine) Function(ctx context.Context, fn cid.Cid) (Descriptor, error) {
	b, err := e.read(ctx, fn, MaxDescriptorSize)
	if err != nil {
		return Descriptor{}, fmt.Errorf("%w %s: %w", ErrUnknownFunction, fn, err)
	}
	d, err := ParseDescriptor(b)
	if err != nil {
		return d, fmt.Errorf("function %s: %w", fn, err)
	}
	return d, nil
}

// read reads a whole UnixFS file of at most max bytes.
func (e *Engine) read(ctx context.Context, c cid.Cid, max int64) ([]byte, error) {
	rc, err := e.cfg.Content.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", c, max)
	}
	return b, nil
}

// Load returns the function fn, loaded: its descriptor read, its module
// fetched, validated, metered and compiled (once per process, and once
// per machine with the runtime's cache dir). Release it when done.
func (e *Engine) Load(ctx context.Context, fn cid.Cid) (*Function, Descriptor, error) {
	d, err := e.Function(ctx, fn)
	if err != nil {
		return nil, d, err
	}
	if f, ok := e.cfg.Runtime.Cached(fn.String(), d.Limits); ok {
		return f, d, nil
	}
	mod, err := e.read(ctx, d.Module, MaxModuleSize)
	if err != nil {
		return nil, d, fmt.Errorf("%w %s: module %s: %w", ErrUnknownFunction, fn, d.Module, err)
	}
	f, err := e.cfg.Runtime.Load(ctx, fn.String(), mod, d.Limits)
	if err != nil {
		return nil, d, fmt.Errorf("function %s: %w", fn, err)
	}
	return f, d, nil
}

// Run answers the job (fn, input, args) for requester: from the index
// when this box has its claim, else by running it once however many ask
// at the same time. A job that failed deterministically (a limit, the
// function's own error) fails again without running, while the box
// remembers it.
func (e *Engine) Run(ctx context.Context, fn, input cid.Cid, args []string, requester peer.ID) (Outcome, error) {
	if err := pod.CheckJobArgs(args); err != nil {
		return Outcome{}, err
	}
	id := pod.JobID(fn, input, args)
	if r, ok, err := e.Lookup(ctx, id); err != nil {
		return Outcome{}, err
	} else if ok {
		e.jobs.WithLabelValues("cached").Inc()
		return Outcome{Claim: r, Cached: true}, nil
	}
	if err, ok := e.failed.Get(id); ok {
		e.count(err)
		return Outcome{}, err
	}
	e.mu.Lock()
	if f, ok := e.flights[id]; ok {
		e.mu.Unlock()
		select {
		case <-f.done:
			out := f.out
			out.Cached = true
			return out, f.err
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	e.flights[id] = f
	e.mu.Unlock()
	f.out, f.err = e.run(ctx, id, fn, input, args, requester)
	e.mu.Lock()
	delete(e.flights, id)
	e.mu.Unlock()
	close(f.done)
	e.count(f.err)
	if errors.Is(f.err, ErrLimit) || errors.Is(f.err, ErrFunction) || errors.Is(f.err, ErrBadModule) || errors.Is(f.err, ErrBadFunction) {
		e.failed.Add(id, f.err)
	}
	return f.out, f.err
}

func (e *Engine) count(err error) {
	switch {
	case err == nil:
		e.jobs.WithLabelValues("run").Inc()
	case errors.Is(err, ErrLimit):
		e.jobs.WithLabelValues("limit").Inc()
	case errors.Is(err, ErrFunction):
		e.jobs.WithLabelValues("function").Inc()
	default:
		e.jobs.WithLabelValues("error").Inc()
	}
}

func (e *Engine) run(ctx context.Context, id [32]byte, fn, input cid.Cid, args []string, requester peer.ID) (Outcome, error) {
	select {
	case e.sem <- struct{}{}:
		defer func() { <-e.sem }()
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("compute: waiting for a free slot (%d jobs run at once): %w", cap(e.sem), ctx.Err())
	}
	e.running.Inc()
	e.now.Add(1)
	defer func() {
		e.running.Dec()
		e.now.Add(-1)
	}()
	f, _, err := e.Load(ctx, fn)
	if err != nil {
		return Outcome{}, err
	}
	defer f.Release()
	if e.mem != nil {
		need := int64(f.Limits.MemoryPages) * 65536
		if need > e.cfg.Memory {
			return Outcome{}, fmt.Errorf("%w: function %s may use %d MiB, this box lends %d MiB to jobs: run it on a bigger box", ErrMemoryBudget, fn, need>>20, e.cfg.Memory>>20)
		}
		if err := e.mem.Acquire(ctx, need); err != nil {
			return Outcome{}, fmt.Errorf("compute: waiting for %d MiB of the box's job memory: %w", need>>20, err)
		}
		defer e.mem.Release(need)
	}
	in, err := e.cfg.Content.Open(ctx, input)
	if err != nil {
		return Outcome{}, fmt.Errorf("compute: input %s: %w", input, err)
	}
	defer in.Close()
	// The output streams into the store as the job writes it; a failed
	// run fails the add, which pins nothing.
	pr, pw := io.Pipe()
	added := make(chan struct {
		c   cid.Cid
		err error
	}, 1)
	go func() {
		c, err := e.cfg.Content.Add(ctx, pr)
		pr.CloseWithError(err)
		added <- struct {
			c   cid.Cid
			err error
		}{c, err}
	}()
	rctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, runErr := e.cfg.Runtime.Run(rctx, f, Job{Args: args, Stdin: in, Seed: id}, pw)
	pw.CloseWithError(runErr)
	a := <-added
	if runErr != nil {
		e.cfg.Logger.Debug("job failed", "fn", fn, "input", input, "err", runErr)
		return Outcome{}, runErr
	}
	if a.err != nil {
		return Outcome{}, fmt.Errorf("compute: storing the output: %w", a.err)
	}
	e.work.Add(float64(res.Work))
	r := &pod.JobReceipt{Version: pod.JobReceiptVersion, Network: e.cfg.Network.Network,
		Epoch: e.cfg.Network.EpochAt(e.cfg.Now()), Runner: e.self, Requester: requester,
		Fn: fn, Input: input, Args: args, Output: a.c, Work: res.Work}
	if err := r.SignRunner(e.cfg.Key); err != nil {
		return Outcome{}, err
	}
	if err := e.cfg.Index.PutMeta(ctx, IndexKey(id), r.Marshal()); err != nil {
		return Outcome{}, fmt.Errorf("compute: keeping the claim: %w", err)
	}
	e.cfg.Logger.Info("job run", "fn", fn, "input", input, "output", a.c, "work", res.Work, "took", time.Since(start))
	return Outcome{Claim: r}, nil
}
