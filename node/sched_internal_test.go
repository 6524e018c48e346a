package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
)

// testKey is a fresh party's key and ID.
func testKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	p := testkit.NewParty(t)
	return p.Key, p.ID
}

func gossip(from peer.ID, data []byte) *pubsub.Message {
	return &pubsub.Message{Message: &pb.Message{Data: data, From: []byte(from)}}
}

// proven returns the order o in a block of one transaction that the
// members of keys signed, with its proof, encoded.
func proven(t *testing.T, o *heat.Order, keys ...crypto.PrivKey) []byte {
	t.Helper()
	b := &ledger.Block{Header: ledger.Header{Version: ledger.Version, Height: 1, Epoch: o.Epoch, Proposer: o.Issuer},
		Txs: []ledger.Tx{ledger.NewOrderTx(o)}}
	b.Header.TxRoot = ledger.MerkleRoot(b.TxIDs())
	for _, k := range keys {
		if err := b.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	p, err := ledger.NewOrderProof(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Marshal()
}

// TestGossipValidatorsRefuseForgeries: heat reports and orders are checked
// before they are forwarded: an order one member signed but no final
// block holds, one signed by a box outside the committee, a tampered one,
// and one of another network are refused and counted; a committee's
// proven order and a box's own report pass, also when another peer relays
// them (their own signatures name their authors).
func TestGossipValidatorsRefuseForgeries(t *testing.T) {
	memberKey, member := testKey(t)
	otherKey, other := testKey(t)
	committee := []ledger.Member{{ID: member, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}, {ID: other, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}
	for i := 0; i < 1; i++ {
		_, id := testKey(t)
		committee = append(committee, ledger.Member{ID: id, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
	}
	quorum := []crypto.PrivKey{memberKey, otherKey}
	g, err := ledger.NewGenesis("ore-test", time.Now().Add(-time.Minute), committee, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	box := newTestBox(t, WithGenesis(g))
	s := box.sched
	epoch := s.epoch()
	root := addBytes(t, box, randomBytes(t, 1000))

	order := func(k crypto.PrivKey, network string, edits ...func(*heat.Order)) *heat.Order {
		o := &heat.Order{Epoch: epoch, Root: root, Until: epoch + 5, Reason: heat.ReasonHeat, Boxes: []peer.ID{box.ID()}}
		for _, e := range edits {
			e(o)
		}
		if err := o.Sign(network, k); err != nil {
			t.Fatal(err)
		}
		return o
	}
	strangerKey, stranger := testKey(t)
	good := order(memberKey, "ore-test")
	for _, from := range []peer.ID{member, stranger} {
		if r := s.validateOrder(context.Background(), from, gossip(from, proven(t, good, quorum...))); r != pubsub.ValidationAccept {
			t.Fatalf("the committee's order, relayed by %s, was refused: %v", from, r)
		}
	}
	for name, tc := range map[string]struct {
		from peer.ID
		data []byte
		want string
	}{
		// One member's word moves no box: an order on its own, or in a
		// block only its issuer signed.
		"one member's order, no block":          {member, good.Marshal(), "malformed"},
		"one member's order in its own block":   {member, proven(t, good, memberKey), "not_final"},
		"signed by a box outside the committee": {stranger, proven(t, order(strangerKey, "ore-test"), quorum...), "not_committee"},
		"tampered after the block":              {member, tamper(t, proven(t, good, quorum...)), "not_final"},
		"another network":                       {member, proven(t, order(memberKey, "other"), quorum...), "wrong_network"},
		"garbage":                               {member, []byte("not an order"), "malformed"},
		// Even a quorum's order may not pin a root on a box for good.
		"a heat order for a million epochs": {member, proven(t, order(memberKey, "ore-test", func(o *heat.Order) { o.Until = epoch + 1_000_000 }), quorum...), "until_out_of_range"},
		"a pre-warm order for a million epochs": {member, proven(t, order(memberKey, "ore-test", func(o *heat.Order) {
			o.Until, o.Reason = epoch+1_000_000, heat.ReasonPrewarm
		}), quorum...), "until_out_of_range"},
	} {
		before := testutil.ToFloat64(s.metrics.orders.WithLabelValues(tc.want))
		if r := s.validateOrder(context.Background(), tc.from, gossip(tc.from, tc.data)); r != pubsub.ValidationReject {
			t.Errorf("%s: order not rejected (%v)", name, r)
		}
		if after := testutil.ToFloat64(s.metrics.orders.WithLabelValues(tc.want)); after != before+1 {
			t.Errorf("%s: %s counted %v -> %v", name, tc.want, before, after)
		}
	}

	r, err := s.report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Held) != 1 || r.Held[0].Root != root {
		t.Fatalf("the report does not list the box's content: %+v", r.Held)
	}
	if v := s.validateReport(context.Background(), box.ID(), gossip(box.ID(), r.Marshal())); v != pubsub.ValidationAccept {
		t.Fatalf("the box's own report was refused: %v", v)
	}
	if v := s.validateReport(context.Background(), stranger, gossip(stranger, r.Marshal())); v != pubsub.ValidationAccept {
		t.Fatalf("the box's report relayed by another peer was refused: %v", v)
	}
	forged := *r
	forged.Used = 0
	if v := s.validateReport(context.Background(), box.ID(), gossip(box.ID(), forged.Marshal())); v != pubsub.ValidationReject {
		t.Fatalf("a tampered report was accepted: %v", v)
	}
	stale := *r
	stale.Epoch = epoch + 10
	if err := stale.Sign("ore-test", box.key); err != nil {
		t.Fatal(err)
	}
	if v := s.validateReport(context.Background(), box.ID(), gossip(box.ID(), stale.Marshal())); v == pubsub.ValidationAccept {
		t.Fatal("a report from a future epoch was accepted")
	}
}

// tamper returns a proof whose order was changed after the block that
// holds it was signed.
func tamper(t *testing.T, data []byte) []byte {
	t.Helper()
	p, err := ledger.UnmarshalOrderProof(data)
	if err != nil {
		t.Fatal(err)
	}
	p.Tx.Order.Until++
	return p.Marshal()
}

// TestReportTableIsBounded: a coordinator keeps at most maxReports
// reports however many keys sign one; a new reporter past it pushes out
// the report of the oldest epoch, and a known reporter's newer report
// replaces its own. The table used to grow with every fresh reporter
// (it forgot only reports 8 epochs old).
func TestReportTableIsBounded(t *testing.T) {
	s := newTestBox(t).sched
	e := s.epoch() + 10
	stale := peer.ID("the oldest report")
	s.keepReport(&heat.Report{Reporter: stale, Epoch: e - 1})
	for i := 1; i < maxReports; i++ {
		s.keepReport(&heat.Report{Reporter: peer.ID(fmt.Sprint("reporter ", i)), Epoch: e})
	}
	s.keepReport(&heat.Report{Reporter: peer.ID("reporter 1"), Epoch: e + 1}) // known: replaces
	s.keepReport(&heat.Report{Reporter: peer.ID("one too many"), Epoch: e})
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reports) != maxReports {
		t.Fatalf("%d reports kept, want the bound %d", len(s.reports), maxReports)
	}
	if s.reports[stale] != nil || s.reports[peer.ID("one too many")] == nil {
		t.Fatal("the new reporter did not push out the report of the oldest epoch")
	}
	if r := s.reports[peer.ID("reporter 1")]; r == nil || r.Epoch != e+1 {
		t.Fatalf("a known reporter's newer report did not replace its own: %+v", r)
	}
}

// TestOrderTableIsBounded: past maxOrderStates orders, a new one is
// refused (counted), not kept with a goroutine of its own.
func TestOrderTableIsBounded(t *testing.T) {
	s := newTestBox(t).sched
	s.mu.Lock()
	for i := range maxOrderStates {
		c := rawBlock(t, []byte(fmt.Sprint("ordered ", i))).Cid()
		s.orders[c] = &orderState{root: c, state: heat.OrderHeld, until: s.epoch() + 100}
	}
	s.mu.Unlock()
	root := rawBlock(t, []byte("one order too many")).Cid()
	s.take(&heat.Order{Root: root, Epoch: s.epoch(), Until: s.epoch() + 10})
	s.mu.Lock()
	n, kept := len(s.orders), s.orders[root] != nil
	s.mu.Unlock()
	if n != maxOrderStates || kept {
		t.Fatalf("%d orders kept (the new one: %v), want the bound %d without it", n, kept, maxOrderStates)
	}
	if got := testutil.ToFloat64(s.metrics.executed.WithLabelValues("refused_full")); got != 1 {
		t.Fatalf("%v orders counted as refused for a full table, want 1", got)
	}
}
