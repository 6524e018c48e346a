package compute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/orecdn/ore/pod"
)

// Limits bound one job of a function. They are part of the function's
// registration: every runner enforces the same ones, so a job's outcome
// (output or the limit it hit) is the same everywhere.
type Limits struct {
	Work        uint64 `json:"work"`         // work units (see meter.go), at most MaxWork
	MemoryPages uint32 `json:"memory_pages"` // 64 KiB pages of linear memory, at most MaxMemoryPages
	Output      int64  `json:"output"`       // bytes written to stdout, at most MaxOutput
}

// Ceilings of Limits, whatever a function asks.
const (
	MaxWork        = pod.MaxJobWork
	MaxMemoryPages = 16384 // 1 GiB
	MaxOutput      = 1 << 30
)

// DefaultLimits suit a small transform (a gzip or a thumbnail of a file
// of a few MiB): 2^34 work units (a few seconds of compiled code),
// 256 MiB of memory, 64 MiB of output.
func DefaultLimits() Limits {
	return Limits{Work: 1 << 34, MemoryPages: 4096, Output: 64 << 20}
}

// Check refuses limits outside the ceilings.
func (l Limits) Check() error {
	switch {
	case l.Work == 0 || l.Work > MaxWork:
		return fmt.Errorf("compute: work limit %d outside [1, %d]", l.Work, uint64(MaxWork))
	case l.MemoryPages == 0 || l.MemoryPages > MaxMemoryPages:
		return fmt.Errorf("compute: memory limit %d pages outside [1, %d]", l.MemoryPages, MaxMemoryPages)
	case l.Output <= 0 || l.Output > MaxOutput:
		return fmt.Errorf("compute: output limit %d bytes outside [1, %d]", l.Output, MaxOutput)
	}
	return nil
}

// Errors of a run. A job that hits a limit wraps ErrLimit and the
// limit's own error; a function that traps or exits non-zero wraps
// ErrFunction with its message (the start of its stderr).
var (
	ErrLimit       = errors.New("compute: the job exceeded a limit of its function")
	ErrWorkLimit   = fmt.Errorf("%w: work", ErrLimit)
	ErrMemoryLimit = fmt.Errorf("%w: memory", ErrLimit)
	ErrOutputLimit = fmt.Errorf("%w: output size", ErrLimit)
	ErrStackLimit  = fmt.Errorf("%w: call depth", ErrLimit)
	ErrFunction    = errors.New("compute: the function failed")
	// ErrClosed: the runtime was closed (the box is stopping).
	ErrClosed = errors.New("compute: the runtime is closed")
	// ErrMemoryBudget: the function's memory limit is more than the box
	// lends to jobs (EngineConfig.Memory). It is the box's refusal, not a
	// verdict on the function: a bigger box may run the job.
	ErrMemoryBudget = errors.New("compute: the function's memory limit is more than this box lends to jobs")
)

// stderrKeep is how much of a job's stderr is kept for its error.
const stderrKeep = 2048

// Config tunes a Runtime.
type Config struct {
	// CacheDir holds wazero's compilation cache, so a box compiles a
	// function once, not once per start ("": in memory only).
	CacheDir string
	// Interpreter forces wazero's interpreter (it is the only engine on
	// 32-bit ARM; elsewhere the compiler is the default).
	Interpreter bool
	// MaxFunctions bounds the compiled functions kept in memory, least
	// recently used dropped first (default 32).
	MaxFunctions int
}

// Runtime runs WASI preview 1 commands deterministically: no network, no
// files, no environment, a clock that moves only as the job reads it or
// sleeps, randomness seeded by the job, bounded memory, output and work.
// It is safe for concurrent use.
type Runtime struct {
	r        wazero.Runtime
	cache    wazero.CompilationCache
	max      int
	compiled bool

	// life orders compiles and runs (read-held) before Close (write):
	// wazero's runtime must not compile or instantiate once closed (it
	// panicked: a job check arrived while its box stopped).
	life   sync.RWMutex
	closed bool

	mu   sync.Mutex
	fns  map[string]*Function
	tick uint64
}

// Function is a loaded (validated, metered, compiled) module.
type Function struct {
	Key    string
	Limits Limits
	Size   int // bytes of the metered module

	mod      wazero.CompiledModule
	rt       *Runtime
	refs     int // runs in flight, plus one while cached
	lastUsed uint64
}

// compilerArch reports whether wazero compiles to machine code on arch
// (its compiler's platforms; it interprets on every other).
func compilerArch(arch string) bool { return arch == "amd64" || arch == "arm64" }

// Compiled reports whether the runtime compiles functions to machine code
// (wazero's compiler) rather than interpreting them: what a box tells the
// choosers of runners (heat.Compute's Engine), since an interpreter is
// several times slower on heavy jobs.
func (r *Runtime) Compiled() bool { return r.compiled }

// New starts a runtime.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.MaxFunctions <= 0 {
		cfg.MaxFunctions = 32
	}
	rc := wazero.NewRuntimeConfig()
	if cfg.Interpreter {
		rc = wazero.NewRuntimeConfigInterpreter()
	}
	// No WithCloseOnContextDone: its checks made compiled code ~6x
	// slower (BenchmarkGzip). A run is stopped through its own meter
	// instead (see stopper).
	rc = rc.WithCoreFeatures(api.CoreFeaturesV2).WithCloseOnContextDone(false).
		WithMemoryLimitPages(MaxMemoryPages).WithCustomSections(false)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("compute: compilation cache in %s: %w", cfg.CacheDir, err)
		}
		cache = c
		rc = rc.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("compute: WASI: %w", err)
	}
	return &Runtime{r: r, cache: cache, max: cfg.MaxFunctions, fns: map[string]*Function{},
		compiled: !cfg.Interpreter && compilerArch(runtime.GOARCH)}, nil
}

// Close waits for the compiles and runs in flight (a run stops when its
// ctx ends), then releases every compiled function; later Loads and Runs
// fail with ErrClosed.
func (rt *Runtime) Close(ctx context.Context) error {
	rt.life.Lock()
	defer rt.life.Unlock()
	if rt.closed {
		return nil
	}
	rt.closed = true
	err := rt.r.Close(ctx)
	if rt.cache != nil {
		err = errors.Join(err, rt.cache.Close(ctx))
	}
	return err
}

func cacheKey(key string, l Limits) string {
	return fmt.Sprintf("%s/%d/%d/%d", key, l.Work, l.MemoryPages, l.Output)
}

// Cached returns the function loaded under key with limits lim, if it is
// in memory; release it with Release.
func (rt *Runtime) Cached(key string, lim Limits) (*Function, bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	f, ok := rt.fns[cacheKey(key, lim)]
	if ok {
		rt.tick++
		f.lastUsed = rt.tick
		f.refs++
	}
	return f, ok
}

// Load validates, meters and compiles a WASI command module under key
// (a function's CID), or returns the one already loaded. The caller
// releases it with Release when its runs are done. A module that imports
// anything but WASI preview 1 functions or does not export _start is
// refused (ErrBadModule).
func (rt *Runtime) Load(ctx context.Context, key string, wasm []byte, lim Limits) (*Function, error) {
	if err := lim.Check(); err != nil {
		return nil, err
	}
	if f, ok := rt.Cached(key, lim); ok {
		return f, nil
	}
	metered, err := instrument(wasm, lim)
	if err != nil {
		return nil, err
	}
	rt.life.RLock()
	defer rt.life.RUnlock()
	if rt.closed {
		return nil, ErrClosed
	}
	mod, err := rt.r.CompileModule(ctx, metered)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModule, err)
	}
	for _, imp := range mod.ImportedFunctions() {
		m, name, _ := imp.Import()
		if m != wasi_snapshot_preview1.ModuleName {
			mod.Close(ctx)
			return nil, fmt.Errorf("%w: imports %s.%s: a function may import WASI preview 1 only", ErrBadModule, m, name)
		}
	}
	if start, ok := mod.ExportedFunctions()["_start"]; !ok || len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		mod.Close(ctx)
		return nil, fmt.Errorf("%w: no _start() export: build a WASI command (GOOS=wasip1, a Rust bin for wasm32-wasip1)", ErrBadModule)
	}
	f := &Function{Key: key, Limits: lim, Size: len(metered), mod: mod, rt: rt, refs: 2}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	ck := cacheKey(key, lim)
	if old, ok := rt.fns[ck]; ok { // loaded meanwhile
		old.refs++
		rt.tick++
		old.lastUsed = rt.tick
		go mod.Close(context.Background())
		return old, nil
	}
	rt.tick++
	f.lastUsed = rt.tick
	rt.fns[ck] = f
	for len(rt.fns) > rt.max {
		var lru *Function
		var lk string
		for k, g := range rt.fns {
			if lru == nil || g.lastUsed < lru.lastUsed {
				lru, lk = g, k
			}
		}
		delete(rt.fns, lk)
		lru.releaseLocked()
	}
	return f, nil
}

// Release says a caller of Load or Cached is done with f.
func (f *Function) Release() {
	f.rt.mu.Lock()
	defer f.rt.mu.Unlock()
	f.releaseLocked()
}

func (f *Function) releaseLocked() {
	f.refs--
	if f.refs == 0 {
		go f.mod.Close(context.Background())
	}
}

// Job is one run's input.
type Job struct {
	Args  []string  // the command's arguments after argv[0]
	Stdin io.Reader // the input content
	Seed  [32]byte  // seeds the random source (the job's hash)
}

// Result says what a run did.
type Result struct {
	Work   uint64 // work units spent (the meter's count)
	Output int64  // bytes written to stdout
}

// Run runs f's _start over job, writing its stdout to out. On success
// (exit 0, or _start returning) Result.Work is the meter's count, the same
// on every machine. ctx bounds the run's wall time (a box's own safety,
// not part of the job: it wraps ctx's error, not ErrLimit).
func (rt *Runtime) Run(ctx context.Context, f *Function, job Job, out io.Writer) (Result, error) {
	rt.life.RLock()
	defer rt.life.RUnlock()
	if rt.closed {
		return Result{}, ErrClosed
	}
	st := &stopper{ctx: ctx}
	stdout := &limitWriter{w: out, max: f.Limits.Output, st: st}
	stderr := &headWriter{max: stderrKeep}
	clock := &fakeClock{st: st}
	var stdin io.Reader = strings.NewReader("")
	if job.Stdin != nil {
		stdin = &stopReader{r: job.Stdin, st: st}
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithArgs(append([]string{"fn"}, job.Args...)...).
		WithStdin(stdin).WithStdout(stdout).WithStderr(stderr).
		WithWalltime(clock.walltime, sys.ClockResolution(time.Microsecond)).
		WithNanotime(clock.nanotime, sys.ClockResolution(time.Microsecond)).
		WithNanosleep(clock.sleep).
		WithOsyield(func() {}).
		WithRandSource(rand.NewChaCha8(job.Seed))
	mod, err := rt.r.InstantiateModule(experimental.WithMemoryAllocator(ctx, memoryAllocator), f.mod, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("compute: instantiate %s: %w", f.Key, err)
	}
	if g, ok := mod.ExportedGlobal(meterExport).(api.MutableGlobal); ok {
		st.counter = g
	}
	err = offCPU(func() error {
		_, err := mod.ExportedFunction("_start").Call(ctx)
		return err
	})
	remaining := int64(f.Limits.Work)
	if g := mod.ExportedGlobal(meterExport); g != nil { // only tests load unmetered modules
		remaining = int64(g.Get())
	}
	var depth uint32
	if g := mod.ExportedGlobal(depthExport); g != nil {
		depth = uint32(g.Get())
	}
	var pages uint32
	if m := mod.Memory(); m != nil {
		pages = m.Size() / 65536
	}
	mod.Close(context.Background())
	res := Result{Output: stdout.n}
	if remaining >= 0 {
		res.Work = f.Limits.Work - uint64(remaining)
	} else {
		res.Work = f.Limits.Work
	}
	var exit *sys.ExitError
	switch {
	case stdout.over:
		return res, fmt.Errorf("%w: more than %d bytes", ErrOutputLimit, f.Limits.Output)
	case st.stopped && ctx.Err() != nil:
		return res, fmt.Errorf("compute: run of %s stopped: %w", f.Key, ctx.Err())
	case remaining < 0:
		return res, fmt.Errorf("%w: more than %d units", ErrWorkLimit, f.Limits.Work)
	case depth > MaxCallDepth:
		return res, fmt.Errorf("%w: more than %d nested calls", ErrStackLimit, MaxCallDepth)
	case err == nil, errors.As(err, &exit) && exit.ExitCode() == 0:
		if stdout.err != nil {
			return res, fmt.Errorf("compute: writing the output of %s: %w", f.Key, stdout.err)
		}
		return res, nil
	case pages >= f.Limits.MemoryPages:
		return res, fmt.Errorf("%w: it failed with its memory at the limit of %d pages (%s)", ErrMemoryLimit, f.Limits.MemoryPages, stderr.message(err))
	default:
		return res, fmt.Errorf("%w: %s", ErrFunction, stderr.message(err))
	}
}

// stopper stops a run from inside its own host calls: it sets the work
// counter below zero, so the module traps at its next check. Host calls
// run on the run's goroutine, so nothing races the module's own reads of
// the counter. A box's wall-clock bound (ctx) is seen at the job's next
// WASI call (a Go program reads the clock often); the work limit bounds
// a module that makes none.
type stopper struct {
	ctx     context.Context
	counter api.MutableGlobal
	stopped bool
}

func (s *stopper) stop() {
	if s.counter != nil && !s.stopped {
		s.stopped = true
		s.counter.Set(^uint64(0)) // -1
	}
}

// poll stops the run once ctx is done.
func (s *stopper) poll() {
	if s.ctx.Err() != nil {
		s.stop()
	}
}

type stopReader struct {
	r  io.Reader
	st *stopper
}

func (s *stopReader) Read(p []byte) (int, error) {
	s.st.poll()
	return s.r.Read(p)
}

// fakeClock is the only time a job sees: it starts at 2000-01-01 UTC and
// moves a microsecond per reading and by the length of every sleep, so
// the times a job reads are a function of what it did.
type fakeClock struct {
	ns int64
	st *stopper
}

const clockEpoch = 946684800 // 2000-01-01T00:00:00Z in Unix seconds

func (c *fakeClock) nanotime() int64 {
	c.st.poll()
	c.ns += int64(time.Microsecond)
	return c.ns
}

func (c *fakeClock) walltime() (int64, int32) {
	t := c.nanotime()
	return clockEpoch + t/1e9, int32(t % 1e9)
}

func (c *fakeClock) sleep(ns int64) {
	if ns > 0 {
		c.ns += ns
	}
}

// limitWriter passes at most max bytes to w; past that it stops the run.
type limitWriter struct {
	w      io.Writer
	n, max int64
	over   bool
	err    error
	st     *stopper
}

func (l *limitWriter) Write(p []byte) (int, error) {
	l.st.poll()
	if l.over || l.err != nil {
		return 0, io.ErrShortWrite
	}
	if int64(len(p)) > l.max-l.n {
		l.over = true
		l.st.stop()
		return 0, io.ErrShortWrite
	}
	k, err := l.w.Write(p)
	l.n += int64(k)
	if err != nil {
		l.err = err
		l.st.stop()
	}
	return k, err
}

// headWriter keeps the first max bytes written to it.
type headWriter struct {
	b   []byte
	max int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// message is the function's own account of a failure: its stderr, or
// the trap or exit code when it wrote none.
func (h *headWriter) message(err error) string {
	msg := strings.TrimSpace(string(h.b))
	var exit *sys.ExitError
	what := ""
	switch {
	case errors.As(err, &exit):
		what = fmt.Sprintf("exit code %d", exit.ExitCode())
	case err != nil:
		what = err.Error()
		if i := strings.IndexByte(what, '\n'); i > 0 {
			what = what[:i] // the trap, without wazero's stack trace
		}
	}
	if msg == "" {
		return what
	}
	return what + ": " + msg
}
