package committee

import (
	"context"
	"time"
)

// Signature repair. A member that was down or cut off while the others
// gossiped their signatures on a block gets the block itself through Raft
// but not the signatures: without repair its copy would never be final, and
// `ore ledger verify` on it would fail. Every repairEvery the member looks
// for its lowest stored block that is not final, and once that block is
// older than repairAfter (gossip had its chance) it fetches the final copy
// from another member over /ore/chain/1.0.0 and adds the signatures it
// lacks, each verified.
const (
	repairEvery = 2 * time.Second
	repairAfter = 3 * time.Second
)

func (c *Committee) repairLoop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(repairEvery)
	defer t.Stop()
	next := uint64(1) // every block below is final here
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next = c.repair(ctx, next)
	}
}

// repair makes the blocks from height next on final where another member
// has them final, and returns the new lowest height that may not be.
func (c *Committee) repair(ctx context.Context, next uint64) uint64 {
	top := c.chain.height()
	for ; next <= top; next++ {
		b, err := c.chain.head(next)
		if err != nil {
			return next
		}
		if !b.Final(c.cfg.Genesis) {
			if c.cfg.Clock().Sub(time.Unix(0, b.Header.Time)) < repairAfter {
				return next
			}
			break
		}
	}
	if next > top {
		return next
	}
	for _, m := range c.cfg.Genesis.Committee {
		if m.ID == c.self {
			continue
		}
		got, err := fetchBatch(ctx, c.cfg.Host, m.ID, next)
		if err != nil {
			c.log.Debug("signature repair", "from", m.ID, "height", next, "err", err)
			continue
		}
		for _, fb := range got {
			if fb.Header.Height > top {
				break
			}
			hash := fb.Hash()
			for _, s := range fb.Sigs {
				msg := &sigMsg{height: fb.Header.Height, hash: hash, sig: s}
				if msg.verify(c.cfg.Genesis) == nil {
					c.addSig(msg) // checks the hash against our block
				}
			}
		}
		if len(got) > 0 {
			c.log.Info("repaired block signatures", "from", m.ID, "heights", len(got), "first", next)
			break
		}
	}
	return next
}
