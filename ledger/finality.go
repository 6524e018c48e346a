package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Finality rules (Genesis.Finality). A chain keeps the rule its genesis
// names, so chains made under an older rule still verify.
//
//   - FinalityMajority (0 or 1: a genesis without "finality"): a block is
//     final with the signatures of a majority of the committee over its
//     header hash (SigPayload). It tolerates crashed members but not a
//     lying one: in a committee of 3 a leader that shows block X to one
//     member and block Y to the other gets both signed, and both are final.
//   - FinalityBFT: a block is final with the precommits of more than two
//     thirds of the committee, all of one round (see VotePayload). Members
//     vote in two steps per (height, round), prevote then precommit, lock
//     on a block they precommit, and never sign two different blocks for
//     one (height, round, step), as in Tendermint: with at most f faulty
//     members of 3f+1, no two blocks of one height are ever final, and a
//     later round under another leader finalizes a height a faulty leader
//     left undecided. A committee of n tolerates floor((n-1)/3) faulty
//     members (Tolerates): 4 and 5 tolerate one, 3 none (every signature
//     is needed).
const (
	FinalityMajority = 1
	FinalityBFT      = 2
	FinalityLatest   = FinalityBFT
	finalityMax      = FinalityBFT
)

// VoteType is the step of a vote under FinalityBFT.
type VoteType uint8

// Vote steps.
const (
	Prevote   VoteType = 1
	Precommit VoteType = 2
)

func (t VoteType) String() string {
	switch t {
	case Prevote:
		return "prevote"
	case Precommit:
		return "precommit"
	}
	return fmt.Sprintf("vote(%d)", uint8(t))
}

const voteDomain = "ore/ledger/v2/vote\x00"

// VotePayload is what a member signs to vote under FinalityBFT: a domain
// prefix, the step, the height, the round and the block's header hash.
// Height and round are signed explicitly, so two votes of one member for
// one (height, round, step) and different hashes are proof of
// equivocation on their own (Evidence).
func VotePayload(t VoteType, height uint64, round uint32, hash [32]byte) []byte {
	b := append(make([]byte, 0, len(voteDomain)+1+8+4+32), voteDomain...)
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint64(b, height)
	b = binary.BigEndian.AppendUint32(b, round)
	return append(b, hash[:]...)
}

// A precommit in a block's signatures (FinalityBFT) is Signature.Sig =
// the round, 4 bytes big-endian, then the signature over VotePayload
// (Precommit, height, round, hash): the block encoding is the same under
// both rules.
const roundLen = 4

// PrecommitSig packs a precommit's round and signature into
// Signature.Sig.
func PrecommitSig(round uint32, sig []byte) []byte {
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, roundLen+len(sig)), round), sig...)
}

// SplitPrecommit is PrecommitSig's inverse.
func SplitPrecommit(s []byte) (round uint32, sig []byte, ok bool) {
	if len(s) <= roundLen {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(s), s[roundLen:], true
}

// SignVote signs a vote with k.
func SignVote(k crypto.PrivKey, t VoteType, height uint64, round uint32, hash [32]byte) ([]byte, error) {
	sig, err := k.Sign(VotePayload(t, height, round, hash))
	if err != nil {
		return nil, fmt.Errorf("ledger: sign %s: %w", t, err)
	}
	return sig, nil
}

// VerifyVote checks that sig is signer's vote.
func VerifyVote(signer peer.ID, t VoteType, height uint64, round uint32, hash [32]byte, sig []byte) error {
	pk, err := signer.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: signer %s: %w", ErrBadSignature, signer, err)
	}
	if ok, err := pk.Verify(VotePayload(t, height, round, hash), sig); err != nil || !ok {
		return fmt.Errorf("%w: %s of %s at height %d round %d", ErrBadSignature, t, signer, height, round)
	}
	return nil
}

// SignPrecommit adds (or replaces) k's precommit at round over the header
// hash, the FinalityBFT form of Sign.
func (b *Block) SignPrecommit(k crypto.PrivKey, round uint32) error {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return fmt.Errorf("ledger: sign block: %w", err)
	}
	sig, err := SignVote(k, Precommit, b.Header.Height, round, b.Hash())
	if err != nil {
		return err
	}
	return b.AddSignature(Signature{Signer: id, Sig: PrecommitSig(round, sig)})
}

// FinalityRule is the genesis's finality rule (FinalityMajority for a
// genesis that names none).
func (g *Genesis) FinalityRule() uint8 {
	if g.Finality == 0 {
		return FinalityMajority
	}
	return g.Finality
}

// Quorum is the number of committee signatures that make a block final:
// a majority under FinalityMajority (2 of 3, 3 of 4, 3 of 5), more than
// two thirds under FinalityBFT (3 of 3, 3 of 4, 4 of 5). Excluding a
// member for equivocation never lowers it: it is counted over the genesis
// committee.
func (g *Genesis) Quorum() int {
	n := len(g.Committee)
	if g.FinalityRule() == FinalityBFT {
		return 2*n/3 + 1
	}
	return n/2 + 1
}

// Tolerates says how many members the committee can lose while blocks
// still become final (crashed: down or cut off) and how many may lie
// (byzantine: sign two blocks, skew their clocks) without two blocks of
// one height ever becoming final. Under FinalityMajority no lying member
// is tolerated.
func (g *Genesis) Tolerates() (crashed, byzantine int) {
	n := len(g.Committee)
	crashed = n - g.Quorum()
	if g.FinalityRule() == FinalityBFT {
		byzantine = (n - 1) / 3
	}
	return crashed, byzantine
}

// ErrNotFinal is a block without the signatures that make it final.
var ErrNotFinal = errors.New("ledger: block not final")

// countSigs counts the valid signatures of distinct committee members on
// b that excluded does not name (nil: none), under g's finality rule:
// under FinalityBFT the precommits of the round with the most.
func (b *Block) countSigs(g *Genesis, excluded func(peer.ID) bool) int {
	hash := b.Hash()
	bft := g.FinalityRule() == FinalityBFT
	var payload []byte
	if !bft {
		payload = SigPayload(hash)
	}
	seen := make(map[peer.ID]bool, len(b.Sigs))
	perRound := make(map[uint32]int, 1)
	best := 0
	for _, s := range b.Sigs {
		if seen[s.Signer] || !g.IsMember(s.Signer) || (excluded != nil && excluded(s.Signer)) {
			continue
		}
		pk, err := s.Signer.ExtractPublicKey()
		if err != nil {
			continue
		}
		sig, round := s.Sig, uint32(0)
		if bft {
			var ok bool
			if round, sig, ok = SplitPrecommit(s.Sig); !ok {
				continue
			}
			payload = VotePayload(Precommit, b.Header.Height, round, hash)
		}
		if ok, err := pk.Verify(payload, sig); err == nil && ok {
			seen[s.Signer] = true
			perRound[round]++
			best = max(best, perRound[round])
		}
	}
	return best
}
