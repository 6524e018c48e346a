package compute

import (
	"bytes"
	"compress/gzip"
	"context"
	"testing"
	"time"
)

// loadUnmetered compiles the test function as written, without the
// meter, to measure what the meter costs.
func loadUnmetered(b *testing.B, rt *Runtime, lim Limits) *Function {
	mod, err := rt.r.CompileModule(context.Background(), testFn(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mod.Close(context.Background()) })
	return &Function{Key: "fn-unmetered", Limits: lim, mod: mod, rt: rt, refs: 1}
}

// BenchmarkGzip gzips 1 MiB (level 6) natively, in the runtime without
// the meter and with it, by turns within each iteration, and reports the
// ratios of the three times measured in the same run: wasm/native and
// metered/unmetered (the meter's overhead).
func BenchmarkGzip(b *testing.B) {
	rt := sharedRuntime(b)
	lim := DefaultLimits()
	metered := loadFn(b, rt, lim)
	plain := loadUnmetered(b, rt, lim)
	in := testInput(1 << 20)
	var native, wasm, meter time.Duration
	var work uint64
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	timed := func(f *Function) (time.Duration, Result) {
		t0 := time.Now()
		_, res, err := run(b, rt, f, in, "gzip", "6")
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(t0), res
	}
	i := 0
	for b.Loop() {
		t0 := time.Now()
		var nb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&nb, 6)
		zw.Write(in)
		zw.Close()
		native += time.Since(t0)
		// By turns, so neither is always the one after the native run.
		var dp, dm time.Duration
		var res Result
		if i%2 == 0 {
			dp, _ = timed(plain)
			dm, res = timed(metered)
		} else {
			dm, res = timed(metered)
			dp, _ = timed(plain)
		}
		i++
		wasm += dp
		meter += dm
		work = res.Work
	}
	b.ReportMetric(float64(wasm)/float64(native), "wasm/native")
	b.ReportMetric(float64(meter)/float64(wasm), "metered/unmetered")
	b.ReportMetric(float64(work), "work-units")
	b.ReportMetric(float64(meter.Nanoseconds())/float64(b.N)/1e6, "metered-ms/job")
}

// BenchmarkGzipInterpreter gzips 1 MiB with wazero's compiler and its
// interpreter (what armv7 boxes run) by turns, and reports the
// interpreter's time over the compiler's, measured in the same run.
func BenchmarkGzipInterpreter(b *testing.B) {
	rt := sharedRuntime(b)
	interp, err := New(context.Background(), Config{Interpreter: true})
	if err != nil {
		b.Fatal(err)
	}
	defer interp.Close(context.Background())
	lim := DefaultLimits()
	fc, fi := loadFn(b, rt, lim), loadFn(b, interp, lim)
	in := testInput(1 << 20)
	var tc, ti time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := run(b, rt, fc, in, "gzip", "6"); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, _, err := run(b, interp, fi, in, "gzip", "6"); err != nil {
			b.Fatal(err)
		}
		tc += t1.Sub(t0)
		ti += time.Since(t1)
	}
	b.ReportMetric(float64(ti)/float64(tc), "interpreter/compiler")
	b.ReportMetric(float64(ti.Nanoseconds())/float64(b.N)/1e6, "interpreter-ms/job")
}
