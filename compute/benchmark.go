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
type RuntimeFigures struct {
	NativeMs    float64 `json:"native_ms"`
	UnmeteredMs float64 `json:"unmetered_ms"` // the module as written, compiled
	MeteredMs   float64 `json:"metered_ms"`   // as boxes run it: metered, compiled
	// MeteredNative is the runtime's cost against native Go: metered/native.
	MeteredNative float64 `json:"metered_over_native"`
	// UnmeteredNative is wasm's own cost: unmetered/native.
	UnmeteredNative float64 `json:"unmetered_over_native"`
	// MeterOverhead is metered/unmetered - 1.
	MeterOverhead float64 `json:"meter_overhead"`
	Work          uint64  `json:"work_units"`
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
	native := func() (time.Duration, Result, error) {
		t0 := time.Now()
		err := b.Native(b.Input)
		return time.Since(t0), Result{}, err
	}
	steps := []func() (time.Duration, Result, error){
		native,
		func() (time.Duration, Result, error) { return runOn(rt, plain) },
		func() (time.Duration, Result, error) { return runOn(rt, metered) },
	}
	var sums [3]time.Duration
	for round := -1; round < b.Rounds; round++ { // round -1 warms up
		for k := range steps {
			i := (k + max(round, 0)) % len(steps)
			d, res, err := steps[i]()
			if err != nil {
				return fig, fmt.Errorf("compute: bench: step %d: %w", i, err)
			}
			if i == 2 {
				fig.Work = res.Work
			}
			if round >= 0 {
				sums[i] += d
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.Rounds) }
	fig.NativeMs, fig.UnmeteredMs, fig.MeteredMs = ms(sums[0]), ms(sums[1]), ms(sums[2])
	fig.MeteredNative = float64(sums[2]) / float64(sums[0])
	fig.UnmeteredNative = float64(sums[1]) / float64(sums[0])
	fig.MeterOverhead = float64(sums[2])/float64(sums[1]) - 1
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
