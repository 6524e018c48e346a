//go:build !linux

package compute

// lowerThread does nothing where threads have no priority of their own
// that a process can set portably: the added P still keeps Go code
// running beside a job.
func lowerThread(int) {}
