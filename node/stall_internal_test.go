package node

import (
	"testing"
	"time"
)

// TestGivesUp is the stall rule: a fetch gives up after the stall timeout
// once its providers left, and waits stallPatience timeouts while some
// are still connected.
func TestGivesUp(t *testing.T) {
	const timeout = 30 * time.Second
	for _, tc := range []struct {
		idle time.Duration
		live int
		want bool
	}{
		{0, 0, false},
		{timeout - time.Millisecond, 0, false},
		{timeout, 0, true},
		{timeout, 1, false},
		{timeout - time.Millisecond, 5, false},
		{stallPatience*timeout - time.Millisecond, 1, false},
		{stallPatience*timeout - time.Millisecond, 200, false},
		{stallPatience * timeout, 1, true},
		{stallPatience * timeout, 0, true},
		{10 * stallPatience * timeout, 3, true},
	} {
		if got := givesUp(tc.idle, timeout, tc.live); got != tc.want {
			t.Errorf("givesUp(idle %s, timeout %s, %d live) = %v, want %v", tc.idle, timeout, tc.live, got, tc.want)
		}
	}
}
