package node

import (
	"container/list"
	"context"
	"sync"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// DefaultBlockCache is the bytes of hot blocks the gateway keeps in memory.
// An edge serves the same objects over and over: a cached 1 MiB object
// costs no store read, which keeps time to first byte near a file server's.
const DefaultBlockCache = 64 << 20

// blockCache is a byte-bounded LRU of blocks in front of a blockstore's
// reads. Writes and deletes go through (a delete evicts).
type blockCache struct {
	blockstore.Blockstore
	max int64

	mu   sync.Mutex
	size int64
	ll   *list.List // front: most recent
	m    map[string]*list.Element
}

type cacheEntry struct {
	key string
	b   blocks.Block
}

func newBlockCache(bs blockstore.Blockstore, max int64) *blockCache {
	return &blockCache{Blockstore: bs, max: max, ll: list.New(), m: make(map[string]*list.Element)}
}

func (c *blockCache) Get(ctx context.Context, k cid.Cid) (blocks.Block, error) {
	key := string(k.Hash())
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		b := e.Value.(*cacheEntry).b
		c.mu.Unlock()
		if b.Cid().Equals(k) {
			return b, nil
		}
		return blocks.NewBlockWithCid(b.RawData(), k)
	}
	c.mu.Unlock()
	b, err := c.Blockstore.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	c.add(key, b)
	return b, nil
}

// peek returns a cached block's bytes (read-only) without going to the
// store.
func (c *blockCache) peek(k cid.Cid) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(k.Hash())]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).b.RawData(), true
}

func (c *blockCache) add(key string, b blocks.Block) {
	n := int64(len(b.RawData()))
	if n > c.max/8 {
		return // one block never takes over the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, b: b})
	c.size += n
	for c.size > c.max {
		e := c.ll.Back()
		ce := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.m, ce.key)
		c.size -= int64(len(ce.b.RawData()))
	}
}

func (c *blockCache) GetSize(ctx context.Context, k cid.Cid) (int, error) {
	c.mu.Lock()
	if e, ok := c.m[string(k.Hash())]; ok {
		n := len(e.Value.(*cacheEntry).b.RawData())
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Blockstore.GetSize(ctx, k)
}

func (c *blockCache) DeleteBlock(ctx context.Context, k cid.Cid) error {
	key := string(k.Hash())
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		c.ll.Remove(e)
		delete(c.m, key)
		c.size -= int64(len(e.Value.(*cacheEntry).b.RawData()))
	}
	c.mu.Unlock()
	return c.Blockstore.DeleteBlock(ctx, k)
}
