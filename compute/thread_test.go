package compute

import (
	"runtime"
	"testing"
	"time"
)

// TestRunLeavesTheCPU: a job that computes without a host call does not
// hold the process's only P: another goroutine runs while it does. Before
// runs got a P and a thread of their own, the test's goroutine woke from
// its sleep only after the job had ended.
func TestRunLeavesTheCPU(t *testing.T) {
	rt := sharedRuntime(t)
	// About a second of work on this machine (the loop makes no WASI
	// call, so nothing but its work limit ends it).
	f := loadFn(t, rt, Limits{Work: 1 << 36, MemoryPages: 1024, Output: 1 << 20})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	started := make(chan time.Time)
	ended := make(chan time.Time, 1)
	go func() {
		started <- time.Now()
		run(t, rt, f, nil, "loop")
		ended <- time.Now()
	}()
	t0 := <-started
	time.Sleep(10 * time.Millisecond) // the job enters its loop meanwhile
	woke := time.Since(t0)
	took := (<-ended).Sub(t0)
	// Without a P of its own the job keeps this goroutine asleep until it
	// returns to Go at its end; with one, this goroutine wakes within a
	// small part of the job's run, however loaded the machine.
	if woke > took/2 {
		t.Fatalf("a 10 ms sleep beside a %v job took %v: the job held the only P", took, woke)
	}
	t.Logf("a 10 ms sleep beside a %v job took %v", took, woke)
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("GOMAXPROCS is %d after the run, want 1 again", n)
	}
}
