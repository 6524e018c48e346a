package meter

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// TestUnpaidDebtAgesOutWhileTheClientAsks: a client whose receipts cannot
// pay its debt (refused as too old) but keeps asking is served again once
// the debt's epochs are beyond what any receipt may name. Every refused
// send used to renew the debt, so a client that asked at least once an
// epoch was held back for good. A client that never signs stays held back.
func TestUnpaidDebtAgesOutWhileTheClientAsks(t *testing.T) {
	for _, signs := range []bool{true, false} {
		rg := newRig(t)
		s := rg.server()
		cli := testkit.NewParty(t)
		size := int(s.window)
		if !s.Allow(cli.ID, anyCID, size) {
			t.Fatal("the first block of a client without debt was held back")
		}
		if signs {
			// A receipt the client signed, refused (its epoch is beyond
			// the skew): the client tries to pay.
			r := &pod.Receipt{Version: pod.Version, Network: testParams.Network, Server: s.self, Client: cli.ID,
				Root: rawBlock(t, []byte("paid")).Cid(), Epoch: rg.epoch() + 10*testParams.MaxSkew, Seq: 1, Bytes: uint64(size), Blocks: 1}
			if err := r.SignClient(cli.Key); err != nil {
				t.Fatal(err)
			}
			if err := s.Countersign(rg.ctx, cli.ID, r); err == nil {
				t.Fatal("a receipt of a far epoch was countersigned")
			}
		}
		for i := uint64(0); i <= testParams.MaxSkew; i++ {
			if s.Allow(cli.ID, anyCID, size) {
				t.Fatalf("signs %v, epoch %d: a client a window in debt was served", signs, i)
			}
			rg.clock.Advance(testParams.EpochLength)
		}
		if !signs {
			if s.Allow(cli.ID, anyCID, size) {
				t.Fatalf("after %d epochs a client that never signed was served", testParams.MaxSkew+1)
			}
			continue
		}
		if !s.Allow(cli.ID, anyCID, size) {
			t.Fatalf("after %d epochs the debt no receipt can pay any more still holds the client back", testParams.MaxSkew+1)
		}
		// A receipt pays the oldest debt first: what it covers frees the window.
		s.credit(cli.ID, int64(size))
		if !s.Allow(cli.ID, anyCID, size) {
			t.Fatal("a paid debt still holds the client back")
		}
	}
}

func (s *Server) debtors() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.debt)
}

// TestSilentClientIsForgottenAfterTheGrace: a client that never signs,
// takes its credit window and leaves is dropped from the debt table once
// it has been gone for the debt grace, while one that comes back within
// the grace is still held back: leaving does not reset the window.
func TestSilentClientIsForgottenAfterTheGrace(t *testing.T) {
	rg := newRig(t)
	s := rg.server(func(c *Config) { c.Peers = &peerSet{} }) // nobody connected: gone as soon as it asked
	client := testkit.NewParty(t).ID
	size := int(s.window)
	if !s.Allow(client, anyCID, size) {
		t.Fatal("the first block of a client without debt was held back")
	}
	grace := s.DebtGrace()

	// Back within the grace: still a window in debt.
	rg.clock.Advance(grace - testParams.EpochLength)
	s.AgeDebts(rg.ctx)
	if s.debtors() != 1 {
		t.Fatalf("a client gone for %s of a %s grace was forgotten", grace-testParams.EpochLength, grace)
	}
	if s.Allow(client, anyCID, size) {
		t.Fatal("a client that never signed was served again after leaving and coming back within the grace")
	}

	// Its asking renewed the entry: gone a whole grace from then on, it is
	// forgotten.
	rg.clock.Advance(grace - time.Nanosecond)
	s.AgeDebts(rg.ctx)
	if s.debtors() != 1 {
		t.Fatal("a client was forgotten before it had been gone for the grace")
	}
	rg.clock.Advance(time.Nanosecond)
	s.AgeDebts(rg.ctx)
	if n := s.debtors(); n != 0 {
		t.Fatalf("a client gone for the %s grace still has its debt entry (%d entries)", grace, n)
	}
}

// TestDebtTableIsBounded: past MaxDebtors clients, a new one pushes out
// the client idle the longest; the table does not grow.
func TestDebtTableIsBounded(t *testing.T) {
	rg := newRig(t)
	s := rg.server()
	first := peer.ID("first client")
	s.Allow(first, anyCID, 1)
	for i := 1; i < MaxDebtors; i++ {
		rg.clock.Advance(time.Nanosecond)
		s.Allow(peer.ID(fmt.Sprintf("client %d", i)), anyCID, 1)
	}
	rg.clock.Advance(time.Nanosecond)
	s.Allow(peer.ID("one too many"), anyCID, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.debt) != MaxDebtors {
		t.Fatalf("%d clients in the debt table, want the bound %d", len(s.debt), MaxDebtors)
	}
	if s.debt[first] != nil || s.debt[peer.ID("one too many")] == nil {
		t.Fatal("the new client did not push out the idlest one")
	}
}

// TestConnectedSilentClientStaysHeldBack: a client that never signs but
// stays connected keeps its debt entry past the grace, asking or not: only
// leaving for the grace forgets it.
func TestConnectedSilentClientStaysHeldBack(t *testing.T) {
	rg := newRig(t)
	peers := &peerSet{}
	s := rg.server(func(c *Config) { c.Peers = peers })
	client := testkit.NewParty(t).ID
	peers.connect(client)
	size := int(s.window)
	if !s.Allow(client, anyCID, size) {
		t.Fatal("the first block of a client without debt was held back")
	}
	for i := 0; i < 3; i++ {
		rg.clock.Advance(s.DebtGrace())
		s.AgeDebts(rg.ctx)
	}
	if s.Allow(client, anyCID, size) {
		t.Fatalf("a connected client that never signed was served again after %s idle", 3*s.DebtGrace())
	}
}

// TestRefundFreesTheCreditWindow: a refunded block frees its room in the
// peer's credit window.
func TestRefundFreesTheCreditWindow(t *testing.T) {
	rg := newRig(t)
	s := rg.server(func(c *Config) { c.CreditWindow = 2 << 20 })
	p := peer.ID("client")
	const block = 512 << 10
	for i := 0; i < 4; i++ {
		if !s.Allow(p, anyCID, block) {
			t.Fatalf("block %d of a 2 MiB window refused", i)
		}
	}
	if s.Allow(p, anyCID, block) {
		t.Fatal("a full window let a fifth block through")
	}
	s.Refund(p, anyCID, block) // one of the four did not leave
	if !s.Allow(p, anyCID, block) {
		t.Fatal("a refunded block's room must be free again")
	}
	s.Refund("stranger", anyCID, block) // nothing counted: no effect, no panic
	s.Refund(p, anyCID, 8*block)
	if !s.Allow(p, anyCID, block) {
		t.Fatal("debt cannot go below zero; the window must be empty")
	}
}

// TestCreditWindowGrowsWithWhatTheClientPaid: a new client is held at
// CreditWindow; each byte it pays widens its window by a byte, up to
// MaxCreditWindow and never past it; a client that stops paying is held
// once it owes its window; and a client forgotten after paying what it
// owed starts at CreditWindow again.
func TestCreditWindowGrowsWithWhatTheClientPaid(t *testing.T) {
	const (
		block  = 256 << 10
		window = 1 << 20
		most   = 3 << 20
	)
	rg := newRig(t)
	s := rg.server(func(c *Config) { c.CreditWindow, c.MaxCreditWindow = window, most })
	p := peer.ID("client")
	// take sends blocks until the gate holds one, and returns the bytes sent.
	take := func() int64 {
		var n int64
		for s.Allow(p, anyCID, block) {
			if n += block; n > 100*most {
				t.Fatal("the gate never held the client back")
			}
		}
		return n
	}
	if got := take(); got != window {
		t.Fatalf("a new client got %d bytes ahead of its receipts, want its window %d", got, window)
	}
	// Pay it all: the window is now window+paid.
	s.credit(p, window)
	if got := take(); got != window+window {
		t.Fatalf("after paying %d, the client got %d bytes ahead, want %d", window, got, 2*window)
	}
	// Pay a lot more: the window stops at MaxCreditWindow.
	for i := 0; i < 10; i++ {
		s.credit(p, 2*window)
		take()
	}
	s.credit(p, most) // owes nothing now
	if got := take(); got != most {
		t.Fatalf("a client that paid %d got %d bytes ahead, want the most window %d", 22*window, got, most)
	}
	// It stops paying: held, whatever it asks.
	for i := 0; i < 3; i++ {
		if s.Allow(p, anyCID, block) {
			t.Fatal("a client that owes its whole window was served")
		}
	}
	// Paid up: kept at an AgeDebts round while it asks (its receipts come
	// far apart once its window grew), forgotten at one after it idled
	// for a round: a fresh, small window.
	s.credit(p, most)
	s.AgeDebts(rg.ctx)
	if s.debtors() != 1 {
		t.Fatal("a client that owes nothing was forgotten between two of its blocks")
	}
	rg.clock.Advance(TickEvery)
	s.AgeDebts(rg.ctx)
	if s.debtors() != 0 {
		t.Fatal("a client that owes nothing was kept in the debt table")
	}
	if got := take(); got != window {
		t.Fatalf("a forgotten client got %d bytes ahead, want a new client's window %d", got, window)
	}
}

// settlement is one call of Config.Countersigned.
type settlement struct {
	r     *pod.Receipt
	added uint64
	first bool
}

// TestDeliveryIsReceiptedAndCountersigned: blocks a server's gate let
// through to a client, received and flushed, come back countersigned: the
// client holds receipts for every byte, the server kept the same, the
// Countersigned callback saw each once with the bytes it added, and the
// receipts released the credit window.
func TestDeliveryIsReceiptedAndCountersigned(t *testing.T) {
	rg := newRig(t)
	settled := make(chan settlement, 64)
	released := make(chan peer.ID, 64)
	s := rg.server(func(c *Config) {
		c.Countersigned = func(r *pod.Receipt, added uint64, first bool) { settled <- settlement{r, added, first} }
		c.Release = func(p peer.ID) { released <- p }
	})
	c := rg.client(func(cfg *Config) { cfg.ReceiptEvery = 3000 })
	var (
		cids  []cid.Cid
		bytes uint64
	)
	blks := make([]blocks.Block, 8)
	for i := range blks {
		b := rawBlock(t, fmt.Appendf(nil, "block %d %0*d", i, 1000, 0))
		blks[i] = b
		cids = append(cids, b.Cid())
		bytes += uint64(len(b.RawData()))
	}
	root := putDAG(t, s, blks...)
	cids = append(cids, root.Cid())
	bytes += uint64(len(root.RawData()))
	blks = append([]blocks.Block{root}, blks...)
	c.Want(root.Cid(), cids)
	for _, b := range blks {
		if !s.Allow(c.self, b.Cid(), len(b.RawData())) {
			t.Fatal("the gate held back a block under the window")
		}
		c.Received(s.self, b)
	}
	rs := c.Flush(context.Background(), root.Cid())
	if len(rs) != 1 || rs[0].Bytes != bytes || rs[0].Blocks != uint64(len(blks)) {
		t.Fatalf("the client holds %v, want one receipt of %d bytes in %d blocks", rs, bytes, len(blks))
	}
	if err := rs[0].VerifyServer(); err != nil {
		t.Fatal(err)
	}
	served, err := Receipts(rg.ctx, s.store, Served, 0)
	if err != nil || len(served) != 1 || served[0].Bytes != bytes {
		t.Fatalf("the server kept %v (%v)", served, err)
	}
	var sum uint64
	for first := true; sum < bytes; first = false {
		select {
		case st := <-settled:
			if st.first != first {
				t.Fatalf("settlement %+v: first = %v, want %v", st, st.first, first)
			}
			sum += st.added
		case <-time.After(10 * time.Second):
			t.Fatalf("the callback saw %d bytes of %d", sum, bytes)
		}
	}
	if sum != bytes {
		t.Fatalf("the callback saw %d bytes, the receipts cover %d", sum, bytes)
	}
	select {
	case p := <-released:
		if p != c.self {
			t.Fatalf("released %s, want the client", p)
		}
	default:
		t.Fatal("a countersigned receipt did not release the client's held blocks")
	}
	s.mu.Lock()
	left, unclaimed := s.debt[c.self].bytes, len(s.debt[c.self].sent)
	s.mu.Unlock()
	if left != 0 || unclaimed != 0 {
		t.Fatalf("%d bytes in debt and %d blocks unclaimed after the receipts", left, unclaimed)
	}
}

// TestSentBlocksAreBounded: the unclaimed blocks kept for one client stop
// at MaxSentPerClient (the oldest dropped), and over every client at
// MaxSent (the client with the most loses its older half).
func TestSentBlocksAreBounded(t *testing.T) {
	rg := newRig(t)
	s := rg.server()
	sent := func(p peer.ID) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.debt[p].sent)
	}
	clients := MaxSent/MaxSentPerClient + 1
	for i := range clients {
		p := peer.ID(fmt.Sprintf("client %d", i))
		for range MaxSentPerClient + 10 {
			if !s.Allow(p, anyCID, 1) {
				t.Fatal("a block of one byte held back")
			}
		}
		if n := sent(p); n > MaxSentPerClient {
			t.Fatalf("client %d: %d unclaimed blocks kept, the bound is %d", i, n, MaxSentPerClient)
		}
	}
	s.mu.Lock()
	pending, total := s.pending, 0
	for _, d := range s.debt {
		total += len(d.sent)
	}
	s.mu.Unlock()
	if pending != total || total > MaxSent {
		t.Fatalf("%d unclaimed blocks kept (counted %d), the bound is %d", total, pending, MaxSent)
	}
}

// TestReceiptIntervalGrowsAndTheWindowStillHolds: an honest client whose
// receipts pay sends them further apart (receiptInterval) and is never
// held back for it; once it stops receipting, the gate holds it back at
// its credit window (windowOf), however far its interval had grown.
func TestReceiptIntervalGrowsAndTheWindowStillHolds(t *testing.T) {
	const (
		block  = 256 << 10
		leaves = 256 // 64 MiB
	)
	rg := newRig(t)
	released := make(chan struct{}, 1)
	s := rg.server(func(c *Config) {
		c.Release = func(peer.ID) {
			select {
			case released <- struct{}{}:
			default:
			}
		}
	})
	c := rg.client()
	blks := make([]blocks.Block, leaves)
	cids := make([]cid.Cid, 0, leaves+1)
	for i := range blks {
		data := make([]byte, block)
		binary.BigEndian.PutUint64(data, uint64(i))
		blks[i] = rawBlock(t, data)
		cids = append(cids, blks[i].Cid())
	}
	root := putDAG(t, s, blks...)
	c.Want(root.Cid(), append(cids, root.Cid()))
	owed := func() (debt, window int64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		d := s.debt[c.self]
		return d.bytes, s.windowOf(d)
	}
	// send lets b through the gate, waiting (bounded) for receipts to pay
	// while it holds: an honest client is held only until its receipts
	// arrive.
	send := func(b blocks.Block) {
		deadline := time.After(10 * time.Second)
		for !s.Allow(c.self, b.Cid(), len(b.RawData())) {
			select {
			case <-released:
			case <-deadline:
				debt, window := owed()
				t.Fatalf("an honest client was held back for good: it owes %d of its window %d", debt, window)
			}
		}
	}
	signed := func() float64 { return testutil.ToFloat64(c.signed) }

	for _, b := range append([]blocks.Block{root}, blks[:leaves/2]...) {
		send(b)
		c.Received(s.self, b)
	}
	rs := c.Flush(rg.ctx, root.Cid())
	if len(rs) != 1 || rs[0].Bytes != uint64(len(root.RawData())+leaves/2*block) {
		t.Fatalf("after half the file the client holds %v", rs)
	}
	// 32 MiB at one receipt per ReceiptEvery would take 32 receipts.
	if n := signed(); n >= 24 {
		t.Fatalf("the client signed %v receipts for 32 MiB: the interval did not grow", n)
	}
	if got := receiptInterval(DefaultReceiptEvery, DefaultMaxCreditWindow, rs[0].Bytes); got != DefaultMaxCreditWindow/4 {
		t.Fatalf("after paying %d bytes the interval is %d, want a quarter of the most window, %d", rs[0].Bytes, got, DefaultMaxCreditWindow/4)
	}

	// The client stops receipting: the gate lets through no more than its
	// window, then holds every block.
	_, window := owed()
	if window != DefaultMaxCreditWindow {
		t.Fatalf("a client that paid %d bytes has a window of %d, want %d", rs[0].Bytes, window, DefaultMaxCreditWindow)
	}
	var free int64
	for _, b := range blks[leaves/2:] {
		if !s.Allow(c.self, b.Cid(), len(b.RawData())) {
			break
		}
		free += block
	}
	if free != window {
		t.Fatalf("a client that stopped receipting got %d bytes, want its window %d", free, window)
	}
	rg.clock.Advance(TickEvery)
	s.AgeDebts(rg.ctx)
	for i := 0; i < 3; i++ {
		if s.Allow(c.self, blks[leaves-1].Cid(), block) {
			t.Fatal("a client that owes its whole window was served")
		}
	}
}
