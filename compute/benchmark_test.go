package compute

import (
	"compress/gzip"
	"context"
	"io"
	"testing"
)

// BenchRuntime's figures are of the job it was given: the work it counts
// is a run's, and the sample module is the test function.
func TestBenchRuntime(t *testing.T) {
	mod, err := SampleModule()
	if err != nil {
		t.Fatal(err)
	}
	in := testInput(64 << 10)
	natives := 0
	fig, err := BenchRuntime(context.Background(), RuntimeBench{Module: mod, Args: []string{"gzip", "6"}, Input: in, Rounds: 1,
		Native: func(b []byte) error {
			natives++
			zw, _ := gzip.NewWriterLevel(io.Discard, 6)
			zw.Write(b)
			return zw.Close()
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := run(t, sharedRuntime(t), loadFn(t, sharedRuntime(t), DefaultLimits()), in, "gzip", "6")
	if err != nil {
		t.Fatal(err)
	}
	if fig.Work != res.Work || natives != 2 || fig.NativeMs <= 0 || fig.MeteredMs <= 0 || fig.UnmeteredMs <= 0 {
		t.Fatalf("figures %+v (native runs %d), a run counts %d work units", fig, natives, res.Work)
	}
	// Where the system reports CPU time, the ratios are of it.
	if _, ok := processCPU(); ok != (fig.Clock == "cpu") || ok && (fig.MeteredCPUMs <= 0 || fig.UnmeteredCPUMs <= 0) {
		t.Fatalf("CPU time known: %v; figures %+v", ok, fig)
	}
}
