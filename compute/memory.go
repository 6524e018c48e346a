package compute

import (
	"github.com/tetratelabs/wazero/experimental"
)

// A job's linear memory. wazero's own grows a Go slice: each memory.grow
// past its capacity allocates a larger slice, zeroes it and copies the
// memory over, and the old one lingers until the Go collector runs. Go
// programs built for wasm grow their memory many times as their heap
// grows, so for them that is a large share of a job's time (a gzip of
// 1 MiB ran 1.5x as long; see the commit that brought this file). Where
// the system can map memory (memory_mmap.go), a job's memory is instead
// one anonymous mapping of its maximum size, reserved and not committed:
// growing it only hands out more of the mapping, pages are zeroed by the
// kernel when first touched, and the whole mapping goes back to the
// system when the job ends. A job's memory has a maximum: the meter's
// rewrite sets it to the function's limit.

// memoryAllocator is the allocator Run hands wazero (nil: wazero's own).
var memoryAllocator experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(allocateMemory)

// sliceMemory is wazero's way, for when a mapping cannot be had.
type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	m.buf = append(m.buf, make([]byte, size-uint64(len(m.buf)))...)
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }
