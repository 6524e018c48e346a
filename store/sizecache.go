package store

import (
	"sync"
)

// sizeCacheShards and sizeCacheEntries bound the size cache: 64 shards of
// 2,048 blocks, about 10 MiB at most.
const (
	sizeCacheShards  = 64
	sizeCacheEntries = 2048
)

// sizeCache remembers the sizes of blocks recently stored or looked up.
// A box serving a crowd is asked Has and GetSize for the same blocks by
// every peer (bitswap's server looks up each want's size); each lookup in
// badger opens a read transaction, and badger serialises those on one
// lock while writes are in flight (measured: 90 % of a 20-box crowd's
// lock wait). Only blocks known to be present are cached; an entry is
// added and removed under the block's stripe lock, so a delete never
// races a stale entry back in.
type sizeCache struct {
	shards [sizeCacheShards]struct {
		mu sync.Mutex
		m  map[string]int64
	}
}

func (c *sizeCache) shard(h []byte) *struct {
	mu sync.Mutex
	m  map[string]int64
} {
	return &c.shards[stripeIndex(h)%sizeCacheShards]
}

func (c *sizeCache) get(h []byte) (int64, bool) {
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[string(h)]
	return n, ok
}

// add caches a present block's size; the caller holds its stripe lock.
func (c *sizeCache) add(h []byte, n int64) {
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]int64)
	}
	if len(s.m) >= sizeCacheEntries {
		for k := range s.m { // drop an arbitrary entry
			delete(s.m, k)
			break
		}
	}
	s.m[string(h)] = n
}

// remove forgets a block; the caller holds its stripe lock.
func (c *sizeCache) remove(h []byte) {
	s := c.shard(h)
	s.mu.Lock()
	delete(s.m, string(h))
	s.mu.Unlock()
}
