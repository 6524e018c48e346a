package ledger

import "fmt"

// Verify replays a chain from genesis, as any peer can: every block must be
// final under the genesis's finality rule (Block.Final) and must apply to the state
// the blocks before it left (which checks its hash chain, transaction root,
// every transaction and receipt signature, and its state hash). It returns
// the final state; its Hash is what every honest peer gets.
func Verify(g *Genesis, blocks []*Block) (*State, error) {
	s, err := NewState(g)
	if err != nil {
		return nil, err
	}
	return VerifyFrom(g, s, blocks)
}

// VerifyFrom goes on from a state that Verify (or VerifyFrom) returned:
// blocks must follow it, each final and applying to the state before it.
// A peer that verified the chain up to s checks only what came since.
func VerifyFrom(g *Genesis, s *State, blocks []*Block) (*State, error) {
	var err error
	for i, b := range blocks {
		// Members that evidence in the chain before this block excluded
		// sign for nothing; the quorum stays counted over the committee.
		if n := b.VerifySignaturesExcept(g, s.Excluded); n < g.Quorum() {
			return nil, fmt.Errorf("ledger: block %d (height %d) has %d valid committee signatures, needs %d", i+1, b.Header.Height, n, g.Quorum())
		}
		if s, err = Apply(s, b); err != nil {
			return nil, fmt.Errorf("ledger: block at height %d: %w", b.Header.Height, err)
		}
	}
	return s, nil
}
