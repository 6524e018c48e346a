package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/multiformats/go-multihash"

	"github.com/ipfs/go-cid"
	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

func TestPrewarmEncoding(t *testing.T) {
	f := newFixture(t, 1, 0, 0, 1000)
	tx := f.signed(t, f.s, NewPrewarm(f.pubs[0].ID, 7, testRoot(t, "r"), math.MaxUint32, math.MaxUint64))
	enc := tx.Marshal()
	got, err := UnmarshalTx(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindPrewarm || got.From != tx.From || got.Nonce != 7 || !got.Root.Equals(tx.Root) ||
		got.Replicas != math.MaxUint32 || got.Until != math.MaxUint64 || !bytes.Equal(got.Sig, tx.Sig) {
		t.Fatalf("round trip: %+v", got)
	}
	if got.VerifySig(testNetwork) != nil || got.ID() != tx.ID() || KindPrewarm.String() != "prewarm" {
		t.Fatal("decoded pre-warm lost its signature or ID")
	}
	// The signature covers every field.
	for name, m := range map[string]func(*Tx){
		"replicas": func(x *Tx) { x.Replicas-- },
		"until":    func(x *Tx) { x.Until-- },
		"root":     func(x *Tx) { x.Root = testRoot(t, "other") },
	} {
		c := *got
		m(&c)
		if !errors.Is(c.VerifySig(testNetwork), ErrBadSignature) {
			t.Errorf("%s changed, signature still verifies", name)
		}
	}
	// Replicas past 32 bits do not decode.
	wide := NewPrewarm(f.pubs[0].ID, 7, testRoot(t, "r"), 0, 9)
	b := wide.appendUnsigned(nil)
	b = b[:len(b)-2] // replicas 0 and until 9, one byte each
	b = binary.AppendUvarint(b, math.MaxUint32+1)
	b = binary.AppendUvarint(b, 9)
	b = wire.AppendBytes(b, []byte{1})
	if _, err := UnmarshalTx(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("33-bit replicas: %v", err)
	}
	// Without a root it decodes to an error, and the state refuses it.
	noRoot := f.signed(t, f.s, NewPrewarm(f.pubs[0].ID, 1, cid.Undef, 1, 9))
	if _, err := UnmarshalTx(noRoot.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no root: %v", err)
	}
}

func TestPrewarmRules(t *testing.T) {
	f := newFixture(t, 2, 0, 0, 1000)
	a, b := f.pubs[0], f.pubs[1]
	r, s := testRoot(t, "r"), testRoot(t, "s")
	f.advance(t, 10, f.signed(t, f.s, NewRegister(a.ID, 0, r, 0)), f.signed(t, f.s, NewRegister(b.ID, 0, s, 0)))
	pw := func(from party, root cid.Cid, replicas uint32, until uint64) Tx {
		return f.signed(t, f.s, NewPrewarm(from.ID, 0, root, replicas, until))
	}
	unsigned := NewPrewarm(a.ID, 2, r, 1, 20)
	forged := pw(a, r, 1, 20)
	forged.Replicas = 2
	cases := []struct {
		name string
		tx   Tx
		want Reason
	}{
		{"not registered", pw(a, testRoot(t, "nobody"), 1, 20), ReasonNotRegistered},
		{"someone else's root", pw(a, s, 1, 20), ReasonNotOwner},
		{"zero replicas", pw(a, r, 0, 20), ReasonReplicasOutOfRange},
		{"too many replicas", pw(a, r, MaxPrewarmReplicas+1, 20), ReasonReplicasOutOfRange},
		{"until the block's epoch", pw(a, r, 1, 10), ReasonUntilOutOfRange},
		{"until in the past", pw(a, r, 1, 3), ReasonUntilOutOfRange},
		{"until too far", pw(a, r, 1, 10+MaxPrewarmEpochs+1), ReasonUntilOutOfRange},
		{"until overflowing", pw(a, r, 1, math.MaxUint64), ReasonUntilOutOfRange},
		{"no root", pw(a, cid.Undef, 1, 20), ReasonMalformed},
		{"replayed nonce", f.signed(t, f.s, NewPrewarm(a.ID, 1, r, 1, 20)), ReasonBadNonce},
		{"nonce gap", f.signed(t, f.s, NewPrewarm(a.ID, 3, r, 1, 20)), ReasonBadNonce},
		{"unsigned", unsigned, ReasonBadSignature},
		{"forged", forged, ReasonBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { f.wantReason(t, f.s, 10, c.tx, c.want) })
	}

	// Accepted at the limits; no money moves; the nonce does.
	before := f.s.Account(a.ID)
	f.advance(t, 10, pw(a, r, MaxPrewarmReplicas, 10+MaxPrewarmEpochs))
	if after := f.s.Account(a.ID); after.Balance != before.Balance || after.Escrow != before.Escrow || after.Nonce != before.Nonce+1 {
		t.Fatalf("account %+v after a pre-warm, was %+v", after, before)
	}
	want := Prewarm{Root: r, Publisher: a.ID, Replicas: MaxPrewarmReplicas, Until: 10 + MaxPrewarmEpochs}
	if got, ok := f.s.Prewarm(r); !ok || got != want {
		t.Fatalf("Prewarm(r) = %+v %v", got, ok)
	}
	// A new one replaces it; ended ones go when a later block applies.
	f.advance(t, 11, pw(a, r, 2, 15), pw(b, s, 1, 12))
	if got := f.s.Prewarms(); len(got) != 2 || !slices.IsSortedFunc(got, func(x, y Prewarm) int {
		return bytes.Compare(x.Root.Bytes(), y.Root.Bytes())
	}) {
		t.Fatalf("Prewarms() = %+v", got)
	}
	if got, _ := f.s.Prewarm(r); got.Replicas != 2 || got.Until != 15 {
		t.Fatalf("not replaced: %+v", got)
	}
	f.advance(t, 12)
	if len(f.s.Prewarms()) != 2 {
		t.Fatal("a pre-warm ended before its Until epoch")
	}
	f.advance(t, 13)
	if got := f.s.Prewarms(); len(got) != 1 || !got[0].Root.Equals(r) {
		t.Fatalf("after s's Until: %+v", got)
	}
	if _, ok := f.s.Prewarm(s); ok {
		t.Fatal("an ended pre-warm is still found")
	}
	f.advance(t, 100)
	if len(f.s.Prewarms()) != 0 || len(f.s.prewarms) != 0 {
		t.Fatal("pre-warms kept past Until")
	}
}

// TestPrewarmStateHash: the state hash covers the active pre-warms, and
// once they end the state hashes as if there had been none.
func TestPrewarmStateHash(t *testing.T) {
	chain := func(prewarm bool) *fixture {
		f := newFixture(t, 1, 0, 0, 1000)
		a, r := f.pubs[0], testRoot(t, "r")
		f.advance(t, 10, f.signed(t, f.s, NewRegister(a.ID, 0, r, 5)))
		second := NewRegister(a.ID, 0, r, 5) // the same registration again: only the nonce moves
		if prewarm {
			second = NewPrewarm(a.ID, 0, r, 4, 20)
		}
		f.advance(t, 10, f.signed(t, f.s, second))
		return f
	}
	with, without := chain(true), chain(false)
	if with.s.Hash() == without.s.Hash() {
		t.Fatal("a pre-warm does not change the state hash")
	}
	// Every field of a pre-warm is covered.
	base := with.s.Prewarms()[0]
	for name, m := range map[string]func(*Prewarm){
		"replicas":  func(p *Prewarm) { p.Replicas++ },
		"until":     func(p *Prewarm) { p.Until++ },
		"publisher": func(p *Prewarm) { p.Publisher = with.com[0].ID },
		"root":      func(p *Prewarm) { p.Root = testRoot(t, "s") },
	} {
		p := base
		m(&p)
		n := with.s.next(with.s.epoch)
		clear(n.prewarms)
		n.prewarms[string(p.Root.Bytes())] = p
		if n.computeHash() == with.s.Hash() {
			t.Errorf("%s is not covered by the state hash", name)
		}
	}
	// Until 20 holds through epoch 20; at 21 both states agree again.
	with.advance(t, 20)
	without.advance(t, 20)
	if with.s.Hash() == without.s.Hash() {
		t.Fatal("the pre-warm ended before its Until epoch")
	}
	with.advance(t, 21)
	without.advance(t, 21)
	if with.s.Hash() != without.s.Hash() {
		t.Fatal("an ended pre-warm still changes the state hash")
	}
}

// TestVerifyWithPrewarms replays, from genesis and from their encodings,
// final blocks that carry, replace and expire pre-warms.
func TestVerifyWithPrewarms(t *testing.T) {
	f := newFixture(t, 2, 1, 1, 1_000_000)
	a, b := f.pubs[0], f.pubs[1]
	r, s := testRoot(t, "r"), testRoot(t, "s")
	steps := []struct {
		epoch uint64
		txs   func() []Tx
	}{
		{1, func() []Tx {
			return []Tx{f.signed(t, f.s, NewDeposit(a.ID, 0, 1000)), f.signed(t, f.s, NewRegister(a.ID, 2, r, 0)),
				f.signed(t, f.s, NewRegister(b.ID, 0, s, 0)), f.signed(t, f.s, NewPrewarm(a.ID, 3, r, 8, 50))}
		}},
		{2, func() []Tx {
			return []Tx{f.signed(t, f.s, NewPrewarm(b.ID, 0, s, 3, 4)),
				NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], r, 2, GiB, nil))}
		}},
		{3, func() []Tx { return []Tx{f.signed(t, f.s, NewPrewarm(a.ID, 0, r, 16, 60))} }},
		{5, nil}, // s ends
		{6, func() []Tx { return []Tx{f.signed(t, f.s, NewPrewarm(b.ID, 0, s, 1, 9))} }},
	}
	var encoded [][]byte
	for _, st := range steps {
		var txs []Tx
		if st.txs != nil {
			txs = st.txs()
		}
		blk, n := f.build(t, f.s, st.epoch, txs...)
		for _, m := range f.com[1:] {
			if err := blk.Sign(m.Key); err != nil {
				t.Fatal(err)
			}
		}
		f.s = n
		encoded = append(encoded, blk.Marshal())
	}
	var blocks []*Block
	for _, enc := range encoded {
		blk, err := UnmarshalBlock(enc)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, blk)
	}
	got, err := Verify(f.g, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != f.s.Hash() || got.Height() != uint64(len(steps)) || !slices.Equal(got.Prewarms(), f.s.Prewarms()) {
		t.Fatal("the replay from genesis ends in another state")
	}
	want := []Prewarm{{Root: r, Publisher: a.ID, Replicas: 16, Until: 60}, {Root: s, Publisher: b.ID, Replicas: 1, Until: 9}}
	slices.SortFunc(want, func(x, y Prewarm) int { return bytes.Compare(x.Root.Bytes(), y.Root.Bytes()) })
	if !slices.Equal(got.Prewarms(), want) {
		t.Fatalf("pre-warms %+v, want %+v", got.Prewarms(), want)
	}
	checkSupply(t, got)
}

// TestStateHashWithoutPrewarms pins the hash of a state without pre-warms
// under each rules version: RulesV1 to what this chain gave before
// pre-warms existed (chains written then must still verify), RulesV2 to
// what it gave before RulesV3, RulesV3 to what it gives since. If you change a state encoding on purpose, every
// existing chain of those rules stops verifying; update a value only then.
func TestStateHashWithoutPrewarms(t *testing.T) {
	for rules, want := range map[uint8]string{
		RulesV1: "ab8ac3f4e21e180f3a2d5d4471df93c2f9cdbddc5511fc3f10a53f96b632a222",
		RulesV2: "ff519049df9493d5efb8d69f28ac44a391cd65fa0cbfa26a0229dc0365ab82a6",
		RulesV3: "ff0e6896fd8d7b3d5e704e81d7c45de80af061b9e5df454f0a512698765a7304",
	} {
		f := newFixture(t, 2, 2, 2, 1_000_000)
		f.g.Rules = rules
		var err error
		if f.s, err = NewState(f.g); err != nil {
			t.Fatal(err)
		}
		r := testRoot(t, "r")
		f.advance(t, 3, f.signed(t, f.s, NewDeposit(f.pubs[0].ID, 0, 1000)), f.signed(t, f.s, NewRegister(f.pubs[0].ID, 2, r, 7)))
		f.advance(t, 4, NewReceiptTx(receipt(t, f.srvs[0], f.clis[1], r, 4, GiB, nil)),
			f.signed(t, f.s, NewTransfer(f.pubs[1].ID, f.srvs[1].ID, 0, 5)))
		if h := f.s.Hash(); hex.EncodeToString(h[:]) != want {
			t.Fatalf("rules %d: state hash %x, chains of these rules give %s", rules, h, want)
		}
	}
}

// TestStateHashV4 pins the hash of a RulesV4 state with a registration,
// a ticket and a receipt paid under it (see TestStateHashWithoutPrewarms).
func TestStateHashV4(t *testing.T) {
	f := newFixture(t, 2, 2, 2, 1_000_000)
	f.g.Rules = RulesV4
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	root, block := sizedRoot(t, "r", 1<<30, false)
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: f.pubs[0].ID, Root: root, Cap: 1 << 29, Expires: 9}
	if err := tk.Sign(f.pubs[0].Key); err != nil {
		t.Fatal(err)
	}
	f.advance(t, 3, f.signed(t, f.s, NewDeposit(f.pubs[0].ID, 0, 1000)),
		f.signed(t, f.s, NewRegisterRoot(f.pubs[0].ID, 2, root, block, 7, 0)), NewTicketTx(tk))
	f.advance(t, 4, NewReceiptTx(receipt(t, f.srvs[0], f.clis[1], root, 4, GiB, func(r *pod.Receipt) {
		r.Version, r.Ticket = pod.VersionTicket, tk.ID()
	})))
	if got := f.s.Balance(f.srvs[0].ID); got != 3 { // half a GiB (the ticket's cap) at 7 per GiB
		t.Fatalf("the server earned %d, want 3", got)
	}
	const want = "6d1c1d0e15bf8be78e7ede95d212095ce7f8469fefc1cbfbb4617d3e59368cfe"
	if h := f.s.Hash(); hex.EncodeToString(h[:]) != want {
		t.Fatalf("state hash %x, chains of RulesV4 give %s", h, want)
	}
}

// The size of a root comes from its block: the block and its links'
// sizes for dag-pb; a raw root's own length, or at most MaxBlockSize
// without it. A block that is not the root's, inline content and other
// codecs are refused.
func TestRootSize(t *testing.T) {
	root, block := sizedRoot(t, "x", 5<<20, false)
	if n, err := rootSize(root, block); err != nil || n != 5<<20 {
		t.Fatalf("dag-pb root: %d, %v", n, err)
	}
	raw, rawBlock := sizedRoot(t, "y", 300, true)
	if n, err := rootSize(raw, rawBlock); err != nil || n != 300 {
		t.Fatalf("raw root with its block: %d, %v", n, err)
	}
	if n, err := rootSize(raw, nil); err != nil || n != pod.MaxBlockSize {
		t.Fatalf("raw root without its block: %d, %v", n, err)
	}
	_, otherBlock := sizedRoot(t, "z", 5<<20, false)
	inline, err := cid.V1Builder{Codec: cid.DagProtobuf, MhType: multihash.IDENTITY}.Sum(block)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		root  cid.Cid
		block []byte
	}{
		"no block":           {root, nil},
		"another's block":    {root, otherBlock},
		"inline":             {inline, block},
		"dag-cbor":           {cid.NewCidV1(cid.DagCBOR, root.Hash()), block},
		"an oversized block": {root, make([]byte, MaxRootBlock+1)},
	} {
		_, err := rootSize(c.root, c.block)
		if re := (*reason)(nil); !errors.As(err, &re) || re.r != ReasonMalformed {
			t.Errorf("%s: %v, want a refusal (%s)", name, err, ReasonMalformed)
		}
	}
}
