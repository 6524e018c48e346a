package ledger

import (
	"errors"
	"testing"

	"github.com/orecdn/ore/pod"
)

// setup: publisher 0 deposits escrow and registers root "r" at price.
func paySetup(t *testing.T, escrow, price uint64) (*fixture, party, party, party) {
	f := newFixture(t, 1, 2, 2, 1_000_000)
	pub, srv, cli := f.pubs[0], f.srvs[0], f.clis[0]
	root := testRoot(t, "r")
	dep := f.signed(t, f.s, NewDeposit(pub.ID, 0, escrow))
	reg := f.signed(t, f.s, NewRegister(pub.ID, 2, root, price))
	f.advance(t, 10, dep, reg)
	if f.s.Escrow(pub.ID) != escrow || f.s.Balance(pub.ID) != 1_000_000-escrow {
		t.Fatalf("escrow %d balance %d", f.s.Escrow(pub.ID), f.s.Balance(pub.ID))
	}
	if r, ok := f.s.Registration(root); !ok || r.Publisher != pub.ID || (price != 0 && r.PricePerGiB != price) {
		t.Fatalf("registration %+v %v", r, ok)
	}
	return f, pub, srv, cli
}

func TestReceiptPayments(t *testing.T) {
	f, pub, srv, cli := paySetup(t, 100_000, 3) // 3 units per GiB: rounding shows
	root := testRoot(t, "r")
	rc := func(bytes uint64) Tx { return NewReceiptTx(receipt(t, srv, cli, root, 10, bytes, nil)) }
	steps := []struct {
		name string
		tx   Tx
		paid uint64 // server balance after
	}{
		{"one GiB pays 3", rc(GiB), 3},
		{"duplicate pays zero", rc(GiB), 3},
		{"half more pays the difference of floors", rc(GiB + GiB/2), 4}, // floor(4.5) - 3
		{"older receipt later pays zero", rc(GiB / 2), 4},
		{"two GiB", rc(2 * GiB), 6},
	}
	for _, st := range steps {
		f.advance(t, 10, st.tx)
		if got := f.s.Balance(srv.ID); got != st.paid {
			t.Fatalf("%s: server balance %d, want %d", st.name, got, st.paid)
		}
		if f.s.Escrow(pub.ID) != 100_000-st.paid {
			t.Fatalf("%s: escrow %d", st.name, f.s.Escrow(pub.ID))
		}
	}
	k := rc(0).Receipt.Key()
	if f.s.Paid(k) != 2*GiB {
		t.Fatalf("paid %d", f.s.Paid(k))
	}
	// Many small steps pay exactly what one big step pays: no drift.
	f2, _, srv2, cli2 := paySetup(t, 100_000, 7)
	var txs []Tx
	for b := uint64(1); b <= 1000; b++ {
		txs = append(txs, NewReceiptTx(receipt(t, srv2, cli2, root, 10, b*(GiB/333), nil)))
	}
	f2.advance(t, 10, txs...)
	want := uint64(1000*(GiB/333)*7) >> 30
	if got := f2.s.Balance(srv2.ID); got != want {
		t.Fatalf("drift: paid %d, want %d", got, want)
	}
}

func TestUnregisteredPaysZero(t *testing.T) {
	f, _, srv, cli := paySetup(t, 100_000, testPrice)
	other := testRoot(t, "unregistered")
	f.advance(t, 10, NewReceiptTx(receipt(t, srv, cli, other, 10, 5*GiB, nil)))
	if f.s.Balance(srv.ID) != 0 {
		t.Fatal("unregistered content paid")
	}
	checkSupply(t, f.s)
}

func TestPublisherRunsDry(t *testing.T) {
	f, pub, srv, cli := paySetup(t, 5, 1000)
	root := testRoot(t, "r")
	f.advance(t, 10, NewReceiptTx(receipt(t, srv, cli, root, 10, GiB/10, nil))) // owes 100, has 5
	if f.s.Balance(srv.ID) != 5 || f.s.Escrow(pub.ID) != 0 {
		t.Fatalf("balance %d escrow %d", f.s.Balance(srv.ID), f.s.Escrow(pub.ID))
	}
	f.advance(t, 11, NewReceiptTx(receipt(t, srv, f.clis[1], root, 11, GiB, nil)))
	if f.s.Balance(srv.ID) != 5 {
		t.Fatal("a dry publisher paid")
	}
	checkSupply(t, f.s)
}

func TestPriceZeroTakesGenesisPrice(t *testing.T) {
	f, _, _, _ := paySetup(t, 10, 0)
	if r, _ := f.s.Registration(testRoot(t, "r")); r.PricePerGiB != testPrice {
		t.Fatalf("price %d", r.PricePerGiB)
	}
}

func TestBadReceipts(t *testing.T) {
	f, _, srv, cli := paySetup(t, 100_000, testPrice)
	root := testRoot(t, "r")
	forged := receipt(t, srv, cli, root, 10, GiB, nil)
	forged.Digest[0] ^= 1
	noServer := receipt(t, srv, cli, root, 10, GiB, nil)
	noServer.ServerSig = nil
	cases := []struct {
		name string
		r    *pod.Receipt
		want Reason
	}{
		{"forged", forged, ReasonBadSignature},
		{"client only", noServer, ReasonMissingSignature},
		{"self-dealt", receipt(t, srv, srv, root, 10, GiB, nil), ReasonSelfDealing},
		{"wrong network", receipt(t, srv, cli, root, 10, GiB, func(r *pod.Receipt) { r.Network = "other" }), ReasonWrongNetwork},
		{"over-large", receipt(t, srv, cli, root, 10, GiB, func(r *pod.Receipt) { r.Blocks = 1 }), ReasonOversized},
		{"too old", receipt(t, srv, cli, root, 10-pod.DefaultMaxSkew-1, GiB, nil), ReasonEpochOutOfRange},
		{"future", receipt(t, srv, cli, root, 11, GiB, nil), ReasonEpochOutOfRange},
		{"no blocks", receipt(t, srv, cli, root, 10, 0, func(r *pod.Receipt) { r.Blocks = 0 }), ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { f.wantReason(t, f.s, 10, NewReceiptTx(c.r), c.want) })
	}
	// A bad receipt among many good ones: the batch fails, the fallback
	// finds exactly the bad one.
	var txs []Tx
	for i := range 600 {
		txs = append(txs, NewReceiptTx(receipt(t, srv, f.clis[i%2], root, 10, uint64(i+1)*4096, nil)))
	}
	txs[300] = NewReceiptTx(forged)
	_, _, rej, err := Build(f.s, 10, f.com[0].ID, 0, txs)
	if err != nil || len(rej) != 1 || rej[0].Index != 300 || rej[0].Reason != ReasonBadSignature {
		t.Fatalf("rejected %+v, %v", rej, err)
	}
	// MaxSkew epochs back is still accepted.
	f.advance(t, 10, NewReceiptTx(receipt(t, srv, cli, root, 10-pod.DefaultMaxSkew, GiB, nil)))
}

func TestPaidPruned(t *testing.T) {
	f, _, srv, cli := paySetup(t, 100_000, testPrice)
	root := testRoot(t, "r")
	r := receipt(t, srv, cli, root, 10, GiB, nil)
	f.advance(t, 10, NewReceiptTx(r))
	f.advance(t, 10+pod.DefaultMaxSkew)
	if f.s.Paid(r.Key()) != GiB {
		t.Fatal("paid entry dropped too early")
	}
	f.advance(t, 11+pod.DefaultMaxSkew)
	if f.s.Paid(r.Key()) != 0 || f.s.paidEntries() != 0 {
		t.Fatal("paid entry kept past MaxSkew")
	}
	f.wantReason(t, f.s, 11+pod.DefaultMaxSkew, NewReceiptTx(r), ReasonEpochOutOfRange)
}

func TestAccountTxs(t *testing.T) {
	f := newFixture(t, 2, 0, 0, 1000)
	a, b := f.pubs[0], f.pubs[1]
	root := testRoot(t, "x")
	tr := f.signed(t, f.s, NewTransfer(a.ID, b.ID, 0, 400))
	f.advance(t, 1, tr)
	if f.s.Balance(a.ID) != 600 || f.s.Balance(b.ID) != 1400 || f.s.Nonce(a.ID) != 1 {
		t.Fatalf("after transfer: %+v %+v", f.s.Account(a.ID), f.s.Account(b.ID))
	}
	wrongNet := NewTransfer(a.ID, b.ID, 2, 1)
	if err := wrongNet.Sign("other-net", a.Key); err != nil {
		t.Fatal(err)
	}
	stolen := NewTransfer(a.ID, b.ID, 2, 1)
	if err := stolen.Sign(testNetwork, b.Key); err == nil {
		t.Fatal("signed with someone else's key")
	}
	stolen.Sig = f.signed(t, f.s, NewTransfer(b.ID, a.ID, 0, 1)).Sig
	cases := []struct {
		name string
		tx   Tx
		want Reason
	}{
		{"replay", tr, ReasonBadNonce},
		{"nonce gap", f.signed(t, f.s, NewTransfer(a.ID, b.ID, 3, 1)), ReasonBadNonce},
		{"overdraw", f.signed(t, f.s, NewTransfer(a.ID, b.ID, 0, 601)), ReasonInsufficientFunds},
		{"deposit overdraw", f.signed(t, f.s, NewDeposit(a.ID, 0, 601)), ReasonInsufficientFunds},
		{"zero", f.signed(t, f.s, NewTransfer(a.ID, b.ID, 0, 0)), ReasonZeroAmount},
		{"self", f.signed(t, f.s, NewTransfer(a.ID, a.ID, 0, 1)), ReasonSelfTransfer},
		{"wrong network", wrongNet, ReasonBadSignature},
		{"stolen signature", stolen, ReasonBadSignature},
		{"unsigned", NewDeposit(a.ID, 2, 1), ReasonBadSignature},
		{"to a non-account", f.signed(t, f.s, NewTransfer(a.ID, "junk", 0, 1)), ReasonBadAccount},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { f.wantReason(t, f.s, 1, c.tx, c.want) })
	}
	// Only the registering publisher may change a registration.
	f.advance(t, 1, f.signed(t, f.s, NewRegister(a.ID, 0, root, 5)))
	f.wantReason(t, f.s, 1, f.signed(t, f.s, NewRegister(b.ID, 0, root, 1)), ReasonNotOwner)
	f.advance(t, 1, f.signed(t, f.s, NewRegister(a.ID, 0, root, 9)))
	if r, _ := f.s.Registration(root); r.PricePerGiB != 9 {
		t.Fatal("reprice failed")
	}
	// Several transactions of one account in one block, in nonce order.
	f.advance(t, 2, f.signed(t, f.s, NewDeposit(b.ID, 0, 10)), f.signed(t, f.s, NewDeposit(b.ID, f.s.Nonce(b.ID)+2, 10)))
	if f.s.Escrow(b.ID) != 20 {
		t.Fatal("two deposits in a block")
	}
}

func TestHeaderChecks(t *testing.T) {
	f := newFixture(t, 1, 0, 0, 1000)
	f.advance(t, 5)
	good, _ := f.build(t, f.s, 6, f.signed(t, f.s, NewDeposit(f.pubs[0].ID, 0, 1)))
	if _, err := Apply(f.s, good); err != nil {
		t.Fatal(err)
	}
	mutations := map[string]func(h *Header){
		"height":     func(h *Header) { h.Height++ },
		"prev":       func(h *Header) { h.Prev[0] ^= 1 },
		"epoch back": func(h *Header) { h.Epoch = 4 },
		"proposer":   func(h *Header) { h.Proposer = f.pubs[0].ID },
		"tx root":    func(h *Header) { h.TxRoot[0] ^= 1 },
		"state hash": func(h *Header) { h.StateHash[0] ^= 1 },
		"version":    func(h *Header) { h.Version = 2 },
	}
	for name, m := range mutations {
		b := *good
		m(&b.Header)
		if _, err := Apply(f.s, &b); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, _, err := Build(f.s, 4, f.com[0].ID, 0, nil); !errors.Is(err, ErrBadHeader) {
		t.Error("Build accepted an epoch going back")
	}
	if _, _, _, err := Build(f.s, 6, f.pubs[0].ID, 0, nil); !errors.Is(err, ErrBadHeader) {
		t.Error("Build accepted a proposer off the committee")
	}
	// A block of an earlier height does not apply twice.
	next, _ := Apply(f.s, good)
	if _, err := Apply(next, good); !errors.Is(err, ErrBadHeader) {
		t.Error("block applied twice")
	}
}

func TestApplyLeavesInputAlone(t *testing.T) {
	f, pub, srv, cli := paySetup(t, 100_000, testPrice)
	before, bal := f.s.Hash(), f.s.Escrow(pub.ID)
	s0 := f.s
	f.advance(t, 10, NewReceiptTx(receipt(t, srv, cli, testRoot(t, "r"), 10, GiB, nil)))
	if s0.computeHash() != before || s0.Escrow(pub.ID) != bal || s0.Balance(srv.ID) != 0 || s0.paidEntries() != 0 {
		t.Fatal("Apply changed its input state")
	}
}
