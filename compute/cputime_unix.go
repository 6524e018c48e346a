//go:build unix

package compute

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used, on
// every thread: a run's share of it is what the run cost, whatever else
// the machine was doing.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
