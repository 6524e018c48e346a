package committee

import "github.com/orecdn/ore/ledger"

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
