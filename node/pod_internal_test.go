package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

func rawBlock(t *testing.T, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// queued reports whether a receipt for k was queued for its server (it
// may already be on its way: then the sender exists and k is not dirty).
func queued(s *podService, server peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.senders[server] != nil
}

// TestLateBlockIsReceiptedAtOnce: a block that arrives after its fetch
// ended (a duplicate from a second server) is receipted at once, not left
// pending for the flush of the next fetch to wait on.
func TestLateBlockIsReceiptedAtOnce(t *testing.T) {
	n := newTestBox(t)
	s := n.pod
	_, server := testKey(t)
	b := rawBlock(t, []byte("late duplicate"))
	root := b.Cid()
	s.want(root, []cid.Cid{b.Cid()})
	s.finalize(root)
	s.received(server, b)
	if !queued(s, server) {
		t.Fatal("a block received after the fetch ended was not receipted")
	}
	s.mu.Lock()
	d := s.deliveries[pod.Key{Server: server, Client: s.self, Root: string(root.Bytes()), Epoch: s.epoch()}]
	s.mu.Unlock()
	if d == nil || !d.final {
		t.Fatalf("the late delivery is not final: %+v", d)
	}
}

// clockedPod returns a new box's pod service on a clock that moves only
// when the test moves *now.
func clockedPod(t *testing.T) (*podService, *time.Time) {
	t.Helper()
	s := newTestBox(t).pod
	now := time.Now()
	s.mu.Lock()
	s.now = func() time.Time { return now }
	s.mu.Unlock()
	return s, &now
}

// TestEpochChangeSendsEarlierReceipts: bytes a server delivered in an
// epoch are receipted when the next epoch starts, even if that server
// sends nothing more: a receipt older than the skew would be refused.
func TestEpochChangeSendsEarlierReceipts(t *testing.T) {
	s, now := clockedPod(t)
	_, quiet := testKey(t)
	_, busy := testKey(t)
	a, b := rawBlock(t, []byte("from the quiet server")), rawBlock(t, []byte("from the busy server"))
	s.want(a.Cid(), []cid.Cid{a.Cid(), b.Cid()})
	s.received(quiet, a) // far under the receipt interval
	*now = now.Add(s.params.EpochLength)
	s.received(busy, b) // the next epoch starts
	if !queued(s, quiet) {
		t.Fatal("the quiet server's receipt of the previous epoch was not sent when the epoch changed")
	}
}

// TestReceiptAtLeastEverySecond: bytes under the receipt interval from a
// server that sends no more are receipted within receiptAtLeastEvery, so
// the server's credit window cannot hold the client's next blocks forever.
func TestReceiptAtLeastEverySecond(t *testing.T) {
	s, server, _ := receivedOne(t, "a few bytes, then silence")
	if !testkit.Eventually(10*receiptAtLeastEvery, func() bool { return queued(s, server) }) {
		t.Fatalf("no receipt within %s for bytes under the interval", 10*receiptAtLeastEvery)
	}
}

// receivedOne gives a new box's pod service one wanted block, data, from
// a server that is not there.
func receivedOne(t *testing.T, data string) (*podService, peer.ID, blocks.Block) {
	t.Helper()
	s := newTestBox(t).pod
	_, server := testKey(t)
	b := rawBlock(t, []byte(data))
	s.want(b.Cid(), []cid.Cid{b.Cid()})
	s.received(server, b)
	return s, server, b
}

// flushReturns runs s.flush for root with no timeout of its own and
// reports whether it returned within d: only the end of the receipt
// exchanges it waits on can end its wait.
func flushReturns(t *testing.T, s *podService, root cid.Cid, d time.Duration) bool {
	t.Helper()
	s.flushWait = time.Hour
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.flush(context.Background(), root)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// TestFlushEndsWhenTheServerIsGone: the receipt of a server that cannot
// be reached (it left) ends the flush's wait for it; the fetch does not
// wait out the flush timeout for a countersignature that cannot come.
func TestFlushEndsWhenTheServerIsGone(t *testing.T) {
	s, _, b := receivedOne(t, "from a server that left")
	if !flushReturns(t, s, b.Cid(), 30*time.Second) {
		t.Fatal("flush still waits for the receipt of a server that cannot be reached")
	}
}

// TestFlushEndsWhenTheServerRefuses: a receipt the server refused (here
// one of an epoch too old, as a box that fell behind sends) ends the
// flush's wait for it.
func TestFlushEndsWhenTheServerRefuses(t *testing.T) {
	client, server := newTestBox(t), newTestBox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.host.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s := client.pod
	past := time.Now().Add(-time.Duration(10*(s.params.MaxSkew+1)) * s.params.EpochLength)
	s.mu.Lock()
	s.now = func() time.Time { return past }
	s.mu.Unlock()
	b := rawBlock(t, []byte("receipted too late"))
	s.want(b.Cid(), []cid.Cid{b.Cid()})
	s.received(server.ID(), b)
	if !flushReturns(t, s, b.Cid(), 30*time.Second) {
		t.Fatal("flush still waits for a receipt the server refused")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deliveries {
		if !d.failing || d.acked != 0 {
			t.Fatalf("the refused delivery is not marked failing: %+v", d)
		}
	}
}

// TestUnpaidDebtAgesOutWhileTheClientAsks: a client whose receipts cannot
// pay its debt (refused as too old) but keeps asking is served again once
// the debt's epochs are beyond what any receipt may name. Every refused
// send used to renew the debt, so a client that asked at least once an
// epoch was held back for good. A client that never signs stays held back.
func TestUnpaidDebtAgesOutWhileTheClientAsks(t *testing.T) {
	for _, signs := range []bool{true, false} {
		s, now := clockedPod(t)
		ck, client := testKey(t)
		size := int(s.window)
		if !s.Allow(client, size) {
			t.Fatal("the first block of a client without debt was held back")
		}
		if signs {
			// A receipt the client signed, refused (its epoch is beyond
			// the skew): the client tries to pay.
			r := &pod.Receipt{Version: pod.Version, Network: s.params.Network, Server: s.self, Client: client,
				Root: rawBlock(t, []byte("paid")).Cid(), Epoch: s.epoch() + 10*s.params.MaxSkew, Seq: 1, Bytes: uint64(size), Blocks: 1}
			if err := r.SignClient(ck); err != nil {
				t.Fatal(err)
			}
			if err := s.countersign(client, r); err == nil {
				t.Fatal("a receipt of a far epoch was countersigned")
			}
		}
		for i := uint64(0); i <= s.params.MaxSkew; i++ {
			if s.Allow(client, size) {
				t.Fatalf("signs %v, epoch %d: a client a window in debt was served", signs, i)
			}
			*now = now.Add(s.params.EpochLength)
		}
		if !signs {
			if s.Allow(client, size) {
				t.Fatalf("after %d epochs a client that never signed was served", s.params.MaxSkew+1)
			}
			continue
		}
		if !s.Allow(client, size) {
			t.Fatalf("after %d epochs the debt no receipt can pay any more still holds the client back", s.params.MaxSkew+1)
		}
		// A receipt pays the oldest debt first: what it covers frees the window.
		s.credit(client, int64(size))
		if !s.Allow(client, size) {
			t.Fatal("a paid debt still holds the client back")
		}
	}
}

// TestSilentClientIsForgottenAfterTheGrace: a client that never signs,
// takes its credit window and leaves is dropped from the debt table once
// it has been gone for the debt grace, while one that comes back within
// the grace is still held back: leaving does not reset the window. The
// table used to keep such a client forever.
func TestSilentClientIsForgottenAfterTheGrace(t *testing.T) {
	s, now := clockedPod(t)
	_, client := testKey(t) // never connected: gone as soon as it asked
	size := int(s.window)
	if !s.Allow(client, size) {
		t.Fatal("the first block of a client without debt was held back")
	}
	debtors := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.debt)
	}
	grace := s.debtGrace()

	// Back within the grace: still a window in debt.
	*now = now.Add(grace - s.params.EpochLength)
	s.ageDebts(context.Background())
	if debtors() != 1 {
		t.Fatalf("a client gone for %s of a %s grace was forgotten", grace-s.params.EpochLength, grace)
	}
	if s.Allow(client, size) {
		t.Fatal("a client that never signed was served again after leaving and coming back within the grace")
	}

	// Its asking renewed the entry: gone a whole grace from then on, it is
	// forgotten.
	*now = now.Add(grace - time.Nanosecond)
	s.ageDebts(context.Background())
	if debtors() != 1 {
		t.Fatal("a client was forgotten before it had been gone for the grace")
	}
	*now = now.Add(time.Nanosecond)
	s.ageDebts(context.Background())
	if n := debtors(); n != 0 {
		t.Fatalf("a client gone for the %s grace still has its debt entry (%d entries)", grace, n)
	}
}

// TestDebtTableIsBounded: past maxDebtors clients, a new one pushes out
// the client idle the longest; the table does not grow.
func TestDebtTableIsBounded(t *testing.T) {
	s, now := clockedPod(t)
	first := peer.ID("first client")
	s.Allow(first, 1)
	for i := 1; i < maxDebtors; i++ {
		*now = now.Add(time.Nanosecond)
		s.Allow(peer.ID(fmt.Sprintf("client %d", i)), 1)
	}
	*now = now.Add(time.Nanosecond)
	s.Allow(peer.ID("one too many"), 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.debt) != maxDebtors {
		t.Fatalf("%d clients in the debt table, want the bound %d", len(s.debt), maxDebtors)
	}
	if s.debt[first] != nil || s.debt[peer.ID("one too many")] == nil {
		t.Fatal("the new client did not push out the idlest one")
	}
}

// TestConnectedSilentClientStaysHeldBack: a client that never signs but
// stays connected keeps its debt entry past the grace, asking or not: only
// leaving for the grace forgets it.
func TestConnectedSilentClientStaysHeldBack(t *testing.T) {
	s, now := clockedPod(t)
	client := newTestBox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.host.Connect(ctx, peer.AddrInfo{ID: s.self, Addrs: s.n.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	size := int(s.window)
	if !s.Allow(client.ID(), size) {
		t.Fatal("the first block of a client without debt was held back")
	}
	for i := 0; i < 3; i++ {
		*now = now.Add(s.debtGrace())
		s.ageDebts(ctx)
	}
	if s.Allow(client.ID(), size) {
		t.Fatalf("a connected client that never signed was served again after %s idle", 3*s.debtGrace())
	}
}

// TestUnpaidDeliveryIsForgotten: a delivery whose receipt was never
// countersigned (its server left) is forgotten once a fetch asks MaxSkew+1
// epochs after the delivery's epoch, with its server's sender and that
// sender's goroutine. Both used
// to stay for as long as the box ran, one for every server that ever sent
// it a block.
func TestUnpaidDeliveryIsForgotten(t *testing.T) {
	s, now := clockedPod(t)
	_, server := testKey(t) // never reachable
	b := rawBlock(t, []byte("from a server that left"))
	s.want(b.Cid(), []cid.Cid{b.Cid()})
	s.received(server, b)
	s.finalize(b.Cid())
	s.mu.Lock()
	sd := s.senders[server]
	s.mu.Unlock()
	if sd == nil {
		t.Fatal("no sender for the delivery's server")
	}
	*now = now.Add(time.Duration(s.params.MaxSkew+2) * s.params.EpochLength)
	next := rawBlock(t, []byte("the next fetch"))
	s.want(next.Cid(), []cid.Cid{next.Cid()})
	s.mu.Lock()
	deliveries, senders := len(s.deliveries), len(s.senders)
	s.mu.Unlock()
	if deliveries != 0 || senders != 0 {
		t.Fatalf("%d deliveries and %d senders left %d epochs after an unpaid delivery", deliveries, senders, s.params.MaxSkew+2)
	}
	select {
	case <-sd.quit:
	default:
		t.Fatal("the forgotten sender's goroutine was not told to end")
	}
}
