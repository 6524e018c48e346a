//go:build linux || darwin

package compute

import (
	"math"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mappedMemory is a job's memory in one anonymous mapping of its maximum
// size (see memory.go).
type mappedMemory struct{ buf []byte }

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

func (m *mappedMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

// allocateMemory maps max bytes, reserved (MAP_NORESERVE) and committed
// page by page as the job touches them; where the mapping fails (a
// 32-bit box short of address space) it falls back to a slice.
func allocateMemory(capacity, max uint64) experimental.LinearMemory {
	if max > 0 && max <= math.MaxInt {
		b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
		if err == nil {
			return &mappedMemory{buf: b}
		}
	}
	return &sliceMemory{buf: make([]byte, 0, capacity), max: max}
}
