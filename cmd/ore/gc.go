package main

import (
	"os"
	"runtime/debug"
)

// coordinatorGCPercent is the garbage collector's target (GOGC) of a
// process that runs coordinators. A coordinator allocates for every
// receipt it takes (the gossip message, the decoded receipt, its place in
// the pool and in blocks) and keeps little of it, so at Go's default of
// 100 the collector runs often and takes a share of the CPU that the
// committee needs to keep up with the receipt stream; a larger target
// trades memory (a coordinator runs on a server, not on a box) for that
// CPU. README, "Figures", says what it bought and what it cost.
const coordinatorGCPercent = 300

// coordinatorGC sets the collector's target of a process that runs
// coordinators, unless the operator chose one with GOGC.
func coordinatorGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(coordinatorGCPercent)
	}
}
