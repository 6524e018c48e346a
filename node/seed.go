package node

import (
	"github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
)

// recentBlocks remembers the blocks a box received from other boxes
// lately, so that the blocks it holds from before (it published them, or
// fetched them long ago) can be told apart: those it seeds, and spreads
// (bitswap.WithSpread); the ones it just received it trades freely with
// the crowd it received them with. The least recently received are
// forgotten past maxRecentBlocks (~100 bytes a block); a block forgotten
// that way counts as seeded, as it is by then.
type recentBlocks struct {
	c *lru.Cache[cid.Cid, struct{}]
}

// maxRecentBlocks bounds the memory: 128 GiB of 256 KiB blocks.
const maxRecentBlocks = 1 << 19

func newRecentBlocks() *recentBlocks {
	c, _ := lru.New[cid.Cid, struct{}](maxRecentBlocks) // fails only for a size below 1
	return &recentBlocks{c: c}
}

func (r *recentBlocks) add(c cid.Cid) { r.c.Add(c, struct{}{}) }

// seeded reports whether the box holds c from before: it did not receive
// it from another box lately.
func (r *recentBlocks) seeded(c cid.Cid) bool { return !r.c.Contains(c) }
