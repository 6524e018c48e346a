package meter

import (
	"fmt"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// TestLateBlockIsReceiptedAtOnce: a block that arrives after its fetch
// ended (a duplicate from a second server) is receipted at once, not left
// pending for the flush of the next fetch to wait on.
func TestLateBlockIsReceiptedAtOnce(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	server := testkit.NewParty(t).ID
	b := rawBlock(t, []byte("late duplicate"))
	root := b.Cid()
	c.Want(root, []cid.Cid{b.Cid()})
	c.Finalize(root)
	c.Received(server, b)
	if !queued(c, server) {
		t.Fatal("a block received after the fetch ended was not receipted")
	}
	if d := c.delivery(server, root, rg.epoch()); d == nil || !d.final {
		t.Fatalf("the late delivery is not final: %+v", d)
	}
}

// TestEpochChangeSendsEarlierReceipts: bytes a server delivered in an
// epoch are receipted when the next epoch starts, even if that server
// sends nothing more: a receipt older than the skew would be refused.
func TestEpochChangeSendsEarlierReceipts(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	quiet, busy := testkit.NewParty(t).ID, testkit.NewParty(t).ID
	a, b := rawBlock(t, []byte("from the quiet server")), rawBlock(t, []byte("from the busy server"))
	c.Want(a.Cid(), []cid.Cid{a.Cid(), b.Cid()})
	c.Received(quiet, a) // far under the receipt interval
	rg.clock.Advance(testParams.EpochLength)
	c.Received(busy, b) // the next epoch starts
	if !queued(c, quiet) {
		t.Fatal("the quiet server's receipt of the previous epoch was not sent when the epoch changed")
	}
}

// TestTickSendsReceiptsUnderTheInterval: bytes under the receipt interval
// from a server that sends no more are receipted at the next Tick (the box
// ticks every TickEvery), so the server's credit window cannot hold the
// client's next blocks forever.
func TestTickSendsReceiptsUnderTheInterval(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	server := testkit.NewParty(t).ID
	b := rawBlock(t, []byte("a few bytes, then silence"))
	c.Want(b.Cid(), []cid.Cid{b.Cid()})
	c.Received(server, b)
	if queued(c, server) {
		t.Fatal("bytes under the interval were receipted before the tick")
	}
	c.Tick(rg.ctx)
	if !queued(c, server) {
		t.Fatal("the tick did not receipt bytes under the interval")
	}
}

// TestFlushEndsWhenTheServerIsGone: the receipt of a server that cannot
// be reached (it left) ends the flush's wait for it; the fetch does not
// wait out the flush timeout for a countersignature that cannot come.
func TestFlushEndsWhenTheServerIsGone(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	b := rawBlock(t, []byte("from a server that left"))
	c.Want(b.Cid(), []cid.Cid{b.Cid()})
	c.Received(testkit.NewParty(t).ID, b)
	if !flushReturns(t, c, b.Cid(), 30*time.Second) {
		t.Fatal("flush still waits for the receipt of a server that cannot be reached")
	}
}

// TestFlushEndsWhenTheServerRefuses: a receipt the server refused (here
// one of an epoch too old, as a box whose clock fell behind sends) ends
// the flush's wait for it, and the delivery stops asking.
func TestFlushEndsWhenTheServerRefuses(t *testing.T) {
	rg := newRig(t)
	past := testkit.NewClock()
	past.Set(rg.clock.Now().Add(-time.Duration(10*(testParams.MaxSkew+1)) * testParams.EpochLength))
	c := rg.client(func(cfg *Config) { cfg.Clock = past.Now })
	s := rg.server()
	b := rawBlock(t, []byte("receipted too late"))
	if !s.Allow(c.self, b.Cid(), len(b.RawData())) {
		t.Fatal("the gate held back a first block")
	}
	c.Want(b.Cid(), []cid.Cid{b.Cid()})
	c.Received(s.self, b)
	if !flushReturns(t, c, b.Cid(), 30*time.Second) {
		t.Fatal("flush still waits for a receipt the server refused")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.deliveries) != 1 {
		t.Fatalf("%d deliveries, want 1", len(c.deliveries))
	}
	for _, d := range c.deliveries {
		if !d.failing || d.acked != 0 {
			t.Fatalf("the refused delivery is not marked failing: %+v", d)
		}
	}
}

// TestUnpaidDeliveryIsForgotten: a delivery whose receipt was never
// countersigned (its server left) is forgotten once a fetch asks MaxSkew+1
// epochs after the delivery's epoch, with its server's sender and that
// sender's goroutine; otherwise every server that ever sent the box a
// block would keep both for as long as the box runs.
func TestUnpaidDeliveryIsForgotten(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	server := testkit.NewParty(t).ID // never reachable
	b := rawBlock(t, []byte("from a server that left"))
	c.Want(b.Cid(), []cid.Cid{b.Cid()})
	c.Received(server, b)
	c.Finalize(b.Cid())
	c.mu.Lock()
	sd := c.senders[server]
	c.mu.Unlock()
	if sd == nil {
		t.Fatal("no sender for the delivery's server")
	}
	rg.clock.Advance(time.Duration(testParams.MaxSkew+2) * testParams.EpochLength)
	next := rawBlock(t, []byte("the next fetch"))
	c.Want(next.Cid(), []cid.Cid{next.Cid()})
	c.mu.Lock()
	deliveries, senders := len(c.deliveries), len(c.senders)
	c.mu.Unlock()
	if deliveries != 0 || senders != 0 {
		t.Fatalf("%d deliveries and %d senders left %d epochs after an unpaid delivery", deliveries, senders, testParams.MaxSkew+2)
	}
	select {
	case <-sd.quit:
	default:
		t.Fatal("the forgotten sender's goroutine was not told to end")
	}
}

// TestUnwantedBlocksAreNotReceipted: a client pays only for blocks it
// asked for, and never for its own.
func TestUnwantedBlocksAreNotReceipted(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	server := testkit.NewParty(t).ID
	wanted, pushed := rawBlock(t, []byte("wanted")), rawBlock(t, []byte("pushed"))
	c.Want(wanted.Cid(), []cid.Cid{wanted.Cid()})
	c.Received(server, pushed)
	c.Received(c.self, wanted)
	c.mu.Lock()
	n := len(c.deliveries)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d deliveries for a block not asked for and one from itself", n)
	}
}

// TestTicketNamedByNewDeliveries: a root's receipts name the ticket its
// fetch runs under until the ticket expires; later ones name none.
func TestTicketNamedByNewDeliveries(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	s := rg.server()
	b := rawBlock(t, []byte("ticketed"))
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: testParams.Network, Publisher: testkit.NewParty(t).ID,
		Root: b.Cid(), Cap: 1 << 20, Expires: rg.epoch()}
	c.UseTicket(b.Cid(), tk)
	if !c.UsesTicket(b.Cid(), tk.ID()) {
		t.Fatal("the ticket in use is not known")
	}
	s.Allow(c.self, b.Cid(), len(b.RawData()))
	c.Want(b.Cid(), []cid.Cid{b.Cid()})
	c.Received(s.self, b)
	if d := c.delivery(s.self, b.Cid(), rg.epoch()); d == nil || d.ticket != tk.ID() {
		t.Fatalf("the delivery does not name the ticket: %+v", d)
	}
	rg.clock.Advance(testParams.EpochLength)
	s.Allow(c.self, b.Cid(), len(b.RawData()))
	c.Want(b.Cid(), []cid.Cid{b.Cid()})
	c.Received(s.self, b)
	if d := c.delivery(s.self, b.Cid(), rg.epoch()); d == nil || d.ticket != ([32]byte{}) {
		t.Fatalf("a delivery after the ticket expired names it: %+v", d)
	}
}

// TestReceiptAfterReceiptBlocks: small blocks are receipted every
// receiptBlocks blocks, whatever their bytes: the server keeps only
// MaxSentPerClient unclaimed blocks of a client.
func TestReceiptAfterReceiptBlocks(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	server := testkit.NewParty(t).ID
	bs := make([]blocks.Block, receiptBlocks)
	cids := make([]cid.Cid, len(bs))
	for i := range bs {
		bs[i] = rawBlock(t, fmt.Appendf(nil, "small block %d", i))
		cids[i] = bs[i].Cid()
	}
	c.Want(cids[0], cids)
	for i, b := range bs {
		if queued(c, server) {
			t.Fatalf("a receipt was queued after %d blocks of %d bytes or fewer", i, len(b.RawData()))
		}
		c.Received(server, b)
	}
	if !queued(c, server) {
		t.Fatalf("no receipt after %d blocks", len(bs))
	}
}
