package ledger

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/pod"
)

// newFixtureV4 is newFixture on a RulesV4 chain.
func newFixtureV4(t testing.TB, nPubs, nSrvs, nClis int, pubBalance uint64) *fixture {
	t.Helper()
	f := newFixture(t, nPubs, nSrvs, nClis, pubBalance)
	f.g.Rules = RulesV4
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	return f
}

// orderTx returns an order of root naming boxes, signed by m.
func orderTx(t *testing.T, m party, reason heat.Reason, epoch, until uint64, root cid.Cid, boxes ...party) Tx {
	t.Helper()
	o := &heat.Order{Epoch: epoch, Root: root, Until: until, Reason: reason}
	for _, b := range boxes {
		o.Boxes = append(o.Boxes, b.ID)
	}
	slices.Sort(o.Boxes)
	if err := o.Sign(testNetwork, m.Key); err != nil {
		t.Fatal(err)
	}
	return NewOrderTx(o)
}

const orderedSize = 64 << 20 // the root these tests order: 64 MiB by its block

// registered returns a RulesV4 fixture where pubs[0] deposited escrow and
// registered a 64 MiB root at testPrice, paying replicate per epoch for
// heat replication.
func registered(t *testing.T, escrow, replicate uint64) (*fixture, cid.Cid) {
	t.Helper()
	f := newFixtureV4(t, 2, 3, 3, 1_000_000)
	root, block := sizedRoot(t, "hot", orderedSize, false)
	f.advance(t, 3, f.signed(t, f.s, NewDeposit(f.pubs[0].ID, 1, escrow)),
		f.signed(t, f.s, NewRegisterRoot(f.pubs[0].ID, 2, root, block, testPrice, 0).WithReplicate(replicate)))
	return f, root
}

// TestOrderRules tries orders the ledger must refuse, each in a crafted
// transaction.
func TestOrderRules(t *testing.T) {
	f, root := registered(t, 1000, 0)
	outsider := f.pubs[1]
	box := f.clis[0]
	f.wantReason(t, f.s, 5, orderTx(t, outsider, heat.ReasonHeat, 5, 10, root, box), ReasonNotCommittee)
	// Epochs: from the future, too old, expired, running too long.
	f.wantReason(t, f.s, 5, orderTx(t, f.com[0], heat.ReasonHeat, 7, 10, root, box), ReasonEpochOutOfRange)
	f.wantReason(t, f.s, 9, orderTx(t, f.com[0], heat.ReasonHeat, 5, 10, root, box), ReasonEpochOutOfRange)
	f.wantReason(t, f.s, 6, orderTx(t, f.com[0], heat.ReasonHeat, 5, 5, root, box), ReasonUntilOutOfRange)
	// heat.Order.Sign does not check Until: a member's own build signs
	// whatever it plans, and the ledger bounds it.
	f.wantReason(t, f.s, 5, orderTx(t, f.com[0], heat.ReasonHeat, 5, 5+heat.MaxHeatOrderEpochs+1, root, box), ReasonUntilOutOfRange)
	// A forged signature: a member's order with its boxes changed after.
	forged := orderTx(t, f.com[0], heat.ReasonHeat, 5, 10, root, box)
	forged.Order.Boxes = []peer.ID{f.clis[1].ID}
	f.wantReason(t, f.s, 5, forged, ReasonBadSignature)
	// A pre-warm order needs a pre-warm asking for at least its boxes.
	f.wantReason(t, f.s, 5, orderTx(t, f.com[0], heat.ReasonPrewarm, 5, 10, root, box), ReasonNotRegistered)
	// Nobody submits an order: only a leader's block carries one.
	o := orderTx(t, f.com[0], heat.ReasonHeat, 5, 10, root, box)
	if err := o.Authenticate(testNetwork); err == nil {
		t.Fatal("an order passed as a submitted transaction")
	}
	// The encoding round-trips, and an order is a kind RulesV3 lacks.
	if back, err := UnmarshalTx(o.Marshal()); err != nil || back.ID() != o.ID() || back.From != f.com[0].ID {
		t.Fatalf("order transaction does not round-trip: %v", err)
	}
	v3 := newFixture(t, 1, 1, 1, 1000)
	v3.wantReason(t, v3.s, 5, orderTx(t, v3.com[0], heat.ReasonHeat, 5, 10, root, box), ReasonNotInRules)
	// An older order does not replace a newer one.
	f.advance(t, 6, orderTx(t, f.com[1], heat.ReasonHeat, 6, 10, root, box))
	f.wantReason(t, f.s, 6, orderTx(t, f.com[0], heat.ReasonHeat, 5, 10, root, box), ReasonEpochOutOfRange)
	if issuer, _, until, _, boxes, ok := f.s.Order(root); !ok || issuer != f.com[1].ID || until != 10 || len(boxes) != 1 {
		t.Fatalf("order on record: %v %s %d %v", ok, issuer, until, boxes)
	}
}

// TestReplicationPaidOnlyWhenOrderedAndOptedIn: an unticketed receipt pays
// as replication only when a recorded order names its client and the
// publisher opted in, within the per-epoch budget and one root's worth
// (times RetryFactor) per box over the order's renewals.
func TestReplicationPaidOnlyWhenOrderedAndOptedIn(t *testing.T) {
	full := Owed(orderedSize, testPrice)
	f, root := registered(t, 1000*full, 3*full)
	srv, box, stranger := f.srvs[0], f.clis[0], f.clis[1]
	// Before any order, an unticketed fetch of a root not opened earns
	// nothing.
	f.advance(t, 4, NewReceiptTx(receipt(t, srv, box, root, 4, orderedSize, nil)))
	if got := f.s.Balance(srv.ID); got != 0 {
		t.Fatalf("unordered, unticketed receipt paid %d", got)
	}
	f.advance(t, 5, orderTx(t, f.com[0], heat.ReasonHeat, 5, 8, root, box))
	// The ordered box's fetch is paid; the stranger's is not.
	f.advance(t, 5, NewReceiptTx(receipt(t, srv, box, root, 5, orderedSize, nil)),
		NewReceiptTx(receipt(t, f.srvs[1], stranger, root, 5, orderedSize, nil)))
	if got := f.s.Balance(srv.ID); got != full {
		t.Fatalf("the ordered box's server earned %d, want %d", got, full)
	}
	if got := f.s.Balance(f.srvs[1].ID); got != 0 {
		t.Fatalf("a box no order names earned %d", got)
	}
	// A renewal keeps what the box was paid: another epoch's fetch of the
	// same replica earns only up to RetryFactor roots in all.
	f.advance(t, 6, orderTx(t, f.com[0], heat.ReasonHeat, 6, 9, root, box))
	f.advance(t, 6, NewReceiptTx(receipt(t, srv, box, root, 6, 5*orderedSize, nil)))
	if got := f.s.Balance(srv.ID); got != RetryFactor*full {
		t.Fatalf("over two epochs the box's replica earned %d, want %d (RetryFactor roots)", got, RetryFactor*full)
	}
	f.advance(t, 7, NewReceiptTx(receipt(t, f.srvs[2], box, root, 7, orderedSize, nil)))
	if got := f.s.Balance(f.srvs[2].ID); got != 0 {
		t.Fatalf("a third fetch of the same replica earned %d", got)
	}
	// Receipts of an epoch after the order's Until earn nothing.
	f.advance(t, 10, NewReceiptTx(receipt(t, f.srvs[1], box, root, 10, orderedSize, nil)))
	if got := f.s.Balance(f.srvs[1].ID); got != 0 {
		t.Fatalf("a receipt after the order ended earned %d", got)
	}
	// The order is forgotten MaxSkew epochs after its Until.
	f.advance(t, 9+f.g.Params().MaxSkew+1, f.signed(t, f.s, NewTransfer(f.pubs[1].ID, f.srvs[1].ID, 0, 1)))
	if _, _, _, _, _, ok := f.s.Order(root); ok {
		t.Fatal("an order outlived the receipts it can pay")
	}
}

// TestReplicationBudget: a publisher that did not opt in pays nothing for
// replication, and one that did pays at most its budget per epoch.
func TestReplicationBudget(t *testing.T) {
	full := Owed(orderedSize, testPrice)
	for _, c := range []struct {
		name      string
		replicate uint64
		want      uint64
	}{
		{"not opted in", 0, 0},
		{"budget of half a replica", full / 2, full / 2},
		{"budget of ten replicas", 10 * full, 2 * full},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, root := registered(t, 1000*full, c.replicate)
			f.advance(t, 5, orderTx(t, f.com[2], heat.ReasonHeat, 5, 8, root, f.clis[0], f.clis[1]))
			f.advance(t, 5, NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], root, 5, orderedSize, nil)),
				NewReceiptTx(receipt(t, f.srvs[1], f.clis[1], root, 5, orderedSize, nil)))
			if got := f.s.Balance(f.srvs[0].ID) + f.s.Balance(f.srvs[1].ID); got != c.want {
				t.Fatalf("replication of two boxes paid %d, want %d", got, c.want)
			}
		})
	}
}

// TestPrewarmReservation: a pre-warm sets aside what its replication may
// cost, pays its ordered boxes from it, refuses when the escrow cannot
// cover it, and gives back the rest when it ends or is replaced.
func TestPrewarmReservation(t *testing.T) {
	full := Owed(orderedSize, testPrice)
	per := Owed(RetryFactor*orderedSize, testPrice) // one box's most
	f, root := registered(t, 3*per, 0)
	pub := f.pubs[0]
	f.wantReason(t, f.s, 4, f.signed(t, f.s, NewPrewarm(pub.ID, 0, root, 4, 20)), ReasonInsufficientEscrow)
	f.advance(t, 4, f.signed(t, f.s, NewPrewarm(pub.ID, 0, root, 2, 20)))
	if a := f.s.Account(pub.ID); a.Reserved != 2*per || a.Escrow != per {
		t.Fatalf("after a pre-warm of 2: reserved %d escrow %d, want %d and %d", a.Reserved, a.Escrow, 2*per, per)
	}
	// A withdrawal cannot take reserved escrow.
	f.wantReason(t, f.s, 4, f.signed(t, f.s, NewWithdraw(pub.ID, 0, 2*per)), ReasonInsufficientEscrow)
	// A pre-warm order names at most the pre-warm's replicas.
	f.wantReason(t, f.s, 5, orderTx(t, f.com[0], heat.ReasonPrewarm, 5, 20, root, f.clis[0], f.clis[1], f.clis[2]), ReasonReplicasOutOfRange)
	f.advance(t, 5, orderTx(t, f.com[0], heat.ReasonPrewarm, 5, 20, root, f.clis[0], f.clis[1]))
	f.advance(t, 5, NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], root, 5, orderedSize, nil)))
	if got := f.s.Balance(f.srvs[0].ID); got != full {
		t.Fatalf("pre-warm replication paid %d, want %d", got, full)
	}
	if a := f.s.Account(pub.ID); a.Reserved != 2*per-full || a.Escrow != per {
		t.Fatalf("paid from the reservation: reserved %d escrow %d, want %d and %d", a.Reserved, a.Escrow, 2*per-full, per)
	}
	// A new pre-warm of 1 replaces it: the rest comes back, 1 is reserved.
	f.advance(t, 6, f.signed(t, f.s, NewPrewarm(pub.ID, 0, root, 1, 8)))
	if a := f.s.Account(pub.ID); a.Reserved != per || a.Escrow != 3*per-full-per {
		t.Fatalf("after replacing: reserved %d escrow %d, want %d and %d", a.Reserved, a.Escrow, per, 3*per-full-per)
	}
	// It ends at 8 and is kept MaxSkew epochs for late receipts; then its
	// reservation returns to the escrow.
	f.advance(t, 8+f.g.Params().MaxSkew+1, f.signed(t, f.s, NewTransfer(f.pubs[1].ID, f.srvs[1].ID, 0, 1)))
	if a := f.s.Account(pub.ID); a.Reserved != 0 || a.Escrow != 3*per-full {
		t.Fatalf("after the pre-warm ended: reserved %d escrow %d, want 0 and %d", a.Reserved, a.Escrow, 3*per-full)
	}
	if len(f.s.Prewarms()) != 0 {
		t.Fatal("an ended pre-warm is listed")
	}
}

// TestStateHashV4Orders pins the hash of a RulesV4 state with a pre-warm,
// a recorded order and replication paid from the reservation (see
// TestStateHashWithoutPrewarms).
func TestStateHashV4Orders(t *testing.T) {
	f, root := registered(t, 100_000, 1_000)
	f.advance(t, 4, f.signed(t, f.s, NewPrewarm(f.pubs[0].ID, 0, root, 2, 20)))
	f.advance(t, 5, orderTx(t, f.com[0], heat.ReasonPrewarm, 5, 20, root, f.clis[0]))
	f.advance(t, 5, NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], root, 5, orderedSize, nil)))
	const want = "712a376c06954b4408c86335420b2e2868df5649d6be8d14d2cae74e3f3584a0"
	if h := f.s.Hash(); hexString(h) != want {
		t.Fatalf("state hash %x, chains of RulesV4 give %s", h, want)
	}
}

func hexString(h [32]byte) string { return hex.EncodeToString(h[:]) }

// TestOrderProof: a box accepts an order only with a quorum's signatures
// on a header whose TxRoot holds it.
func TestOrderProof(t *testing.T) {
	f, root := registered(t, 1000, 0)
	b, _ := f.build(t, f.s, 5, f.signed(t, f.s, NewTransfer(f.pubs[1].ID, f.srvs[1].ID, 0, 1)),
		orderTx(t, f.com[0], heat.ReasonHeat, 5, 8, root, f.clis[0]))
	for _, m := range f.com[:2] {
		if err := b.Sign(m.Key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewOrderProof(b, 0); err == nil {
		t.Fatal("a transfer proven as an order")
	}
	p, err := NewOrderProof(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := p.Marshal()
	back, err := UnmarshalOrderProof(data)
	if err != nil {
		t.Fatal(err)
	}
	o, err := back.Verify(f.g)
	if err != nil || !o.Root.Equals(root) {
		t.Fatalf("a final block's order: %v", err)
	}
	// One signature is no quorum.
	weak := *back
	weak.Block = &Block{Header: back.Block.Header, Sigs: back.Block.Sigs[:1]}
	if _, err := weak.Verify(f.g); !errors.Is(err, ErrNotFinal) {
		t.Fatalf("an order with one member's signature: %v", err)
	}
	// Another order under the same header, or the path of another index.
	other := *back
	other.Tx = orderTx(t, f.com[0], heat.ReasonHeat, 5, 8, root, f.clis[1])
	if _, err := other.Verify(f.g); !errors.Is(err, ErrNotFinal) {
		t.Fatalf("an order the block does not hold: %v", err)
	}
	moved := *back
	moved.Index = 0
	if _, err := moved.Verify(f.g); !errors.Is(err, ErrNotFinal) {
		t.Fatalf("the order's path at another index: %v", err)
	}
	// The decoder takes only the canonical encoding within its limits.
	if _, err := UnmarshalOrderProof(append(data, 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	if _, err := UnmarshalOrderProof(make([]byte, MaxOrderProofSize+1)); err == nil {
		t.Fatal("an oversized proof accepted")
	}
}

func FuzzDecodeOrderProof(f *testing.F) {
	fx := newFixtureV4(f, 1, 1, 2, 1000)
	root, block := sizedRoot(f, "hot", orderedSize, false)
	fx.s, _ = NewState(fx.g)
	b, _, _, err := Build(fx.s, 1, fx.com[0].ID, 0, []Tx{fx.signed(f, fx.s, NewDeposit(fx.pubs[0].ID, 0, 10)),
		fx.signed(f, fx.s, NewRegisterRoot(fx.pubs[0].ID, 2, root, block, 0, 0))})
	if err != nil {
		f.Fatal(err)
	}
	o := &heat.Order{Epoch: 1, Root: root, Until: 3, Reason: heat.ReasonHeat, Boxes: []peer.ID{fx.clis[0].ID}}
	if err := o.Sign(testNetwork, fx.com[0].Key); err != nil {
		f.Fatal(err)
	}
	b.Txs = append(b.Txs, NewOrderTx(o))
	b.Header.TxRoot = MerkleRoot(b.TxIDs())
	if err := b.Sign(fx.com[0].Key); err != nil {
		f.Fatal(err)
	}
	p, err := NewOrderProof(b, 2)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalOrderProof(data)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), data) {
			t.Fatal("accepted input does not re-encode identically")
		}
		_, _ = p.Verify(fx.g)
	})
}

// TestDelegatedTickets: a key a publisher delegated on the ledger signs
// tickets that pay from the publisher's escrow; a key it did not delegate,
// or revoked, or whose delegation lapsed, signs none the ledger learns.
func TestDelegatedTickets(t *testing.T) {
	f, root := registered(t, 1_000_000, 0)
	pub, hot, stranger := f.pubs[0], f.srvs[2], f.clis[2]
	ticket := func(signer party, nonce uint64) Tx {
		tk := &pod.Ticket{Version: pod.TicketVersionDelegated, Network: testNetwork, Publisher: pub.ID, Root: root,
			Client: f.clis[0].ID, Cap: 2 * orderedSize, Expires: 30, Nonce: nonce, Signer: signer.ID}
		if err := tk.Sign(signer.Key); err != nil {
			t.Fatal(err)
		}
		return NewTicketTx(tk)
	}
	f.wantReason(t, f.s, 4, ticket(hot, 1), ReasonBadTicket) // not delegated yet
	f.wantReason(t, f.s, 4, f.signed(t, f.s, NewDelegate(pub.ID, pub.ID, 0, 20)), ReasonSelfTransfer)
	f.wantReason(t, f.s, 4, f.signed(t, f.s, NewDelegate(pub.ID, hot.ID, 0, 4+MaxTicketEpochs+1)), ReasonUntilOutOfRange)
	f.wantReason(t, f.s, 4, f.signed(t, f.s, NewDelegate(pub.ID, hot.ID, 0, 0)), ReasonNotOwner)
	f.advance(t, 4, f.signed(t, f.s, NewDelegate(pub.ID, hot.ID, 0, 20)))
	if until, ok := f.s.Delegate(pub.ID, hot.ID); !ok || until != 20 {
		t.Fatalf("delegation on record: %v until %d", ok, until)
	}
	// Another key's signature over a ticket naming the delegate as signer.
	forged := ticket(hot, 2)
	forged.Ticket.Sig = nil
	if err := forged.Ticket.Sign(hot.Key); err != nil {
		t.Fatal(err)
	}
	forged.Ticket.Nonce++ // the signature no longer covers the body
	f.wantReason(t, f.s, 5, forged, ReasonBadSignature)
	f.wantReason(t, f.s, 5, ticket(stranger, 3), ReasonBadTicket)
	tk := ticket(hot, 4)
	f.advance(t, 5, tk)
	f.advance(t, 6, NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], root, 6, orderedSize, func(r *pod.Receipt) {
		r.Version, r.Ticket = pod.VersionTicket, tk.Ticket.ID()
	})))
	if got, want := f.s.Balance(f.srvs[0].ID), Owed(orderedSize, testPrice); got != want {
		t.Fatalf("a delegated ticket paid %d, want %d", got, want)
	}
	// Revoked: no new ticket; the one learned before still pays.
	f.advance(t, 7, f.signed(t, f.s, NewDelegate(pub.ID, hot.ID, 0, 0)))
	f.wantReason(t, f.s, 7, ticket(hot, 5), ReasonBadTicket)
	f.advance(t, 8, NewReceiptTx(receipt(t, f.srvs[1], f.clis[0], root, 8, orderedSize/2, func(r *pod.Receipt) {
		r.Version, r.Ticket = pod.VersionTicket, tk.Ticket.ID()
	})))
	if f.s.Balance(f.srvs[1].ID) == 0 {
		t.Fatal("a ticket learned before its signer was revoked stopped paying")
	}
	// Lapsed: a delegation to epoch 10 signs nothing at 11.
	f.advance(t, 9, f.signed(t, f.s, NewDelegate(pub.ID, hot.ID, 0, 10)))
	f.wantReason(t, f.s, 11, ticket(hot, 6), ReasonBadTicket)
}
