package compute

import (
	"fmt"
	"runtime"
	"sync"
)

// A job's compiled code cannot be preempted by Go's scheduler: wazero's
// machine code keeps its goroutine's P (the scheduler's processor) until
// it returns to Go, at a host call or at its end. A function that
// computes without host calls would hold a P for its whole run and, on a
// one-core box, stop every other goroutine (delivery, the DHT, the
// gateway) until it ends: a second of a loop held a GOMAXPROCS=1
// process's other goroutines for the whole second.
//
// So a run (offCPU):
//   - adds a P for its length (procs), so Go code keeps the Ps it had;
//   - runs on an OS thread of its own, at a lower priority where the
//     system has per-thread priorities (Linux: nice +10, lowerThread), so
//     the kernel, which does preempt threads, gives the box's other work
//     the cores first. The thread is never given back to Go's scheduler
//     (the goroutine exits locked to it, so the thread exits with it),
//     and its priority never reaches other goroutines.
//
// A box's job slots (EngineConfig.Concurrency) stay the bound on how many
// such threads run at once.

// jobNice is how much lower than the box's other threads a run's thread
// is scheduled.
const jobNice = 10

// procs counts the Ps added for runs in flight on top of the process's
// own GOMAXPROCS (read when the first run starts). A GOMAXPROCS set by
// someone else while runs are in flight is overwritten when they end.
var procs struct {
	sync.Mutex
	base, extra int
}

func addProc() {
	procs.Lock()
	defer procs.Unlock()
	if procs.extra == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.extra++
	runtime.GOMAXPROCS(procs.base + procs.extra)
}

func dropProc() {
	procs.Lock()
	defer procs.Unlock()
	procs.extra--
	runtime.GOMAXPROCS(procs.base + procs.extra)
}

// offCPU runs fn (a module's entry point) on a thread of its own at a
// lower priority, with a P added for its length, and returns its error;
// a panic in fn is raised again in the caller.
func offCPU(fn func() error) error {
	addProc()
	defer dropProc()
	type outcome struct {
		err   error
		panic any
	}
	done := make(chan outcome, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine, so its
		// lowered priority is not handed to another goroutine.
		runtime.LockOSThread()
		lowerThread(jobNice)
		var o outcome
		defer func() {
			if p := recover(); p != nil {
				o.panic = fmt.Errorf("compute: a run panicked: %v", p)
			}
			done <- o
		}()
		o.err = fn()
	}()
	o := <-done
	if o.panic != nil {
		panic(o.panic)
	}
	return o.err
}
