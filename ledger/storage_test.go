package ledger

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/storeproof"
)

// storageNet is a RulesV5 network where pubs[0] registered and pre-warmed
// a root, committed to its bytes and offered its storage, and a pre-warm
// order names clis[0] and clis[1] (the boxes); clis[2] is a box no order
// names.
type storageNet struct {
	*fixture
	root   cid.Cid
	data   []byte
	tree   *storeproof.Tree
	commit storeproof.Commitment
	last   *Block // the last block, signed by every member
	pay    uint64 // RoundPay of the offer
}

const (
	storagePrice  = 1 << 20 // per GiB per epoch
	storageLength = 200*storeproof.SegmentSize + 77
)

func newStorageNet(t *testing.T, replicas uint32, escrow uint64, commitTo []byte) *storageNet {
	t.Helper()
	f := newFixture(t, 2, 3, 3, 1<<40)
	f.g.Rules = RulesV5
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	n := &storageNet{fixture: f, data: make([]byte, storageLength)}
	if _, err := rand.Read(n.data); err != nil {
		t.Fatal(err)
	}
	if n.tree, err = storeproof.NewTree(bytes.NewReader(n.data)); err != nil {
		t.Fatal(err)
	}
	n.commit = n.tree.Commitment()
	offered := n.commit
	if commitTo != nil {
		if offered, err = storeproof.Commit(commitTo); err != nil {
			t.Fatal(err)
		}
	}
	root, block := sizedRoot(t, "stored", 64<<20, false)
	n.root = root
	pub := f.pubs[0].ID
	n.step(t, 3, f.signed(t, f.s, NewDeposit(pub, 1, escrow)),
		f.signed(t, f.s, NewRegisterRoot(pub, 2, root, block, testPrice, 0)))
	n.step(t, 4, f.signed(t, f.s, NewPrewarm(pub, 3, root, 3, 50_000)),
		f.signed(t, f.s, NewStorage(pub, 4, root, offered, storagePrice, replicas, 3*storeproof.RoundEpochs-1)))
	n.step(t, 4, orderTx(t, f.com[0], heat.ReasonPrewarm, 4, 40_000, root, f.clis[0], f.clis[1]))
	n.pay = n.g.RoundPay(offered.Length, storagePrice)
	return n
}

// step builds and applies a block, which every member then signs.
func (n *storageNet) step(t *testing.T, epoch uint64, txs ...Tx) {
	t.Helper()
	b, _ := n.build(t, n.s, epoch, txs...)
	next, err := Apply(n.s, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range n.com {
		if err := b.Sign(m.Key); err != nil {
			t.Fatal(err)
		}
	}
	n.s, n.last = next, b
}

func (n *storageNet) beacon(t *testing.T) Tx {
	t.Helper()
	tx, ok := NewBeaconTx(n.g, n.last)
	if !ok {
		t.Fatal("no quorum of signatures on the last block")
	}
	return tx
}

// proof is box's proof of the open round from the bytes it holds.
func (n *storageNet) proof(t *testing.T, box party, data []byte) Tx {
	t.Helper()
	bk, ok := n.s.Beacon()
	if !ok {
		t.Fatal("no round open")
	}
	idx := storeproof.Challenge(bk.Seed, []byte(box.ID), n.root.Bytes(), uint64(len(data)))
	tree, err := storeproof.NewTree(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	p, err := storeproof.Prove(tree, bytes.NewReader(data), idx)
	if err != nil {
		t.Fatal(err)
	}
	return NewProofTx(box.ID, n.root, bk.Round, p)
}

func TestStorageEncoding(t *testing.T) {
	n := newStorageNet(t, 2, 1<<30, nil)
	n.step(t, 5, n.beacon(t))
	for _, tx := range []Tx{
		n.signed(t, n.s, NewStorage(n.pubs[0].ID, 0, n.root, n.commit, 7, 2, 99)),
		n.beacon(t),
		n.proof(t, n.clis[0], n.data),
	} {
		back, err := UnmarshalTx(tx.Marshal())
		if err != nil {
			t.Fatalf("%s: %v", tx.Kind, err)
		}
		if back.ID() != tx.ID() || !bytes.Equal(back.Marshal(), tx.Marshal()) {
			t.Fatalf("%s does not round-trip", tx.Kind)
		}
	}
	// The offer's signature covers its commitment.
	offer := n.signed(t, n.s, NewStorage(n.pubs[0].ID, 0, n.root, n.commit, 7, 2, 99))
	offer.Commit[0] ^= 1
	if !errors.Is(offer.VerifySig(testNetwork), ErrBadSignature) {
		t.Fatal("a changed commitment kept the offer's signature")
	}
	// A beacon is no one's to submit; a proof is anyone's.
	if bt := n.beacon(t); bt.Authenticate(testNetwork) == nil {
		t.Fatal("a beacon passed as a submitted transaction")
	}
	if pt := n.proof(t, n.clis[0], n.data); pt.Authenticate(testNetwork) != nil {
		t.Fatal("a proof did not pass as a submitted transaction")
	}
}

// TestStoragePaysProvenRounds: the offer reserves what its replicas may
// earn; a box the order names earns RoundPay for each round it proves,
// from the reservation; the rest returns to the escrow when the offer ends.
func TestStoragePaysProvenRounds(t *testing.T) {
	const escrow = 1 << 30
	n := newStorageNet(t, 2, escrow, nil)
	pub := n.pubs[0].ID
	a, b := n.clis[0], n.clis[1]
	o, ok := n.s.StorageOffer(n.root)
	reserved := n.pay * 2 * 3 // 2 replicas, rounds 0 to 2
	if !ok || o.Reserved != reserved || o.Commitment != n.commit {
		t.Fatalf("offer %+v, want %d reserved", o, reserved)
	}
	if got := n.s.Challenges(a.ID); len(got) != 0 {
		t.Fatalf("challenges before any beacon: %+v", got)
	}
	n.step(t, 5, n.beacon(t))
	ch := n.s.Challenges(a.ID)
	if len(ch) != 1 || !ch[0].Root.Equals(n.root) || len(ch[0].Indices) != storeproof.ChallengesPerRound {
		t.Fatalf("challenges of an ordered box: %+v", ch)
	}
	n.step(t, 6, n.proof(t, a, n.data), n.proof(t, b, n.data))
	for _, box := range []party{a, b} {
		if got := n.s.Balance(box.ID); got != n.pay {
			t.Fatalf("box earned %d for a round, want %d", got, n.pay)
		}
		if recs := n.s.ReplicaRecords(box.ID); len(recs) != 1 || recs[0].Proofs != 1 || recs[0].Earned != n.pay {
			t.Fatalf("records %+v", recs)
		}
	}
	if len(n.s.Challenges(a.ID)) != 0 {
		t.Fatal("a box that proved the round is still challenged")
	}
	// Round 1: only a proves; b misses (it was seen in round 0).
	n.step(t, storeproof.RoundEpochs, n.beacon(t))
	n.step(t, storeproof.RoundEpochs+1, n.proof(t, a, n.data))
	// The planner's view: both proved recently (a this round, b the last).
	for _, box := range []party{a, b} {
		if offered, recent, revoked := n.s.StorageBacking(box.ID, n.root); !offered || !recent || revoked {
			t.Fatalf("backing of a box that proved: %v %v %v", offered, recent, revoked)
		}
	}
	if offered, _, _ := n.s.StorageBacking(a.ID, testRoot(t, "unoffered")); offered {
		t.Fatal("a root without an offer is backed by one")
	}
	n.step(t, 2*storeproof.RoundEpochs, n.beacon(t))
	if _, recent, _ := n.s.StorageBacking(b.ID, n.root); recent {
		t.Fatal("b proved nothing in two rounds and is still backed")
	}
	if got := n.s.Balance(a.ID); got != 2*n.pay {
		t.Fatalf("a earned %d over two rounds, want %d", got, 2*n.pay)
	}
	if recs := n.s.ReplicaRecords(b.ID); recs[0].Misses != 1 || n.s.Balance(b.ID) != n.pay {
		t.Fatalf("b after a missed round: %+v, balance %d", recs, n.s.Balance(b.ID))
	}
	// The offer ends with round 2; its remainder returns to the escrow.
	n.step(t, 3*storeproof.RoundEpochs)
	if _, ok := n.s.StorageOffer(n.root); ok {
		t.Fatal("the offer outlived its last round")
	}
	if acct := n.s.Account(pub); acct.Escrow+acct.Reserved != escrow-3*n.pay {
		t.Fatalf("publisher %+v after paying 3 rounds of %d from %d", acct, n.pay, escrow)
	}
}

// TestStorageAttacks tries the transactions a box, a publisher or a
// leader could craft to be paid without holding the bytes.
func TestStorageAttacks(t *testing.T) {
	n := newStorageNet(t, 1, 1<<30, nil)
	a, b, stranger := n.clis[0], n.clis[1], n.clis[2]
	// No round open: no proof is due.
	n.wantReason(t, n.s, 5, NewProofTx(a.ID, n.root, 0, &storeproof.Proof{}), ReasonNotChallenged)
	n.step(t, 5, n.beacon(t))
	good := n.proof(t, a, n.data)
	round0 := good

	// A proof for the wrong challenge: b's segments sent as a's, and a
	// proof built for another seed.
	wrong := n.proof(t, b, n.data)
	wrong.From = a.ID
	n.wantReason(t, n.s, 6, wrong, ReasonBadProof)
	// A proof of a box no order names, though its segments verify.
	n.wantReason(t, n.s, 6, n.proof(t, stranger, n.data), ReasonNotOrdered)
	// Segments that do not hash to the commitment.
	bad := n.proof(t, a, n.data)
	bad.Proof.Segments[0].Data[0] ^= 1
	n.wantReason(t, n.s, 6, bad, ReasonBadProof)
	// A proof of another round's number.
	later := n.proof(t, a, n.data)
	later.Round++
	n.wantReason(t, n.s, 6, later, ReasonNotChallenged)
	// A second beacon in the round, a beacon short of a quorum, one over
	// another block, one by a stranger.
	n.wantReason(t, n.s, 6, n.beacon(t), ReasonRoundSeeded)
	short := n.beacon(t)
	short.Beacon = short.Beacon[:1]
	n.wantReason(t, n.s, storeproof.RoundEpochs, short, ReasonBadSignature)
	stale := n.beacon(t)
	n.step(t, 6, good)
	n.wantReason(t, n.s, storeproof.RoundEpochs, stale, ReasonBadSignature)
	strange := n.beacon(t)
	strange.Beacon[0] = Signature{Signer: stranger.ID, Sig: strange.Beacon[0].Sig}
	sortSigs(strange.Beacon)
	n.wantReason(t, n.s, storeproof.RoundEpochs, strange, ReasonNotCommittee)

	// A replayed proof in the same round pays nothing more.
	n.wantReason(t, n.s, 7, round0, ReasonProven)
	// Past the window no proof of the round is taken.
	n.wantReason(t, n.s, 5+storeproof.ProofWindow+1, n.proof(t, b, n.data), ReasonNotChallenged)
	// Replicas is 1: b's valid proof is recorded and unpaid.
	n.step(t, 7, n.proof(t, b, n.data))
	if got := n.s.Balance(b.ID); got != 0 {
		t.Fatalf("a proof beyond the offer's replicas earned %d", got)
	}
	if recs := n.s.ReplicaRecords(b.ID); len(recs) != 1 || recs[0].Proofs != 1 {
		t.Fatalf("b's records %+v", recs)
	}
	n.step(t, 5+storeproof.ProofWindow+1)
	if len(n.s.Challenges(b.ID)) != 0 {
		t.Fatal("challenges listed past the window")
	}
	// The last round's proof replayed in the next round.
	n.step(t, storeproof.RoundEpochs, n.beacon(t))
	n.wantReason(t, n.s, storeproof.RoundEpochs, round0, ReasonNotChallenged)
	relabelled := round0
	relabelled.Round = n.g.RoundOf(storeproof.RoundEpochs)
	n.wantReason(t, n.s, storeproof.RoundEpochs, relabelled, ReasonBadProof)

	// Under RulesV4 none of the kinds exists.
	v4 := newFixtureV4(t, 1, 1, 1, 1000)
	v4.wantReason(t, v4.s, 5, v4.signed(t, v4.s, NewStorage(v4.pubs[0].ID, 0, n.root, n.commit, 7, 1, 99)), ReasonNotInRules)
	v4.wantReason(t, v4.s, 5, round0, ReasonNotInRules)
}

func sortSigs(s []Signature) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Signer < s[j-1].Signer; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestStorageCommitmentMismatch: a publisher that commits to bytes other
// than the root's pays no box: honest boxes' proofs of the real bytes do
// not verify, and the whole reservation returns when the offer ends.
func TestStorageCommitmentMismatch(t *testing.T) {
	const escrow = 1 << 30
	other := make([]byte, storageLength)
	n := newStorageNet(t, 2, escrow, other)
	n.step(t, 5, n.beacon(t))
	real := n.proof(t, n.clis[0], n.data)
	n.wantReason(t, n.s, 6, real, ReasonBadProof)
	for e := uint64(1); e <= 3; e++ {
		n.step(t, e*storeproof.RoundEpochs)
	}
	if a := n.s.Account(n.pubs[0].ID); a.Escrow+a.Reserved != escrow {
		t.Fatalf("publisher %+v paid for a commitment no box could prove", a)
	}
}

// TestStorageEscrowBounds: an offer reserves no more than the escrow, a
// replacement gives back the old reservation first, and payments never
// exceed what was reserved however many boxes prove.
func TestStorageEscrowBounds(t *testing.T) {
	n := newStorageNet(t, 1, 1<<30, nil)
	pub := n.pubs[0]
	acct := n.s.Account(pub.ID)
	// More than the escrow and reservation hold.
	greedy := n.signed(t, n.s, NewStorage(pub.ID, 0, n.root, n.commit, storagePrice*1000, 64, 3*storeproof.RoundEpochs-1))
	n.wantReason(t, n.s, 5, greedy, ReasonInsufficientEscrow)
	// Another publisher cannot offer (or reprice) this root, registered
	// by it or not.
	other := n.pubs[1]
	n.step(t, 5, n.signed(t, n.s, NewDeposit(other.ID, 0, 1<<20)))
	n.wantReason(t, n.s, 5, n.signed(t, n.s, NewStorage(other.ID, 0, n.root, n.commit, 1, 1, 99)), ReasonNotRegistered)
	_, block := sizedRoot(t, "stored", 64<<20, false)
	n.step(t, 5, n.signed(t, n.s, NewRegisterRoot(other.ID, 0, n.root, block, testPrice, 0)))
	n.wantReason(t, n.s, 5, n.signed(t, n.s, NewStorage(other.ID, 0, n.root, n.commit, 1, 1, 99)), ReasonNotOwner)
	// A replacement with a smaller reservation gives the difference back.
	n.step(t, 5, n.signed(t, n.s, NewStorage(pub.ID, 0, n.root, n.commit, storagePrice, 1, storeproof.RoundEpochs-1)))
	after := n.s.Account(pub.ID)
	if after.Escrow+after.Reserved != acct.Escrow+acct.Reserved || after.Reserved != acct.Reserved-2*n.pay {
		t.Fatalf("after a smaller offer %+v, before %+v (round pay %d)", after, acct, n.pay)
	}
	// One round reserved for one replica: two boxes prove, one is paid.
	n.step(t, 6, n.beacon(t))
	n.step(t, 7, n.proof(t, n.clis[0], n.data), n.proof(t, n.clis[1], n.data))
	paid := n.s.Balance(n.clis[0].ID) + n.s.Balance(n.clis[1].ID)
	if paid != n.pay {
		t.Fatalf("boxes earned %d from a reservation of %d", paid, n.pay)
	}
	if o, _ := n.s.StorageOffer(n.root); o.Reserved != 0 {
		t.Fatalf("reservation left %d", o.Reserved)
	}
}

// TestStorageMissesRevoke: a box that dropped part of the root misses the
// rounds whose challenges touch what it dropped, is unpaid for them and,
// after MaxMisses, loses its order; an honest box beside it is paid every
// round.
func TestStorageMissesRevoke(t *testing.T) {
	rounds := uint64(50) // within the order's Until
	n := newStorageNet(t, 2, 1<<40, nil)
	// A longer offer: replace it (same commitment, records kept).
	n.step(t, 5, n.signed(t, n.s, NewStorage(n.pubs[0].ID, 0, n.root, n.commit, storagePrice, 2, rounds*storeproof.RoundEpochs)))
	honest, cheat := n.clis[0], n.clis[1]
	// The cheater dropped a quarter of the segments.
	kept := func(i uint64) bool { return i%4 != 0 }
	var cheatPaid, missed uint64
	for r := uint64(0); r < rounds; r++ {
		e := r*storeproof.RoundEpochs + 6
		n.step(t, e, n.beacon(t))
		txs := []Tx{n.proof(t, honest, n.data)}
		ok := true
		for _, i := range n.s.Challenges(cheat.ID) {
			for _, x := range i.Indices {
				ok = ok && kept(x)
			}
		}
		if len(n.s.Challenges(cheat.ID)) == 0 {
			if recs := n.s.ReplicaRecords(cheat.ID); len(recs) == 0 || !recs[0].Revoked {
				t.Fatalf("round %d: the cheater is not challenged and not revoked: %+v", r, recs)
			}
			n.step(t, e+1, txs...)
			break
		}
		if ok {
			txs = append(txs, n.proof(t, cheat, n.data))
			cheatPaid++
		} else {
			missed++
		}
		n.step(t, e+1, txs...)
	}
	recs := n.s.ReplicaRecords(cheat.ID)
	if len(recs) != 1 || !recs[0].Revoked || recs[0].Misses != storeproof.MaxMisses {
		t.Fatalf("the cheater's record after %d missed rounds: %+v", missed, recs)
	}
	if got := n.s.Balance(cheat.ID); got != cheatPaid*n.pay {
		t.Fatalf("the cheater earned %d, it proved %d rounds of %d", got, cheatPaid, n.pay)
	}
	_, _, _, _, boxes, _ := n.s.Order(n.root)
	if len(boxes) != 1 || boxes[0] != honest.ID {
		t.Fatalf("the order after revocation names %v", boxes)
	}
	if h := n.s.ReplicaRecords(honest.ID); h[0].Misses != 0 || h[0].Revoked {
		t.Fatalf("honest record %+v", h)
	}
	if _, _, revoked := n.s.StorageBacking(cheat.ID, n.root); !revoked {
		t.Fatal("the planner does not see the revocation")
	}
	// A revoked box's proof is refused even if valid.
	n.wantReason(t, n.s, n.s.Epoch(), n.proof(t, cheat, n.data), ReasonNotOrdered)
}

// TestStorageBeaconBFT: under FinalityBFT a beacon is exactly a quorum of
// precommits of one round for the previous block.
func TestStorageBeaconBFT(t *testing.T) {
	f := newFixture(t, 1, 0, 0, 1<<30)
	f.g.Rules, f.g.Finality = RulesV5, FinalityBFT
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	b, _ := f.build(t, f.s, 3, f.signed(t, f.s, NewDeposit(f.pubs[0].ID, 1, 10)))
	if f.s, err = Apply(f.s, b); err != nil {
		t.Fatal(err)
	}
	for i, m := range f.com {
		if err := b.SignPrecommit(m.Key, uint32(i%2)); err != nil { // rounds 0, 1, 0
			t.Fatal(err)
		}
	}
	if _, ok := NewBeaconTx(f.g, b); ok {
		t.Fatal("a beacon from precommits of two rounds, none with a quorum")
	}
	mixed := Tx{Kind: KindBeacon, Beacon: b.Sigs}
	f.wantReason(t, f.s, 4, mixed, ReasonBadSignature)
	for _, m := range f.com {
		if err := b.SignPrecommit(m.Key, 1); err != nil {
			t.Fatal(err)
		}
	}
	bt, ok := NewBeaconTx(f.g, b)
	if !ok {
		t.Fatal("no beacon from a quorum of precommits")
	}
	f.advance(t, 4, bt)
	if bk, ok := f.s.Beacon(); !ok || bk.Epoch != 4 || bk.Round != 0 {
		t.Fatalf("beacon %+v %v", bk, ok)
	}
}

// A genesis may shorten the challenge round (rules 5 only); the round is
// in its hash and its JSON, and the ledger's rounds follow it.
func TestStorageRoundInGenesis(t *testing.T) {
	f := newFixture(t, 1, 0, 0, 1<<30)
	g := *f.g
	g.StorageRound = 10
	if err := g.Validate(); err == nil {
		t.Fatal("a storage round under rules 3 validated")
	}
	g.Rules = RulesV5
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []uint64{1, MaxPrewarmEpochs + 1} {
		b := g
		b.StorageRound = bad
		if b.Validate() == nil {
			t.Fatalf("a storage round of %d epochs validated", bad)
		}
	}
	def := g
	def.StorageRound = 0
	if def.Hash() == g.Hash() {
		t.Fatal("the storage round is not in the genesis hash")
	}
	data, err := g.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseGenesis(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.StorageRound != 10 || back.Hash() != g.Hash() {
		t.Fatalf("genesis JSON round trip: round %d", back.StorageRound)
	}
	if g.RoundOf(25) != 2 || g.ProofWindow() != 5 || def.ChallengeRound() != storeproof.RoundEpochs || def.ProofWindow() != storeproof.ProofWindow {
		t.Fatalf("rounds: %d, window %d, default %d/%d", g.RoundOf(25), g.ProofWindow(), def.ChallengeRound(), def.ProofWindow())
	}
	// The ledger opens a round per 10 epochs.
	s, err := NewState(&g)
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _, err := Build(s, 1, f.com[0].ID, 0, nil); err != nil || NeedsBeacon(s, 1) {
		t.Fatalf("a beacon asked for at height 0: %v", err)
	} else if s, err = Apply(s, b); err != nil {
		t.Fatal(err)
	}
	if !NeedsBeacon(s, 9) {
		t.Fatal("no beacon asked for in round 0")
	}
}
