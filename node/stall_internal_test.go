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

// TestEndgameWait is the end game's wait before a chunk asks again: 5 s
// for a fetch whose blocks come often, endgamePace mean times per block
// for one whose blocks come slowly (slow uplinks), never past the limit.
func TestEndgameWait(t *testing.T) {
	const limit = 15 * time.Second
	for _, tc := range []struct {
		elapsed time.Duration
		blocks  int64
		want    time.Duration
	}{
		{0, 0, endgameRewant},
		{10 * time.Second, 1, endgameRewant},                  // one block: no interval yet
		{60 * time.Second, 61, endgameRewant},                 // 1 s a block: 4 s, under the floor
		{63 * time.Second, 22, endgamePace * 3 * time.Second}, // 3 s a block
		{200 * time.Second, 11, limit},                        // 20 s a block: capped
		{time.Second, 1001, endgameRewant},
	} {
		if got := endgameWait(tc.elapsed, tc.blocks, limit); got != tc.want {
			t.Errorf("endgameWait(%s, %d blocks, limit %s) = %s, want %s", tc.elapsed, tc.blocks, limit, got, tc.want)
		}
	}
	if got := endgameWait(time.Hour, 2, 2*time.Second); got != 2*time.Second {
		t.Errorf("endgameWait under a limit below the floor = %s, want the limit", got)
	}
}
