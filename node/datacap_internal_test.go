package node

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestDataCapHoldsTheMonthAndResets(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 12, 30, 23, 0, 0, 0, time.Local)}
	d, err := newDataCap(dir, 1000, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g := capGate{d: d}
	for i := 0; i < 4; i++ {
		if !g.Allow("p", cid.Undef, 250) {
			t.Fatalf("block %d of 250 bytes refused under a 1000-byte cap", i)
		}
	}
	if g.Allow("p", cid.Undef, 1) || d.allow("p", testCID(t, 1)) {
		t.Fatal("a byte past the cap was let through, or a new want taken")
	}
	v := d.view()
	if !v.Reached || v.Left != 0 || v.Used != 1000 || v.Month != "2026-12" {
		t.Fatalf("view at the cap: %+v", v)
	}
	// A block that did not leave gives its bytes back.
	g.Refund("p", cid.Undef, 250)
	if !g.Allow("p", cid.Undef, 200) || g.Allow("p", cid.Undef, 51) {
		t.Fatal("a refund did not give back exactly its bytes")
	}
	// Restart: the count is kept.
	d.save()
	d2, err := newDataCap(dir, 1000, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if v := d2.view(); v.Used != 950 {
		t.Fatalf("after a restart the month's count is %d, want 950", v.Used)
	}
	// A new month starts from 0, also for a count read from disk.
	clk.set(time.Date(2027, 1, 1, 0, 0, 1, 0, time.Local))
	if v := d2.view(); v.Used != 0 || v.Reached || v.Month != "2027-01" || v.Left != 1000 {
		t.Fatalf("a new month: %+v", v)
	}
	if !(capGate{d: d2}).Allow("p", cid.Undef, 1000) {
		t.Fatal("a new month's first block refused")
	}
	// A raised cap serves again at once; 0 lifts it.
	d2.set(2000)
	if !(capGate{d: d2}).Allow("p", cid.Undef, 1000) {
		t.Fatal("a raised cap did not serve")
	}
	d2.set(0)
	if !(capGate{d: d2}).Allow("p", cid.Undef, 1<<40) {
		t.Fatal("no cap refused a block")
	}
}

func TestDataCapDamagedFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DataCapFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := newDataCap(dir, 10, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if v := d.view(); v.Used != 0 || v.Cap != 10 {
		t.Fatalf("damaged file: %+v", v)
	}
	// A gate in front of a next gate that says no counts nothing.
	g := capGate{d: d, next: refuseAll{}}
	if g.Allow("p", cid.Undef, 5) {
		t.Fatal("the next gate's refusal was overridden")
	}
	if v := d.view(); v.Used != 0 {
		t.Fatalf("a block the next gate held was counted: %+v", v)
	}
}

type refuseAll struct{}

func (refuseAll) Allow(peer.ID, cid.Cid, int) bool { return false }

// TestDataCapOneMeter: the three paths share one count and one cap, each
// kept across a restart, and a file from before the gateway and fetches
// were counted (served bytes only) still reads.
func TestDataCapOneMeter(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.Local)}
	d, err := newDataCap(dir, 1000, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !(capGate{d: d}).Allow("p", cid.Undef, 300) || !(gatewayMeter{d}).Reserve(300) {
		t.Fatal("bytes within the cap refused")
	}
	d.add(capFetched, 300)
	if err := d.refusal(); err != nil {
		t.Fatalf("900 of 1000 bytes used: %v", err)
	}
	// 100 bytes left: the gateway's 101st byte is refused, and a block
	// that arrives counts anyway.
	if (gatewayMeter{d}).Reserve(101) {
		t.Fatal("the gateway wrote past the cap the other paths used")
	}
	d.add(capFetched, 200)
	if err := d.refusal(); !errors.Is(err, ErrDataCapReached) {
		t.Fatalf("1100 of 1000 bytes used: %v", err)
	}
	if (capGate{d: d}).Allow("p", cid.Undef, 1) || d.allow("p", testCID(t, 1)) {
		t.Fatal("bitswap served after fetches used up the cap")
	}
	want := DataCapView{Cap: 1000, Month: "2026-12", Used: 1100, Served: 300, Gateway: 300, Fetched: 500, Reached: true}
	d.save()
	d2, err := newDataCap(dir, 1000, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if v := d2.view(); v.Cap != want.Cap || v.Month != want.Month || v.Used != want.Used || v.Served != want.Served ||
		v.Gateway != want.Gateway || v.Fetched != want.Fetched || v.Reached != want.Reached || v.Left != 0 {
		t.Fatalf("after a restart: %+v, want %+v", v, want)
	}
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, DataCapFile), []byte(`{"month":"2026-12","served_bytes":700}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d3, err := newDataCap(old, 1000, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if v := d3.view(); v.Used != 700 || v.Served != 700 {
		t.Fatalf("an older file's count: %+v", v)
	}
}
