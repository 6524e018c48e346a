package node

import (
	"sync"

	"github.com/ipfs/go-cid"
)

// recentBlocks remembers the blocks a box received from other boxes
// lately, so that the blocks it holds from before (it published them, or
// fetched them long ago) can be told apart: those it seeds, and spreads
// (bitswap.WithSpread); the ones it just received it trades freely with
// the crowd it received them with. Two generations of at most
// maxRecentBlocks each bound the memory (~100 bytes a block); a block
// forgotten that way counts as seeded, as it is by then.
type recentBlocks struct {
	mu       sync.Mutex
	cur, old map[cid.Cid]struct{}
}

// maxRecentBlocks is a generation's size: 64 GiB of 256 KiB blocks.
const maxRecentBlocks = 1 << 18

func newRecentBlocks() *recentBlocks {
	return &recentBlocks{cur: make(map[cid.Cid]struct{})}
}

func (r *recentBlocks) add(c cid.Cid) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cur[c]; ok {
		return
	}
	if len(r.cur) >= maxRecentBlocks {
		r.old, r.cur = r.cur, make(map[cid.Cid]struct{})
	}
	r.cur[c] = struct{}{}
}

// seeded reports whether the box holds c from before: it did not receive
// it from another box lately.
func (r *recentBlocks) seeded(c cid.Cid) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cur[c]; ok {
		return false
	}
	_, ok := r.old[c]
	return !ok
}
