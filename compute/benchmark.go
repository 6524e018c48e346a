package compute

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"
)

// RuntimeBench is what BenchRuntime measures: one job, run natively and
// in the runtime by turns.
type RuntimeBench struct {
	Module []byte   // a WASI command
	Args   []string // the job's arguments
	Input  []byte   // its stdin
	// Native is the same Go code as the module's, run in this process
	// on the same input (output discarded).
	Native func(in []byte) error
	Rounds int // of each (default 5)
	// Interpreter also runs the job in wazero's interpreter (what armv7
	// boxes run), a round of its own: slow.
	Interpreter bool
}

// RuntimeFigures are BenchRuntime's figures, each the mean of its rounds,
// all measured by turns in the same run, so the ratios hold on a shared
// machine where the absolute times do not.
//
// The ratios are of each kind's fastest round (a machine's other work
// only ever adds time to a run, so the least is the run's own cost; the
// means shift with whoever else ran), and of CPU time (Clock "cpu": the process's user and system
// time over each run, every thread counted, so a run pays for its garbage
// collection and the host calls it makes) where the system reports it,
// and of wall time elsewhere (Clock "wall"). CPU time is what a job costs
// a box; wall time also counts the time other processes held the core,
// which on a shared machine moved the wall ratios by more than the
// meter's whole cost (a metered run faster than the unmetered one). The
// wall ratios are kept next to them.
type RuntimeFigures struct {
	NativeMs    float64 `json:"native_ms"`    // wall time
	UnmeteredMs float64 `json:"unmetered_ms"` // the module as written, compiled
	MeteredMs   float64 `json:"metered_ms"`   // as boxes run it: metered, compiled
	// CPU time of the same runs (0 when the clock is "wall").
	NativeCPUMs    float64 `json:"native_cpu_ms,omitempty"`
	UnmeteredCPUMs float64 `json:"unmetered_cpu_ms,omitempty"`
	MeteredCPUMs   float64 `json:"metered_cpu_ms,omitempty"`
	Clock          string  `json:"clock"` // of the three ratios: "cpu" or "wall"
	// MeteredNative is the runtime's cost against native Go: metered/native.
	MeteredNative float64 `json:"metered_over_native"`
	// UnmeteredNative is wasm's own cost: unmetered/native.
	UnmeteredNative float64 `json:"unmetered_over_native"`
	// MeterOverhead is metered/unmetered - 1.
	MeterOverhead float64 `json:"meter_overhead"`
	// The same ratios in wall time.
	WallMeteredNative float64 `json:"wall_metered_over_native"`
	WallMeterOverhead float64 `json:"wall_meter_overhead"`
	Work              uint64  `json:"work_units"`
	// InterpreterMs and InterpreterRatio (interpreter/compiled, metered
	// both) when RuntimeBench.Interpreter.
	InterpreterMs    float64 `json:"interpreter_ms,omitempty"`
	InterpreterRatio float64 `json:"interpreter_over_compiled,omitempty"`
	Rounds           int     `json:"rounds"`
}

// BenchRuntime measures a job natively, unmetered and metered in the
// compiler, by turns (each round starts with a different one), after a
// warm-up run of each.
func BenchRuntime(ctx context.Context, b RuntimeBench) (RuntimeFigures, error) {
	if b.Rounds <= 0 {
		b.Rounds = 5
	}
	fig := RuntimeFigures{Rounds: b.Rounds}
	rt, err := New(ctx, Config{})
	if err != nil {
		return fig, err
	}
	defer rt.Close(context.Background())
	lim := DefaultLimits()
	metered, err := rt.Load(ctx, "bench", b.Module, lim)
	if err != nil {
		return fig, err
	}
	defer metered.Release()
	mod, err := rt.r.CompileModule(ctx, b.Module)
	if err != nil {
		return fig, fmt.Errorf("compute: bench: compile the module unmetered: %w", err)
	}
	defer mod.Close(context.Background())
	plain := &Function{Key: "bench-unmetered", Limits: lim, mod: mod, rt: rt, refs: 1}
	seed := sha256.Sum256(b.Input)
	runOn := func(r *Runtime, f *Function) (time.Duration, Result, error) {
		t0 := time.Now()
		res, err := r.Run(ctx, f, Job{Args: b.Args, Stdin: bytes.NewReader(b.Input), Seed: seed}, io.Discard)
		return time.Since(t0), res, err
	}
	steps := []func() (Result, error){
		func() (Result, error) { return Result{}, b.Native(b.Input) },
		func() (Result, error) { _, res, err := runOn(rt, plain); return res, err },
		func() (Result, error) { _, res, err := runOn(rt, metered); return res, err },
	}
	// One run at a time in the process: its CPU time is the run's.
	var wall, cpu, minWall, minCPU [3]time.Duration
	_, hasCPU := processCPU()
	for round := -1; round < b.Rounds; round++ { // round -1 warms up
		for k := range steps {
			i := (k + max(round, 0)) % len(steps)
			c0, _ := processCPU()
			t0 := time.Now()
			res, err := steps[i]()
			d := time.Since(t0)
			c1, _ := processCPU()
			if err != nil {
				return fig, fmt.Errorf("compute: bench: step %d: %w", i, err)
			}
			if i == 2 {
				fig.Work = res.Work
			}
			if round >= 0 {
				wall[i] += d
				cpu[i] += c1 - c0
				if round == 0 || d < minWall[i] {
					minWall[i] = d
				}
				if round == 0 || c1-c0 < minCPU[i] {
					minCPU[i] = c1 - c0
				}
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.Rounds) }
	fig.NativeMs, fig.UnmeteredMs, fig.MeteredMs = ms(wall[0]), ms(wall[1]), ms(wall[2])
	fig.WallMeteredNative = float64(minWall[2]) / float64(minWall[0])
	fig.WallMeterOverhead = float64(minWall[2])/float64(minWall[1]) - 1
	base := minWall
	fig.Clock = "wall"
	if hasCPU && minCPU[0] > 0 && minCPU[1] > 0 {
		fig.NativeCPUMs, fig.UnmeteredCPUMs, fig.MeteredCPUMs = ms(cpu[0]), ms(cpu[1]), ms(cpu[2])
		base, fig.Clock = minCPU, "cpu"
	}
	fig.MeteredNative = float64(base[2]) / float64(base[0])
	fig.UnmeteredNative = float64(base[1]) / float64(base[0])
	fig.MeterOverhead = float64(base[2])/float64(base[1]) - 1
	if !b.Interpreter {
		return fig, nil
	}
	irt, err := New(ctx, Config{Interpreter: true})
	if err != nil {
		return fig, err
	}
	defer irt.Close(context.Background())
	fi, err := irt.Load(ctx, "bench", b.Module, lim)
	if err != nil {
		return fig, err
	}
	defer fi.Release()
	dc, _, err := runOn(rt, metered)
	if err != nil {
		return fig, err
	}
	di, res, err := runOn(irt, fi)
	if err != nil {
		return fig, err
	}
	if res.Work != fig.Work {
		return fig, errors.New("compute: bench: the interpreter counted other work than the compiler: the meter is not deterministic")
	}
	fig.InterpreterMs = float64(di.Microseconds()) / 1e3
	fig.InterpreterRatio = float64(di) / float64(dc)
	return fig, nil
}
