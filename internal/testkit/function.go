package testkit

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FunctionModule returns the test function of package compute (a
// WebAssembly module, compute/testdata/fn.wasm.gz, built from
// compute/testdata/fn), uncompressed, for tests of any package that run
// jobs.
func FunctionModule(t testing.TB) []byte {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testkit: cannot locate the test function")
	}
	f, err := os.Open(filepath.Join(filepath.Dir(here), "..", "..", "compute", "testdata", "fn.wasm.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
