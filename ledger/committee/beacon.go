package committee

import (
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
)

// beacon returns the beacon the leader puts first in a block of epoch on
// state s (RulesV5): the signatures of the last final block, which open
// the epoch's challenge round, when no beacon opened it yet. The ledger
// checks it like any transaction (ledger.applyBeacon), so a member that
// follows gains nothing by trusting the leader's.
func (c *Committee) beacon(s *ledger.State, epoch uint64) (ledger.Tx, bool) {
	if !ledger.NeedsBeacon(s, epoch) {
		return ledger.Tx{}, false
	}
	prev, ok := c.Block(s.Height())
	if !ok {
		return ledger.Tx{}, false
	}
	return ledger.NewBeaconTx(c.cfg.Genesis, prev)
}

// backedReports is reports as far as the ledger backs them (RulesV5): a
// box's holding of a root under a storage offer counts only with a proof
// of the open round or the one before; a box revoked for a root is not
// chosen for it again. Roots no offer covers count as reported (nothing
// proves them).
//
// Under RulesV5 a report's demand counts only if its reporter keeps the
// ledger's reporter bond (State.Vouched): one box's word about demand
// cannot be checked, and a new key costs nothing but that bond.
func backedReports(st *ledger.State, reports []*heat.Report) []*heat.Report {
	if st.Genesis().Rules < ledger.RulesV5 {
		return reports
	}
	reports = heat.Vouch(reports, st.Vouched)
	return heat.Back(reports, func(box peer.ID, root cid.Cid) heat.Backing {
		offered, recent, revoked := st.StorageBacking(box, root)
		switch {
		case !offered:
			return heat.Backed
		case revoked:
			return heat.Revoked
		case recent:
			return heat.Proven
		}
		return heat.Unproven
	})
}
