package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
)

// KindEvidence is proof that a committee member signed two different
// blocks for one (height, round, step) under FinalityBFT: two of its
// votes, which anyone can check with its public key alone. Anyone may
// submit it; a block that takes it excludes the member from signing: its
// votes and signatures count for nothing from the next block on, while
// the quorum stays counted over the whole genesis committee (Quorum), so
// excluding members never lowers the bar.
const KindEvidence Kind = 14

// ReasonAlreadyExcluded refuses evidence against a member already
// excluded: one proof is enough.
const ReasonAlreadyExcluded Reason = "already_excluded"

// Evidence is two votes of Signer for one (Step, Height, Round) over two
// block hashes, A < B.
type Evidence struct {
	Signer     peer.ID
	Step       VoteType
	Height     uint64
	Round      uint32
	A, B       [32]byte
	SigA, SigB []byte
}

// NewEvidence orders two conflicting votes into Evidence.
func NewEvidence(signer peer.ID, step VoteType, height uint64, round uint32, a [32]byte, sigA []byte, b [32]byte, sigB []byte) *Evidence {
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b, sigA, sigB = b, a, sigB, sigA
	}
	return &Evidence{Signer: signer, Step: step, Height: height, Round: round, A: a, B: b,
		SigA: slices.Clone(sigA), SigB: slices.Clone(sigB)}
}

// NewEvidenceTx wraps evidence in a transaction.
func NewEvidenceTx(e *Evidence) Tx { return Tx{Kind: KindEvidence, Evidence: e} }

func (e *Evidence) appendTo(b []byte) []byte {
	b = wire.AppendPeer(b, e.Signer)
	b = append(b, byte(e.Step))
	b = binary.AppendUvarint(b, e.Height)
	b = binary.AppendUvarint(b, uint64(e.Round))
	b = append(b, e.A[:]...)
	b = append(b, e.B[:]...)
	b = wire.AppendBytes(b, e.SigA)
	return wire.AppendBytes(b, e.SigB)
}

func readEvidence(d *wire.Decoder) *Evidence {
	e := &Evidence{Signer: d.Peer(maxPeerIDLen, "signer"), Step: VoteType(d.Byte("step")), Height: d.Uvarint("height")}
	if r := d.Uvarint("round"); r > 1<<32-1 {
		d.Failf("round %d does not fit 32 bits", r)
	} else {
		e.Round = uint32(r)
	}
	e.A, e.B = d.Hash("hash a"), d.Hash("hash b")
	e.SigA, e.SigB = d.Bytes(maxSigLen, "signature a"), d.Bytes(maxSigLen, "signature b")
	if d.Err() == nil && bytes.Compare(e.A[:], e.B[:]) >= 0 {
		d.Failf("evidence hashes not in order, or equal")
	}
	if d.Err() == nil && e.Step != Prevote && e.Step != Precommit {
		d.Failf("evidence of unknown step %d", e.Step)
	}
	return e
}

// VerifySigs checks that both votes are the signer's (not that it is a
// member: Check does, with the genesis).
func (e *Evidence) VerifySigs() error {
	if e.A == e.B {
		return fmt.Errorf("%w: evidence of two votes for one block", ErrBadSignature)
	}
	if err := VerifyVote(e.Signer, e.Step, e.Height, e.Round, e.A, e.SigA); err != nil {
		return err
	}
	return VerifyVote(e.Signer, e.Step, e.Height, e.Round, e.B, e.SigB)
}

// Check verifies the evidence for a network of genesis g.
func (e *Evidence) Check(g *Genesis) error {
	if g.FinalityRule() != FinalityBFT {
		return fmt.Errorf("ledger: evidence needs finality rule %d, this chain's genesis has %d", FinalityBFT, g.FinalityRule())
	}
	if !g.IsMember(e.Signer) {
		return fmt.Errorf("ledger: evidence against %s, not a committee member", e.Signer)
	}
	return e.VerifySigs()
}

func (e *Evidence) String() string {
	return fmt.Sprintf("%s signed two blocks (%x, %x) as %s at height %d round %d", e.Signer, e.A[:6], e.B[:6], e.Step, e.Height, e.Round)
}

// applyEvidence excludes the evidence's signer (n is the state the block
// builds, at the previous block's height).
func (n *State) applyEvidence(t *Tx) error {
	e := t.Evidence
	if e == nil {
		return refuse(ReasonMalformed, "evidence transaction without evidence")
	}
	if n.g.FinalityRule() != FinalityBFT {
		return refuse(ReasonNotInRules, "evidence needs finality rule %d, this chain's genesis has %d", FinalityBFT, n.g.FinalityRule())
	}
	if e.Height > n.height+1 {
		return refuse(ReasonMalformed, "evidence at height %d, after this block's %d", e.Height, n.height+1)
	}
	if err := e.Check(n.g); err != nil {
		return refuse(ReasonBadSignature, "%w", err)
	}
	i, found := slices.BinarySearch(n.excluded, e.Signer)
	if found {
		return refuse(ReasonAlreadyExcluded, "%s was excluded already", e.Signer)
	}
	n.excluded = slices.Insert(slices.Clone(n.excluded), i, e.Signer)
	return nil
}

// Excluded reports whether id was excluded from signing by evidence in
// the chain up to this state.
func (s *State) Excluded(id peer.ID) bool {
	_, found := slices.BinarySearch(s.excluded, id)
	return found
}

// ExcludedMembers are the members excluded so far, sorted.
func (s *State) ExcludedMembers() []peer.ID { return slices.Clone(s.excluded) }

// appendExcluded adds the excluded members to the state hash; nothing
// when there are none, so chains without evidence hash as before.
func (s *State) appendExcluded(b []byte) []byte {
	if len(s.excluded) == 0 {
		return b
	}
	b = append(b, "excluded\x00"...)
	b = binary.AppendUvarint(b, uint64(len(s.excluded)))
	for _, id := range s.excluded {
		b = wire.AppendPeer(b, id)
	}
	return b
}
