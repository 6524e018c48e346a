package compute

import "syscall"

// lowerThread raises the calling thread's nice value by n (Linux keeps a
// priority per thread: setpriority(PRIO_PROCESS, tid)). A thread may
// always lower its own priority; failing to is harmless, so an error is
// ignored.
func lowerThread(n int) {
	tid := syscall.Gettid()
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return
	}
	// The raw syscall returns 20 - nice.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(20-cur+n, 19))
}
