package node

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/bitswap"
)

// never is a credit window that never lets a block go.
type never struct{ asked int }

func (n *never) Allow(peer.ID, cid.Cid, int) bool { n.asked++; return false }

// testFree is a free tier on a fake clock where every peer but "ore" is
// not an ore peer; release calls are recorded, timers fire when told.
type testFree struct {
	*freeTier
	clock    time.Time
	released []peer.ID
	timers   []func()
}

func newTestFree(t *testing.T, rate, daily int64) (*testFree, *never) {
	t.Helper()
	inner := &never{}
	f, err := newFreeTier(nil, inner, rate, daily, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFree{freeTier: f, clock: time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)}
	f.isOre = func(p peer.ID) bool { return p == "ore" }
	f.now = func() time.Time { return tf.clock }
	f.release = func(p peer.ID) { tf.released = append(tf.released, p) }
	f.after = func(_ time.Duration, fn func()) { tf.timers = append(tf.timers, fn) }
	return tf, inner
}

const kib = 1 << 10

// Ore peers keep the credit window; others are served from the free
// budget, which a new peer ID does not enlarge.
func TestFreeTierSharesOneBudget(t *testing.T) {
	f, inner := newTestFree(t, 1<<20, 1<<40)
	if v := f.Decide("ore", cid.Undef, 100); v != bitswap.Hold || inner.asked != 1 {
		t.Fatalf("an ore peer: %v (window asked %d times), want the credit window's hold", v, inner.asked)
	}
	// The global bucket holds max(rate, 2 MiB) at the start: 8 blocks of
	// 256 KiB, whichever peers ask.
	sent := 0
	for i := range 64 {
		p := peer.ID(rune('a' + i%32)) // 32 sybils
		if f.Decide(p, cid.Undef, 256*kib) == bitswap.Send {
			sent++
		}
	}
	if sent != 8 {
		t.Fatalf("32 peer IDs got %d blocks of 256 KiB at once, want 8 (2 MiB, the shared burst)", sent)
	}
	if inner.asked != 1 {
		t.Errorf("free peers reached the credit window")
	}
}

// A block the peer's share pays within freeMaxWait is held and the peer
// released when its tokens are there; beyond that wait: DONT_HAVE.
func TestFreeTierHoldsThenRefuses(t *testing.T) {
	f, _ := newTestFree(t, 256*kib, 1<<40)
	p := peer.ID("kubo")
	for range 8 { // the 2 MiB burst
		if v := f.Decide(p, cid.Undef, 256*kib); v != bitswap.Send {
			t.Fatalf("within the burst: %v", v)
		}
	}
	if v := f.Decide(p, cid.Undef, 256*kib); v != bitswap.Hold || len(f.timers) != 1 {
		t.Fatalf("a block one second away: %v, %d timers; want a hold and one release timer", v, len(f.timers))
	}
	if v := f.Decide(p, cid.Undef, 256*kib); v != bitswap.Hold || len(f.timers) != 1 {
		t.Fatalf("second held block: %v, %d timers; want one timer per peer", v, len(f.timers))
	}
	if v := f.Decide(p, cid.Undef, 1<<20); v != bitswap.DontHave {
		t.Fatalf("a block 4 s away: %v, want DONT_HAVE", v)
	}
	f.timers[0]()
	if len(f.released) != 1 || f.released[0] != p {
		t.Fatalf("released %v", f.released)
	}
	f.clock = f.clock.Add(time.Second)
	if v := f.Decide(p, cid.Undef, 256*kib); v != bitswap.Send {
		t.Fatalf("a second later: %v", v)
	}
}

// Two active free peers split the rate; the day's budget is a hard stop
// until the next UTC day.
func TestFreeTierFairShareAndDailyBudget(t *testing.T) {
	f, _ := newTestFree(t, 1<<20, 1<<40)
	a, b := peer.ID("a"), peer.ID("b")
	// Drain both buckets, both peers active.
	for f.Decide(a, cid.Undef, 256*kib) == bitswap.Send {
	}
	f.Decide(b, cid.Undef, 256*kib)
	f.clock = f.clock.Add(1100 * time.Millisecond) // recount: 2 active
	got := map[peer.ID]int{}
	for range 200 { // 20 s
		f.clock = f.clock.Add(100 * time.Millisecond)
		for _, p := range []peer.ID{a, b} {
			for f.Decide(p, cid.Undef, 16*kib) == bitswap.Send {
				got[p] += 16 * kib
			}
		}
	}
	// 20 s at 1 MiB/s split two ways: about 10 MiB each (give or take
	// one peer's 2 MiB burst).
	for _, p := range []peer.ID{a, b} {
		if got[p] < 8<<20 || got[p] > 12<<20 {
			t.Errorf("peer %s got %d KiB in 20 s, want about 10 MiB (half of 1 MiB/s)", p, got[p]/kib)
		}
	}
	// The day's budget.
	c := peer.ID("c")
	f.daily, f.used = 5<<20, 5<<20-100
	if v := f.Decide(c, cid.Undef, 200); v != bitswap.DontHave {
		t.Fatalf("over the day's budget: %v", v)
	}
	f.clock = f.clock.Add(time.Hour) // past midnight UTC
	if v := f.Decide(c, cid.Undef, 200); v != bitswap.Send {
		t.Fatalf("a new day: %v", v)
	}
}

// config.json's free_rate and free_daily reach the free tier; the small
// profile's defaults are smaller; nonsense is refused.
func TestFreeTierConfig(t *testing.T) {
	apply := func(fc FileConfig) (*Config, error) {
		c, err := defaults()
		if err != nil {
			return nil, err
		}
		opts, err := fc.Options()
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			if err := o(c); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	for _, tc := range []struct {
		fc        FileConfig
		rate, day int64
		bad       bool
	}{
		{fc: FileConfig{}, rate: DefaultFreeRate, day: DefaultFreeDaily},
		{fc: FileConfig{Profile: "small"}, rate: SmallFreeRate, day: SmallFreeDaily},
		{fc: FileConfig{FreeRate: "1 MiB", FreeDaily: "2 GiB"}, rate: 1 << 20, day: 2 << 30},
		{fc: FileConfig{FreeRate: "off"}, rate: -1, day: DefaultFreeDaily},
		{fc: FileConfig{FreeRate: "fast"}, bad: true},
		{fc: FileConfig{FreeRate: "1 KiB"}, bad: true}, // a 2 MiB block would take half an hour
		{fc: FileConfig{FreeDaily: "-5"}, bad: true},
	} {
		c, err := apply(tc.fc)
		if tc.bad {
			if err == nil {
				t.Errorf("%+v accepted", tc.fc)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc.fc, err)
		}
		if r, d := c.freeTier(); r != tc.rate || d != tc.day {
			t.Errorf("%+v: free tier %d B/s, %d B/day; want %d, %d", tc.fc, r, d, tc.rate, tc.day)
		}
	}
}
