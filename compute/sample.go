package compute

import (
	"bytes"
	"compress/gzip"
	_ "embed" // the sample function
	"fmt"
	"io"
)

// sampleGz is the package's test function (testdata/fn, built by gen.sh):
// a WASI command whose first argument picks a mode (gzip LEVEL, upper,
// sha256, and hostile ones: loop, hog, flood, fail, panic, sleep).
//
//go:embed testdata/fn.wasm.gz
var sampleGz []byte

// SampleModule returns the sample function's module: a real Go program
// built with GOOS=wasip1 GOARCH=wasm, for `ore bench compute` and `ore
// demo` (its gzip mode is the benchmark's job).
func SampleModule() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(sampleGz))
	if err != nil {
		return nil, fmt.Errorf("compute: the sample module: %w", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("compute: the sample module: %w", err)
	}
	return b, nil
}
