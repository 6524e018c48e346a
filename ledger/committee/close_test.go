package committee

import (
	"testing"
	"time"

	"github.com/orecdn/ore/pod"
)

func TestCloseAtCatchesUpAfterASlowClose(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := pod.Params{GenesisTime: t0, EpochLength: 2 * time.Second}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	end5 := at(12*time.Second + closeDelay) // epoch 5 is [10s, 12s)
	for _, c := range []struct {
		name    string
		closing uint64
		now     time.Time
		want    time.Time
	}{
		{"inside the epoch", 5, at(11 * time.Second), end5},
		// Closing epoch 4 ran until 13s, into epoch 6: epoch 5 is closed
		// at once, not after epoch 6.
		{"after a slow close", 5, at(13 * time.Second), end5},
		{"the clock went back", 9, at(11 * time.Second), end5},
		{"at the start", 0, at(time.Second), at(2*time.Second + closeDelay)},
	} {
		if got := closeAt(p, c.closing, c.now); !got.Equal(c.want) {
			t.Errorf("%s: close at %s, want %s", c.name, got.Sub(t0), c.want.Sub(t0))
		}
	}
}
