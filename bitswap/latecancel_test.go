package bitswap

import (
	"context"
	"testing"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	"github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sentMsg is a message the fake network sent.
type sentMsg struct {
	to  peer.ID
	msg bsmsg.BitSwapMessage
}

// fakeNet records the messages sent through it.
type fakeNet struct {
	network.BitSwapNetwork
	out chan sentMsg
}

func (f *fakeNet) SendMessage(_ context.Context, p peer.ID, m bsmsg.BitSwapMessage) error {
	f.out <- sentMsg{p, m}
	return nil
}

func wantMsg(wt pb.Message_Wantlist_WantType, cs ...cid.Cid) bsmsg.BitSwapMessage {
	m := bsmsg.New(false)
	for _, c := range cs {
		m.AddEntry(c, 1, wt, false)
	}
	return m
}

func cancelMsg(cs ...cid.Cid) bsmsg.BitSwapMessage {
	m := bsmsg.New(false)
	for _, c := range cs {
		m.Cancel(c)
	}
	return m
}

func TestLateCancelsUntilWantedAgain(t *testing.T) {
	l := newLateCancels()
	a, b := peer.ID("a"), peer.ID("b")
	x := testBlocks(1)[0].Cid()
	if l.cancelled(a, x) {
		t.Fatal("nothing cancelled yet")
	}
	l.received(a, cancelMsg(x))
	if !l.cancelled(a, x) {
		t.Fatal("a cancelled x")
	}
	if l.cancelled(b, x) {
		t.Fatal("b did not cancel x")
	}
	l.received(a, wantMsg(pb.Message_Wantlist_Block, x))
	if l.cancelled(a, x) {
		t.Fatal("a wants x again")
	}
	l.received(a, cancelMsg(x))
	l.forget(a)
	if l.cancelled(a, x) {
		t.Fatal("a left: its cancels are forgotten")
	}
}

// A block the peer cancelled after the server packed it does not leave.
func TestSendDropsBlocksCancelledBeforeTheyLeave(t *testing.T) {
	fn := &fakeNet{out: make(chan sentMsg, 4)}
	g := newGatedNetwork(fn, nil, nil, nil)
	a := peer.ID("a")
	blks := testBlocks(3)
	g.late.received(a, cancelMsg(blks[1].Cid()))
	msg := bsmsg.New(false)
	for _, b := range blks {
		msg.AddBlock(b)
	}
	if err := g.SendMessage(context.Background(), a, msg); err != nil {
		t.Fatal(err)
	}
	got := <-fn.out
	if n := len(got.msg.Blocks()); n != 2 {
		t.Fatalf("%d blocks left, want 2", n)
	}
	for _, b := range got.msg.Blocks() {
		if b.Cid() == blks[1].Cid() {
			t.Fatal("the cancelled block left")
		}
	}
	if g.lateDropped.Load() != 1 || g.blocksSent.Load() != 2 {
		t.Fatalf("dropped %d, sent %d; want 1, 2", g.lateDropped.Load(), g.blocksSent.Load())
	}
	// All cancelled: nothing is sent.
	g.late.received(a, cancelMsg(blks[0].Cid(), blks[2].Cid()))
	if err := g.SendMessage(context.Background(), a, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-fn.out:
		t.Fatalf("an empty message was sent: %v", m.msg.Blocks())
	default:
	}
}

// countGate allows every block and records refunds.
type countGate struct{ refunded map[peer.ID]int }

func (c *countGate) Allow(peer.ID, cid.Cid, int) bool { return true }

func (c *countGate) Refund(p peer.ID, _ cid.Cid, size int) { c.refunded[p] += size }

// The gate gets back what it counted for a block dropped on a late cancel.
func TestLateCancelRefundsTheGate(t *testing.T) {
	fn := &fakeNet{out: make(chan sentMsg, 4)}
	gate := &countGate{refunded: map[peer.ID]int{}}
	g := newGatedNetwork(fn, gate, nil, nil)
	a := peer.ID("a")
	blks := testBlocks(2)
	g.late.received(a, cancelMsg(blks[0].Cid()))
	msg := bsmsg.New(false)
	for _, b := range blks {
		msg.AddBlock(b)
	}
	if err := g.SendMessage(context.Background(), a, msg); err != nil {
		t.Fatal(err)
	}
	if got := <-fn.out; len(got.msg.Blocks()) != 1 {
		t.Fatalf("%d blocks left, want 1", len(got.msg.Blocks()))
	}
	if gate.refunded[a] != len(blks[0].RawData()) {
		t.Fatalf("refunded %d bytes, want %d", gate.refunded[a], len(blks[0].RawData()))
	}
}
