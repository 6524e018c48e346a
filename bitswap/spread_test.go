package bitswap

import (
	"fmt"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }

func testBlocks(n int) []blocks.Block {
	out := make([]blocks.Block, n)
	for i := range out {
		data := make([]byte, spreadMinSize)
		copy(data, fmt.Sprintf("block %d", i))
		out[i] = blocks.NewBlock(data)
	}
	return out
}

func newTestSpreader(hold time.Duration, seed func(cid.Cid) bool) (*spreader, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	s := newSpreader(hold, seed)
	s.now = clk.now
	return s, clk
}

func cids(ws []*heldWant) map[cid.Cid]bool {
	out := make(map[cid.Cid]bool)
	for _, w := range ws {
		out[w.c] = true
	}
	return out
}

func TestSpreadHoldsRepeatsUntilTheHoldPasses(t *testing.T) {
	if newSpreader(0, nil) != nil {
		t.Fatal("hold 0 must mean no spreading")
	}
	s, clk := newTestSpreader(10*time.Second, nil)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	blks := testBlocks(3)
	if got := s.filter(a, blks); len(got) != 3 {
		t.Fatalf("first sends: %d of 3 left", len(got))
	}
	// b asks for the same blocks 1 s later: held back, not refused.
	clk.t = clk.t.Add(time.Second)
	if got := s.filter(b, blks[:2]); len(got) != 0 {
		t.Fatalf("repeats within the hold: %d left at once", len(got))
	}
	// and c asks for a block nobody got yet: it leaves.
	fresh := testBlocks(4)[3:]
	if got := s.filter(c, fresh); len(got) != 1 {
		t.Fatal("a block not sent before must leave at once")
	}
	// The seed keeps quiet about a block it just sent, to others than
	// the peer it sent it to.
	if !s.sentRecently(fresh[0].Cid(), a) || s.sentRecently(fresh[0].Cid(), c) {
		t.Fatal("HAVE must be kept from other askers only")
	}
	if n := s.heldCount(); n != 2 {
		t.Fatalf("held %d wants, want 2", n)
	}
	clk.t = clk.t.Add(9 * time.Second) // 10 s after the first send
	if d := s.due(); len(d) != 0 {
		t.Fatalf("released before a hold passed since the ask: %v", d)
	}
	clk.t = clk.t.Add(time.Second) // a hold after b asked
	d := s.due()
	if got := cids(d[b]); len(got) != 2 || !got[blks[0].Cid()] || !got[blks[1].Cid()] {
		t.Fatalf("a hold after the ask, b's two wants must leave, got %v", d)
	}
	for _, w := range d[b] {
		if w.b == nil {
			t.Fatal("a small held block must be kept in memory")
		}
	}
	if n := s.heldCount(); n != 0 {
		t.Fatalf("%d wants still held", n)
	}
	// A release counts as a send: a third asker waits for the next hold.
	if got := s.filter(c, blks[:1]); len(got) != 0 {
		t.Fatal("a block just released must be held for the next asker")
	}
	// A peer asking again for what it was just sent is no crowd.
	if got := s.filter(c, fresh); len(got) != 1 {
		t.Fatal("a repeat for the same peer must leave at once")
	}
	// Small blocks (a DAG's inner nodes) always leave.
	small := blocks.NewBlock([]byte("inner node"))
	s.filter(a, []blocks.Block{small})
	if got := s.filter(b, []blocks.Block{small}); len(got) != 1 {
		t.Fatal("a small block must never be held back")
	}
}

func TestSpreadOneReleasePerHoldAndBoundedWait(t *testing.T) {
	s, clk := newTestSpreader(10*time.Second, nil)
	blk := testBlocks(1)
	s.filter("a", blk)
	// Three more askers, 2 s apart: each held a hold from its ask.
	for i, p := range []peer.ID{"b", "c", "d"} {
		clk.t = clk.t.Add(2 * time.Second)
		if got := s.filter(p, blk); len(got) != 0 {
			t.Fatalf("asker %d: repeat left at once", i)
		}
	}
	clk.t = clk.t.Add(5 * time.Second) // t = 11 s
	if d := s.due(); len(d) != 0 {
		t.Fatalf("%d askers got the block before a hold since their ask", len(d))
	}
	clk.t = clk.t.Add(time.Second) // t = 12 s: b asked a hold ago
	if d := s.due(); len(d) != 1 || len(d["b"]) != 1 {
		t.Fatalf("a hold after the first repeat's ask %v got the block, want b alone", d)
	}
	// Before the next hold since that send, nobody else: the crowd may
	// deliver meanwhile.
	clk.t = clk.t.Add(6 * time.Second) // t = 18 s
	if d := s.due(); len(d) != 0 {
		t.Fatalf("%d askers left before the next hold", len(d))
	}
	// The last asker asked at 6 s: by 21 s everyone waited 1.5 holds at
	// most and got the block.
	clk.t = clk.t.Add(3 * time.Second) // t = 21 s
	s.due()
	if n := s.heldCount(); n != 0 {
		t.Fatalf("%d askers still held 1.5 holds after they asked", n)
	}
}

func TestSpreadCancelAndFullWantlistDropHeldWants(t *testing.T) {
	s, clk := newTestSpreader(time.Second, nil)
	a, b := peer.ID("a"), peer.ID("b")
	blks := testBlocks(3)
	s.filter(a, blks)
	s.filter(b, blks)
	if n := s.heldCount(); n != 3 {
		t.Fatalf("held %d, want 3", n)
	}
	// b got block 0 elsewhere and cancels.
	m := bsmsg.New(false)
	m.Cancel(blks[0].Cid())
	s.received(b, m)
	if n := s.heldCount(); n != 2 {
		t.Fatalf("after a cancel held %d, want 2", n)
	}
	// b sends its full wantlist: only block 2 is still wanted.
	full := bsmsg.New(true)
	full.AddEntry(blks[2].Cid(), 1, pb.Message_Wantlist_Block, true)
	s.received(b, full)
	if n := s.heldCount(); n != 1 {
		t.Fatalf("after a full wantlist held %d, want 1", n)
	}
	clk.t = clk.t.Add(time.Second)
	if got := cids(s.due()[b]); len(got) != 1 || !got[blks[2].Cid()] {
		t.Fatalf("released %v, want block 2 only", got)
	}
	// b asks again for block 0 (sent to a a hold ago): a repeat, held.
	s.filter(b, blks[:1])
	if n := s.heldCount(); n != 1 {
		t.Fatalf("held %d, want b's repeat", n)
	}
	s.forget(b)
	if n := s.heldCount(); n != 0 {
		t.Fatalf("a peer that left keeps %d held wants", n)
	}
}

// A repeat after the hold waits while blocks nobody got yet leave; once
// none did for firstSendQuiet, it leaves; and it never waits past
// maxWaitHolds holds.
func TestSpreadSendsEveryBlockOnceBeforeAnyTwice(t *testing.T) {
	s, clk := newTestSpreader(10*time.Second, nil)
	a, b := peer.ID("a"), peer.ID("b")
	blks := testBlocks(40)
	s.filter(a, blks[:1])
	clk.t = clk.t.Add(10 * time.Second) // block 0's hold passed
	if got := s.filter(b, blks[:1]); len(got) != 0 {
		t.Fatal("a repeat after the hold must wait")
	}
	asked := clk.t
	// First sends keep leaving, two a second, past the repeat's hold: it
	// waits.
	for i := 1; clk.t.Sub(asked) < 13*time.Second; i++ {
		if got := s.filter(a, blks[i:i+1]); len(got) != 1 {
			t.Fatalf("first send of block %d held back", i)
		}
		clk.t = clk.t.Add(firstSendQuiet / 2)
		if d := s.due(); len(d) != 0 {
			t.Fatalf("a repeat left %s after it was asked while first sends flow", clk.t.Sub(asked))
		}
	}
	clk.t = clk.t.Add(firstSendQuiet)
	if got := cids(s.due()[b]); len(got) != 1 || !got[blks[0].Cid()] {
		t.Fatalf("once first sends stop the repeat must leave, got %v", got)
	}
	// With first sends flowing for ever, a repeat still leaves after
	// maxWaitHolds holds.
	clk.t = clk.t.Add(10 * time.Second)
	s.filter(b, blks[2:3]) // sent to a 15 s ago: a repeat
	start := clk.t
	for clk.t.Sub(start) < s.maxWait() {
		s.lastFirst = clk.t // a first send just left
		if d := s.due(); len(d[b]) != 0 {
			t.Fatalf("repeat left after %s while first sends flow", clk.t.Sub(start))
		}
		clk.t = clk.t.Add(time.Second)
	}
	s.lastFirst = clk.t
	if got := cids(s.due()[b]); len(got) != 1 || !got[blks[2].Cid()] {
		t.Fatalf("after %s the repeat must leave anyway, got %v", s.maxWait(), got)
	}
}

// A block last sent to a peer that left is not held: nobody passes it on.
func TestSpreadForgetsTheSendsToAPeerThatLeft(t *testing.T) {
	s, _ := newTestSpreader(time.Minute, nil)
	blks := testBlocks(2)
	s.filter("a", blks[:1])
	s.filter("b", blks[1:])
	s.forget("a")
	if got := s.filter("c", blks); len(got) != 1 || got[0].Cid() != blks[0].Cid() {
		t.Fatalf("block 0 went to a peer that left and must leave again, block 1 is held; got %d blocks", len(got))
	}
}

func TestSpreadLetsUnseededBlocksThrough(t *testing.T) {
	blks := testBlocks(2)
	seeded := blks[0].Cid()
	s, _ := newTestSpreader(time.Minute, func(c cid.Cid) bool { return c == seeded })
	s.filter("a", blks)
	got := s.filter("b", blks)
	if len(got) != 1 || got[0].Cid() != blks[1].Cid() {
		t.Fatalf("a block the box does not seed must always leave, got %v", got)
	}
}

func TestSpreadKeepsOnlyCIDsBeyondTheMemoryBudget(t *testing.T) {
	s, clk := newTestSpreader(time.Second, nil)
	big := blocks.NewBlock(make([]byte, maxSpreadHeldBytes/2+1))
	s.filter("a", []blocks.Block{big})
	s.filter("b", []blocks.Block{big})
	s.filter("c", []blocks.Block{big})
	clk.t = clk.t.Add(time.Second)
	d := s.due()
	kept := 0
	for _, ws := range d {
		for _, w := range ws {
			if w.b != nil {
				kept++
			}
		}
	}
	// One leaves now (the other waits for the next hold); at most one
	// block's bytes fit the budget.
	if len(d) != 1 || kept > 1 {
		t.Fatalf("released %d peers, %d with bytes", len(d), kept)
	}
	if s.bytes < 0 || s.bytes > maxSpreadHeldBytes {
		t.Fatalf("held bytes %d out of bounds", s.bytes)
	}
}
