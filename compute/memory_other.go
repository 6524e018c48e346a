//go:build !linux && !darwin

package compute

import "github.com/tetratelabs/wazero/experimental"

// allocateMemory is wazero's way where the system maps no memory for us.
func allocateMemory(capacity, max uint64) experimental.LinearMemory {
	return &sliceMemory{buf: make([]byte, 0, capacity), max: max}
}
