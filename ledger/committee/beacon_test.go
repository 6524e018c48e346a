package committee

import (
	"testing"
	"time"

	"github.com/orecdn/ore/ledger"
)

// Under RulesV5 the leader opens the challenge round with the quorum's
// precommits of the block before, and every member applies it.
func TestLeaderOpensChallengeRound(t *testing.T) {
	cl := newClusterSpec(t, 4, time.Second, ledger.RulesV5, ledger.FinalityBFT)
	lead := cl.leader(t, 10*time.Second)
	cl.submit(t, ledger.NewDeposit(cl.pub.ID, 1, 1000))
	waitFor(t, 45*time.Second, "a beacon in a final block on every member", func() bool {
		for _, m := range cl.members {
			if m.c == nil {
				return false
			}
			if _, ok := m.c.State().Beacon(); !ok {
				return false
			}
		}
		return true
	})
	s := lead.c.State()
	bk, _ := s.Beacon()
	b, ok := lead.c.Block(s.Height())
	if !ok {
		t.Fatal("no head block")
	}
	found := false
	for h := s.Height(); h >= 1 && !found; h-- {
		if b, ok = lead.c.Block(h); ok && len(b.Txs) > 0 && b.Txs[0].Kind == ledger.KindBeacon && b.Header.Epoch == bk.Epoch {
			found = true
		}
	}
	if !found {
		t.Fatalf("no block of epoch %d opens with a beacon", bk.Epoch)
	}
	if ledger.NeedsBeacon(s, s.Epoch()) {
		t.Fatal("the round is open and the state still asks for a beacon")
	}
}
