//go:build !unix

package compute

import "time"

// processCPU is not known here: benchmarks fall back to wall time.
func processCPU() (time.Duration, bool) { return 0, false }
