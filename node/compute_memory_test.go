package node

import "testing"

// A box's jobs get a quarter of its RAM, and a small box at most enough
// for one function at the default limits, so a 1 GiB board keeps most of
// its memory for delivery.
func TestComputeMemory(t *testing.T) {
	for _, tc := range []struct {
		small bool
		total int64
		want  int64
	}{
		{false, 8 << 30, 2 << 30},
		{true, 1 << 30, 256 << 20},
		{true, 512 << 20, 128 << 20},
		{false, 0, 0}, // RAM unknown: no bound of the box's own
	} {
		if got := computeMemory(tc.small, tc.total); got != tc.want {
			t.Errorf("computeMemory(small %v, %d MiB) = %d MiB, want %d MiB", tc.small, tc.total>>20, got>>20, tc.want>>20)
		}
	}
	c := &Config{ComputeMemory: 64 << 20, SmallMemory: true}
	if got := c.jobMemory(); got != 64<<20 {
		t.Errorf("WithComputeMemory's 64 MiB gave %d MiB", got>>20)
	}
}
