package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/storeproof"
)

// RulesV5: storage is paid, and only when proven (package storeproof has
// the design and its arithmetic).
//
//   - A storage offer (KindStorage) is a publisher's: for a root it
//     registered, the commitment to the root's bytes (storeproof), the
//     price per GiB per epoch held, how many replicas it pays and until
//     which epoch. It reserves from the escrow, when a block takes it,
//     what every replica could earn: Replicas × RoundPay × the rounds from
//     the block's to Until's. A new offer of the root replaces the old one
//     and gives back what was left of its reservation first; what is left
//     when its last round has passed returns to the escrow.
//   - A beacon (KindBeacon) opens a challenge round: the precommits (or,
//     under FinalityMajority, the signatures) of exactly a quorum of the
//     committee for the previous block, checked against the hash and
//     height the state holds. Its seed (storeproof.Seed) names, per (box,
//     root), the segments the box answers for. One beacon per round
//     (Genesis.RoundOf of the block's epoch); a round without one
//     challenges and pays nobody.
//   - A proof (KindProof) of (box, root, round) is accepted in a block up
//     to Genesis.ProofWindow epochs after its round's beacon, if the
//     root has an offer, the root's recorded order (orders.go) names the
//     box, the box was not revoked for the root, it did not prove the
//     round already, and the segments verify against the offer's
//     commitment for the challenges the state derives. It pays the box
//     RoundPay from the offer's reservation, for at most Replicas boxes a
//     round; later proofs of the round are recorded and unpaid.
//   - When the next beacon closes a round, each box the root's order names
//     that did not prove it misses it (not in the round it was first
//     seen: it may have been ordered after the beacon); after
//     storeproof.MaxMisses misses its storage of the root is revoked and
//     the box leaves the root's recorded order: no more storage or
//     replication pay for that root.
//
// A proof carries no signature: the segments are their own authority, and
// whoever submits one only pays the box it names. Its cost to the
// committee is hashing, not signature checks.

// Storage transaction kinds (RulesV5).
const (
	// KindStorage: From offers to pay for storage of its registered Root:
	// Commit and Amount (the commitment's root and length), Price per GiB
	// per epoch, Replicas and Until.
	KindStorage Kind = 15
	// KindBeacon: the quorum's signatures of the previous block (Beacon)
	// that open a challenge round; only a leader puts one in its block.
	KindBeacon Kind = 16
	// KindProof: From (a box) proves it holds Root in Round (Proof).
	KindProof Kind = 17
)

// Refusal reasons of storage transactions.
const (
	ReasonBadProof      Reason = "bad_proof"      // storage segments that do not verify for the challenges; a job mismatch's checks that are too few, not members', or disagree
	ReasonNotChallenged Reason = "not_challenged" // no round open, another round, or past its window
	ReasonProven        Reason = "proven"         // the box proved the round already
	ReasonNotOrdered    Reason = "not_ordered"    // no order names the box, or its storage was revoked
	ReasonRoundSeeded   Reason = "round_seeded"   // a second beacon for one round
)

// maxProofTx bounds a KindProof transaction: a proof and its framing.
const maxProofTx = storeproof.MaxProofSize + maxPeerIDLen + maxCIDLen + 32

// maxBeaconTx bounds a KindBeacon transaction.
const maxBeaconTx = MaxBlockSigs*(maxPeerIDLen+maxSigLen+8) + 16

// NewStorage offers storage of root (which from registered) to replicas
// boxes through epoch until, at pricePerGiB per GiB per epoch, for the
// bytes c commits to.
func NewStorage(from peer.ID, nonce uint64, root cid.Cid, c storeproof.Commitment, pricePerGiB uint64, replicas uint32, until uint64) Tx {
	return Tx{Kind: KindStorage, From: from, Nonce: nonce, Root: root, Commit: c.Root, Amount: c.Length,
		Price: pricePerGiB, Replicas: replicas, Until: until}
}

// NewBeaconTx opens a challenge round with the signatures of block prev,
// the last final block, keeping exactly quorum of them: the precommits of
// one round under FinalityBFT (the round with the most), the first in
// signer order. The ledger checks them (applyBeacon).
func NewBeaconTx(g *Genesis, prev *Block) (Tx, bool) {
	sigs := prev.Sigs
	if g.FinalityRule() == FinalityBFT {
		byRound := map[uint32][]Signature{}
		best := uint32(0)
		for _, s := range sigs {
			if r, _, ok := SplitPrecommit(s.Sig); ok {
				byRound[r] = append(byRound[r], s)
				if len(byRound[r]) > len(byRound[best]) {
					best = r
				}
			}
		}
		sigs = byRound[best]
	}
	if len(sigs) < g.Quorum() {
		return Tx{}, false
	}
	return Tx{Kind: KindBeacon, Beacon: slices.Clone(sigs[:g.Quorum()])}, true
}

// NewProofTx is box's proof of root in round.
func NewProofTx(box peer.ID, root cid.Cid, round uint64, p *storeproof.Proof) Tx {
	return Tx{Kind: KindProof, From: box, Root: root, Round: round, Proof: p}
}

// ChallengeRound is the epochs of a storage challenge round: the
// genesis's StorageRound, or storeproof.RoundEpochs.
func (g *Genesis) ChallengeRound() uint64 {
	if g.StorageRound == 0 {
		return storeproof.RoundEpochs
	}
	return g.StorageRound
}

// RoundOf is the challenge round of an epoch.
func (g *Genesis) RoundOf(epoch uint64) uint64 { return epoch / g.ChallengeRound() }

// ProofWindow is how many epochs after a round's beacon a block takes its
// proofs: storeproof.ProofWindow, at most half a round.
func (g *Genesis) ProofWindow() uint64 {
	return min(storeproof.ProofWindow, max(1, g.ChallengeRound()/2))
}

// RoundPay is what a box earns for proving one round of a root of length
// bytes at price per GiB per epoch: the price of the bytes over the
// round's epochs.
func (g *Genesis) RoundPay(length, price uint64) uint64 {
	return owed(satMul(length, g.ChallengeRound()), price)
}

// StorageOffer is a publisher's offer to pay for storage of a root.
type StorageOffer struct {
	Root       cid.Cid
	Publisher  peer.ID
	Commitment storeproof.Commitment
	Price      uint64 // per GiB per epoch
	Replicas   uint32
	Until      uint64
	Reserved   uint64 // what is left of the reservation
	Round      uint64 // the round PaidBoxes counts
	PaidBoxes  uint32
}

// ReplicaRecord is the proof record of one box for one root.
type ReplicaRecord struct {
	Box     peer.ID
	Root    cid.Cid
	Since   uint64 // the round the ledger first saw the box hold the root
	Last    uint64 // the last round proven, plus one (0: none)
	Proofs  uint64
	Misses  uint64
	Earned  uint64
	Revoked bool
}

// Beacon is the round open in a state: its number, seed and the epoch of
// the block that opened it.
type Beacon struct {
	Round, Epoch uint64
	Seed         [32]byte
}

// storageRoot is one root's offer and records; a block copies one before
// its first write (owner is the State that may write it).
type storageRoot struct {
	owner   *State
	offer   StorageOffer
	records map[peer.ID]ReplicaRecord
	hash    [32]byte // set by the owner's hash; zero while it writes
}

// storageBook is the RulesV5 part of the state.
type storageBook struct {
	owner  *State
	beacon Beacon
	seeded bool
	roots  map[string]*storageRoot // by CID key
}

// book returns n's storage for writing.
func (n *State) book() *storageBook {
	if n.storage == nil {
		n.storage = &storageBook{owner: n, roots: make(map[string]*storageRoot)}
	} else if n.storage.owner != n {
		c := *n.storage
		c.owner, c.roots = n, maps.Clone(n.storage.roots)
		n.storage = &c
	}
	return n.storage
}

// rootW returns root key's entry for writing (nil if there is none and
// create is false).
func (n *State) rootW(key string, create bool) *storageRoot {
	b := n.book()
	r := b.roots[key]
	switch {
	case r == nil && !create:
		return nil
	case r == nil:
		r = &storageRoot{owner: n, records: make(map[peer.ID]ReplicaRecord)}
	case r.owner != n:
		r = &storageRoot{owner: n, offer: r.offer, records: maps.Clone(r.records)}
	}
	b.roots[key] = r
	return r
}

// StorageOffer returns the offer of root.
func (s *State) StorageOffer(root cid.Cid) (StorageOffer, bool) {
	if s.storage == nil || !root.Defined() {
		return StorageOffer{}, false
	}
	r := s.storage.roots[root.KeyString()]
	if r == nil {
		return StorageOffer{}, false
	}
	return r.offer, true
}

// StorageOffers lists the offers, sorted by root.
func (s *State) StorageOffers() []StorageOffer {
	if s.storage == nil {
		return nil
	}
	var out []StorageOffer
	for _, k := range slices.Sorted(maps.Keys(s.storage.roots)) {
		out = append(out, s.storage.roots[k].offer)
	}
	return out
}

// Beacon returns the round open in the state, if a beacon opened one.
func (s *State) Beacon() (Beacon, bool) {
	if s.storage == nil || !s.storage.seeded {
		return Beacon{}, false
	}
	return s.storage.beacon, true
}

// ReplicaRecords lists box's proof records, sorted by root.
func (s *State) ReplicaRecords(box peer.ID) []ReplicaRecord {
	if s.storage == nil {
		return nil
	}
	var out []ReplicaRecord
	for _, k := range slices.Sorted(maps.Keys(s.storage.roots)) {
		if r, ok := s.storage.roots[k].records[box]; ok {
			out = append(out, r)
		}
	}
	return out
}

// Challenge is one (root, round) a box must prove: the segments the
// state's seed names for it and the commitment they verify against.
type Challenge struct {
	Root       cid.Cid
	Round      uint64
	Commitment storeproof.Commitment
	Indices    []uint64
}

// Challenges lists what box must prove in the open round, as of this
// state: every offered root whose recorded order names it, that it has
// not proven this round nor been revoked for. It is empty past the
// round's proof window (a block of a later epoch refuses the proofs).
func (s *State) Challenges(box peer.ID) []Challenge {
	bk, ok := s.Beacon()
	if !ok || s.epoch > bk.Epoch+s.g.ProofWindow() {
		return nil
	}
	var out []Challenge
	for _, k := range slices.Sorted(maps.Keys(s.storage.roots)) {
		r := s.storage.roots[k]
		if o := s.orders[k]; o == nil || o.Until < bk.Epoch {
			continue
		} else if _, named := o.box(box); !named {
			continue
		}
		if rec := r.records[box]; rec.Revoked || rec.Last == bk.Round+1 {
			continue
		}
		out = append(out, Challenge{Root: r.offer.Root, Round: bk.Round, Commitment: r.offer.Commitment,
			Indices: storeproof.Challenge(bk.Seed, []byte(box), r.offer.Root.Bytes(), r.offer.Commitment.Length)})
	}
	return out
}

// applyStorage applies a storage offer to From's account a (applyTx
// stores a and the nonce).
func (n *State) applyStorage(t *Tx, a *Account) error {
	if !t.Root.Defined() || len(t.Root.Bytes()) > maxCIDLen {
		return refuse(ReasonMalformed, "storage offer without a valid root CID")
	}
	key := t.Root.KeyString()
	if _, ok := n.regs[regKey(t.From, key)]; !ok {
		return refuse(ReasonNotRegistered, "%s is not registered by %s: register it before offering its storage", t.Root, t.From)
	}
	var old StorageOffer
	if r := n.storageRoot(key); r != nil {
		old = r.offer
		if old.Publisher != t.From {
			return refuse(ReasonNotOwner, "%s's storage is offered by %s until epoch %d", t.Root, old.Publisher, old.Until)
		}
	} else if n.storage != nil && len(n.storage.roots) >= MaxActiveOrders {
		// No more roots than the ledger keeps orders for: an offer no
		// order can name pays no one.
		return refuse(ReasonOrdersFull, "the ledger holds %d storage offers, the most it keeps", MaxActiveOrders)
	}
	round := n.g.RoundOf(n.epoch)
	pay := n.g.RoundPay(t.Amount, t.Price)
	switch {
	case t.Amount == 0 || t.Amount > storeproof.MaxLength:
		return refuse(ReasonMalformed, "a commitment to %d bytes (1 to %d)", t.Amount, uint64(storeproof.MaxLength))
	case t.Price == 0 || pay == 0:
		return refuse(ReasonZeroAmount, "a price of %d per GiB per epoch pays nothing for a round of %d bytes", t.Price, t.Amount)
	case t.Replicas == 0 || t.Replicas > MaxPrewarmReplicas:
		return refuse(ReasonReplicasOutOfRange, "%d replicas, 1 to %d allowed", t.Replicas, MaxPrewarmReplicas)
	case t.Until <= n.epoch || t.Until-n.epoch > MaxPrewarmEpochs:
		return refuse(ReasonUntilOutOfRange, "until epoch %d in a block of epoch %d (after it, at most %d epochs)", t.Until, n.epoch, MaxPrewarmEpochs)
	}
	reserve := satMul(satMul(pay, uint64(t.Replicas)), n.g.RoundOf(t.Until)-round+1)
	freed := old.Reserved
	if reserve > a.Escrow+freed {
		return refuse(ReasonInsufficientEscrow, "storage of %d replicas until epoch %d reserves %d, escrow %d", t.Replicas, t.Until, reserve, a.Escrow+freed)
	}
	a.Escrow = a.Escrow + freed - reserve
	a.Reserved = a.Reserved - freed + reserve
	r := n.rootW(key, true)
	o := StorageOffer{Root: t.Root, Publisher: t.From, Commitment: storeproof.Commitment{Root: t.Commit, Length: t.Amount},
		Price: t.Price, Replicas: t.Replicas, Until: t.Until, Reserved: reserve}
	if old.Round == round {
		o.Round, o.PaidBoxes = old.Round, old.PaidBoxes
	}
	if old.Commitment != o.Commitment {
		// Records are of proofs against the old bytes: they start over.
		clear(r.records)
	}
	r.offer = o
	return nil
}

func (s *State) storageRoot(key string) *storageRoot {
	if s.storage == nil {
		return nil
	}
	return s.storage.roots[key]
}

// applyBeacon checks a beacon against the last block and opens the round
// of the block's epoch, closing the one before.
func (n *State) applyBeacon(t *Tx) error {
	if n.height == 0 {
		return refuse(ReasonMalformed, "a beacon needs a block before it")
	}
	round := n.g.RoundOf(n.epoch)
	if n.storage != nil && n.storage.seeded && n.storage.beacon.Round >= round {
		return refuse(ReasonRoundSeeded, "round %d has its beacon already (of epoch %d)", round, n.storage.beacon.Epoch)
	}
	if len(t.Beacon) != n.g.Quorum() {
		return refuse(ReasonBadSignature, "a beacon of %d signatures, it takes exactly a quorum (%d)", len(t.Beacon), n.g.Quorum())
	}
	bft := n.g.FinalityRule() == FinalityBFT
	sigs := make([][]byte, len(t.Beacon))
	var first uint32
	for i, s := range t.Beacon {
		switch {
		case i > 0 && t.Beacon[i-1].Signer >= s.Signer:
			return refuse(ReasonMalformed, "beacon signatures not sorted by distinct signer")
		case !n.g.IsMember(s.Signer) || n.Excluded(s.Signer):
			return refuse(ReasonNotCommittee, "beacon signature of %s, not a signing committee member", s.Signer)
		}
		if bft {
			r, sig, ok := SplitPrecommit(s.Sig)
			if !ok || (i > 0 && r != first) {
				return refuse(ReasonBadSignature, "beacon precommits not all of one round")
			}
			first = r
			if err := VerifyVote(s.Signer, Precommit, n.height, r, n.lastHash, sig); err != nil {
				return refuse(ReasonBadSignature, "beacon: %w", err)
			}
		} else {
			pk, err := s.Signer.ExtractPublicKey()
			if err != nil {
				return refuse(ReasonBadSignature, "beacon signer %s: %v", s.Signer, err)
			}
			if ok, err := pk.Verify(SigPayload(n.lastHash), s.Sig); err != nil || !ok {
				return refuse(ReasonBadSignature, "beacon signature of %s does not verify over block %d", s.Signer, n.height)
			}
		}
		sigs[i] = s.Sig
	}
	if n.storage != nil && n.storage.seeded {
		n.closeRound(n.storage.beacon)
	}
	b := n.book()
	b.seeded = true
	b.beacon = Beacon{Round: round, Epoch: n.epoch, Seed: storeproof.Seed(n.lastHash, n.height, sigs)}
	return nil
}

// closeRound counts the misses of the round bk opened: each box the
// root's order names that did not prove it, but in the round the ledger
// first saw it. MaxMisses misses revoke the box's storage of the root and
// take it off the root's order.
func (n *State) closeRound(bk Beacon) {
	for key, r := range n.storage.roots {
		o := n.orders[key]
		if o == nil || o.Until < bk.Epoch {
			continue
		}
		var revoked []peer.ID
		for _, box := range o.Boxes {
			rec, seen := r.records[box]
			if rec.Revoked || rec.Last == bk.Round+1 {
				continue
			}
			w := n.rootW(key, false)
			r = w
			if !seen {
				w.records[box] = ReplicaRecord{Box: box, Root: w.offer.Root, Since: bk.Round}
				continue
			}
			if rec.Since >= bk.Round {
				continue
			}
			rec.Misses++
			if rec.Misses >= storeproof.MaxMisses {
				rec.Revoked = true
				revoked = append(revoked, box)
			}
			w.records[box] = rec
		}
		if len(revoked) > 0 {
			c := &orderEntry{Issuer: o.Issuer, Epoch: o.Epoch, Until: o.Until, Reason: o.Reason}
			for i, b := range o.Boxes {
				if !slices.Contains(revoked, b) {
					c.Boxes = append(c.Boxes, b)
					c.Paid = append(c.Paid, o.Paid[i])
				}
			}
			n.writeOrders()[key] = c
		}
	}
}

// applyProof pays a box for a round of a root it proved.
func (n *State) applyProof(t *Tx) error {
	if t.Proof == nil || !t.Root.Defined() {
		return refuse(ReasonMalformed, "a proof transaction without a proof or root")
	}
	if err := checkAccount(t.From); err != nil {
		return refuse(ReasonBadAccount, "box: %w", err)
	}
	bk, ok := n.Beacon()
	switch {
	case !ok || t.Round != bk.Round:
		return refuse(ReasonNotChallenged, "a proof of round %d, the open round is %d", t.Round, bk.Round)
	case n.epoch > bk.Epoch+n.g.ProofWindow():
		return refuse(ReasonNotChallenged, "round %d took proofs until epoch %d, this block is of epoch %d", bk.Round, bk.Epoch+n.g.ProofWindow(), n.epoch)
	}
	key := t.Root.KeyString()
	r := n.storageRoot(key)
	if r == nil {
		return refuse(ReasonNotRegistered, "no storage offer of %s", t.Root)
	}
	o := n.orders[key]
	if o == nil || o.Until < bk.Epoch {
		return refuse(ReasonNotOrdered, "no order of %s stood in round %d", t.Root, bk.Round)
	}
	if _, named := o.box(t.From); !named {
		return refuse(ReasonNotOrdered, "the order of %s does not name %s", t.Root, t.From)
	}
	rec, seen := r.records[t.From]
	switch {
	case rec.Revoked:
		return refuse(ReasonNotOrdered, "%s's storage of %s was revoked after %d missed rounds", t.From, t.Root, rec.Misses)
	case rec.Last == bk.Round+1:
		return refuse(ReasonProven, "%s proved %s in round %d already", t.From, t.Root, bk.Round)
	}
	idx := storeproof.Challenge(bk.Seed, []byte(t.From), t.Root.Bytes(), r.offer.Commitment.Length)
	if err := storeproof.Verify(r.offer.Commitment, idx, t.Proof); err != nil {
		return refuse(ReasonBadProof, "%s's proof of %s in round %d: %w", t.From, t.Root, bk.Round, err)
	}
	w := n.rootW(key, false)
	if w.offer.Round != bk.Round {
		w.offer.Round, w.offer.PaidBoxes = bk.Round, 0
	}
	if !seen {
		rec = ReplicaRecord{Box: t.From, Root: w.offer.Root, Since: bk.Round}
	}
	rec.Last = bk.Round + 1
	rec.Proofs++
	if w.offer.PaidBoxes < w.offer.Replicas {
		w.offer.PaidBoxes++
		pay := min(n.g.RoundPay(w.offer.Commitment.Length, w.offer.Price), w.offer.Reserved)
		if pay > 0 {
			w.offer.Reserved -= pay
			pub := n.accounts[w.offer.Publisher]
			pub.Reserved -= pay
			n.put(w.offer.Publisher, pub)
			box := n.accounts[t.From]
			box.Balance += pay
			n.put(t.From, box)
			rec.Earned += pay
		}
	}
	w.records[t.From] = rec
	return nil
}

// advanceStorage gives back the reservations of the offers whose last
// round has passed at epoch, and forgets them with their records.
func (n *State) advanceStorage(epoch uint64) {
	if n.storage == nil {
		return
	}
	round := n.g.RoundOf(epoch)
	for key, r := range n.storage.roots {
		if n.g.RoundOf(r.offer.Until) >= round {
			continue
		}
		if r.offer.Reserved > 0 {
			a := n.accounts[r.offer.Publisher]
			a.Reserved -= r.offer.Reserved
			a.Escrow += r.offer.Reserved
			n.put(r.offer.Publisher, a)
		}
		delete(n.book().roots, key)
	}
}

const storageDomain = "ore/ledger/v5/storage\x00"

// appendStorageHash adds the storage book to the state hash: the open
// round, then each root's hash (sealed once per block that wrote it).
func (s *State) appendStorageHash(b []byte) []byte {
	b = append(b, storageDomain...)
	if s.storage == nil {
		return append(b, 0)
	}
	bk := s.storage
	if bk.seeded {
		b = append(b, 1)
		b = binary.AppendUvarint(b, bk.beacon.Round)
		b = binary.AppendUvarint(b, bk.beacon.Epoch)
		b = append(b, bk.beacon.Seed[:]...)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(bk.roots)))
	for _, k := range slices.Sorted(maps.Keys(bk.roots)) {
		r := bk.roots[k]
		if r.hash == ([32]byte{}) || r.owner == s {
			r.hash = r.seal()
		}
		b = wire.AppendBytes(b, []byte(k))
		b = append(b, r.hash[:]...)
	}
	return b
}

func (r *storageRoot) seal() [32]byte {
	o := r.offer
	b := make([]byte, 0, 256+len(r.records)*96)
	b = wire.AppendCID(b, o.Root)
	b = wire.AppendPeer(b, o.Publisher)
	b = append(b, o.Commitment.Root[:]...)
	b = binary.AppendUvarint(b, o.Commitment.Length)
	b = binary.AppendUvarint(b, o.Price)
	b = binary.AppendUvarint(b, uint64(o.Replicas))
	b = binary.AppendUvarint(b, o.Until)
	b = binary.AppendUvarint(b, o.Reserved)
	b = binary.AppendUvarint(b, o.Round)
	b = binary.AppendUvarint(b, uint64(o.PaidBoxes))
	b = binary.AppendUvarint(b, uint64(len(r.records)))
	for _, id := range slices.Sorted(maps.Keys(r.records)) {
		x := r.records[id]
		b = wire.AppendPeer(b, id)
		b = binary.AppendUvarint(b, x.Since)
		b = binary.AppendUvarint(b, x.Last)
		b = binary.AppendUvarint(b, x.Proofs)
		b = binary.AppendUvarint(b, x.Misses)
		b = binary.AppendUvarint(b, x.Earned)
		if x.Revoked {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return sha256.Sum256(b)
}

// NeedsBeacon reports whether a block of epoch on s should open a
// challenge round: under RulesV5, after the first block, when no beacon
// opened the epoch's round yet.
func NeedsBeacon(s *State, epoch uint64) bool {
	if s.g.Rules < RulesV5 || s.height == 0 {
		return false
	}
	bk, ok := s.Beacon()
	return !ok || bk.Round < s.g.RoundOf(epoch)
}

// StorageBacking says how far the ledger backs box's claim to hold root:
// offered is false for a root no storage offer covers (nothing proves
// it); revoked if the box missed MaxMisses rounds of it; recent if it
// proved the open round or the one before.
func (s *State) StorageBacking(box peer.ID, root cid.Cid) (offered, recent, revoked bool) {
	r := s.storageRoot(root.KeyString())
	if r == nil || !root.Defined() {
		return false, false, false
	}
	rec := r.records[box]
	bk, _ := s.Beacon()
	return true, rec.Last > 0 && rec.Last >= bk.Round, rec.Revoked
}
