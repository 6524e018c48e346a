package bitswap

import (
	"context"
	"sync"
	"testing"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	"github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
)

// wire records what the gate lets through.
type wire struct {
	network.BitSwapNetwork
	mu   sync.Mutex
	sent []cid.Cid
	msgs int
}

func (w *wire) SendMessage(_ context.Context, _ peer.ID, m bsmsg.BitSwapMessage) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs++
	for _, b := range m.Blocks() {
		w.sent = append(w.sent, b.Cid())
	}
	return nil
}

// budget allows a number of bytes per peer.
type budget struct {
	mu   sync.Mutex
	left int
}

func (b *budget) Allow(_ peer.ID, _ cid.Cid, size int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if size > b.left {
		return false
	}
	b.left -= size
	return true
}

func TestGateHoldsAndReleases(t *testing.T) {
	ctx := context.Background()
	bs, blks := storedBlocks(t, 4)
	w := &wire{}
	g := &budget{left: 202}
	var reported []cid.Cid
	gn := newGatedNetwork(w, g, func(_ peer.ID, b blocks.Block) { reported = append(reported, b.Cid()) }, bs)
	p := peer.ID("client")
	msg := bsmsg.New(false)
	for _, b := range blks {
		msg.AddBlock(b)
	}
	msg.AddHave(blks[0].Cid())
	if err := gn.SendMessage(ctx, p, msg); err != nil {
		t.Fatal(err)
	}
	if len(w.sent) != 2 || len(reported) != 2 {
		t.Fatalf("sent %d blocks (reported %d), want the 2 the budget allows", len(w.sent), len(reported))
	}
	// Nothing more goes while the budget is spent.
	gn.release(ctx, p)
	if len(w.sent) != 2 {
		t.Fatalf("release sent blocks the gate refused")
	}
	// A receipt arrives: the held blocks go without a new want.
	g.mu.Lock()
	g.left = 1000
	g.mu.Unlock()
	gn.release(ctx, p)
	seen := map[cid.Cid]bool{}
	for _, c := range w.sent {
		seen[c] = true
	}
	if len(w.sent) != 4 || len(seen) != 4 {
		t.Fatalf("after release: sent %v", w.sent)
	}
	if len(reported) != 4 {
		t.Fatalf("BlockSent reported %d blocks", len(reported))
	}
	// A peer that leaves loses what was held for it.
	g.mu.Lock()
	g.left = 0
	g.mu.Unlock()
	_ = gn.SendMessage(ctx, p, msg)
	gn.forget(p)
	g.mu.Lock()
	g.left = 1000
	g.mu.Unlock()
	gn.release(ctx, p)
	if len(w.sent) != 4 {
		t.Fatalf("blocks held for a departed peer were sent")
	}
}

func TestGateDropsHeldBlocksThePeerCancels(t *testing.T) {
	ctx := context.Background()
	bs, blks := storedBlocks(t, 3)
	w := &wire{}
	g := &budget{left: 0}
	gn := newGatedNetwork(w, g, nil, bs)
	p := peer.ID("client")
	msg := bsmsg.New(false)
	for _, b := range blks {
		msg.AddBlock(b)
	}
	if err := gn.SendMessage(ctx, p, msg); err != nil {
		t.Fatal(err)
	}
	// The client got block 1 elsewhere and cancels its want.
	cancel := bsmsg.New(false)
	cancel.Cancel(blks[1].Cid())
	gn.cancel(p, cancel)
	g.mu.Lock()
	g.left = 1000
	g.mu.Unlock()
	gn.release(ctx, p)
	sent := map[cid.Cid]bool{}
	for _, c := range w.sent {
		sent[c] = true
	}
	if len(w.sent) != 2 || !sent[blks[0].Cid()] || !sent[blks[2].Cid()] {
		t.Fatalf("after a cancel the release sent %v, want blocks 0 and 2", w.sent)
	}
}

// storedBlocks puts n distinct 101-byte blocks in a new in-memory store.
func storedBlocks(t *testing.T, n int) (blockstore.Blockstore, []blocks.Block) {
	t.Helper()
	bs := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	var blks []blocks.Block
	for i := range n {
		b := blocks.NewBlock(append(make([]byte, 100), byte(i)))
		if err := bs.Put(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		blks = append(blks, b)
	}
	return bs, blks
}

// verdicts answers each block by its size.
type verdicts struct {
	mu  sync.Mutex
	per map[int]Verdict // by block size, which the test makes distinct
}

func (v *verdicts) Allow(p peer.ID, c cid.Cid, size int) bool { return v.Decide(p, c, size) == Send }
func (v *verdicts) Decide(_ peer.ID, _ cid.Cid, size int) Verdict {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.per[size]
}

// A GateDecider's DontHave drops the block and tells the peer DONT_HAVE
// (no silence), on a first send and on a release alike; Hold still holds.
func TestGateDontHave(t *testing.T) {
	ctx := context.Background()
	bs, _ := storedBlocks(t, 0)
	var blks []blocks.Block
	for i := range 3 {
		b := blocks.NewBlock(make([]byte, 10+i)) // distinct sizes
		if err := bs.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		blks = append(blks, b)
	}
	w := &presenceWire{}
	g := &verdicts{per: map[int]Verdict{}}
	for i, b := range blks {
		g.per[len(b.RawData())] = []Verdict{Send, DontHave, Hold}[i]
	}
	gn := newGatedNetwork(w, g, nil, bs)
	p := peer.ID("kubo")
	msg := bsmsg.New(false)
	for _, b := range blks {
		msg.AddBlock(b)
	}
	if err := gn.SendMessage(ctx, p, msg); err != nil {
		t.Fatal(err)
	}
	if len(w.sent) != 1 || w.sent[0] != blks[0].Cid() {
		t.Fatalf("sent %v, want only the first block", w.sent)
	}
	if len(w.dontHave) != 1 || w.dontHave[0] != blks[1].Cid() {
		t.Fatalf("DONT_HAVE for %v, want the second block", w.dontHave)
	}
	// The held block is refused on release: DONT_HAVE, not silence.
	g.mu.Lock()
	g.per[len(blks[2].RawData())] = DontHave
	g.mu.Unlock()
	gn.release(ctx, p)
	if len(w.dontHave) != 2 || w.dontHave[1] != blks[2].Cid() || len(w.sent) != 1 {
		t.Fatalf("after release: sent %v, DONT_HAVE %v", w.sent, w.dontHave)
	}
}

// presenceWire records blocks and DONT_HAVEs sent.
type presenceWire struct {
	network.BitSwapNetwork
	sent, dontHave []cid.Cid
}

func (w *presenceWire) SendMessage(_ context.Context, _ peer.ID, m bsmsg.BitSwapMessage) error {
	for _, b := range m.Blocks() {
		w.sent = append(w.sent, b.Cid())
	}
	w.dontHave = append(w.dontHave, m.DontHaves()...)
	return nil
}
