package meter

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
)

// Blocks is the server's block store as far as the meter reads it: the
// DAG of a root a receipt names (store.Store is one).
type Blocks interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
	GetSize(ctx context.Context, c cid.Cid) (int, error)
}

// Bounds of the server's index of roots' DAGs.
const (
	// MaxRootMembers bounds the blocks indexed for one root (256 GiB of
	// 256 KiB leaves): a claim for a block past it is refused.
	MaxRootMembers = 1 << 20
	// MaxIndexedMembers bounds the blocks indexed over every root; past
	// it the root used the longest ago is dropped (and walked again if a
	// receipt names it again).
	MaxIndexedMembers = 1 << 21
)

// blockKey is a block's key in the meter: a keyed 64-bit hash of its
// multihash, so a CIDv0 and a CIDv1 of the same bytes are one block, as in
// the store. The seed is random per process: no one can make two
// multihashes collide in it on purpose.
type blockKey uint64

type keyer struct{ seed maphash.Seed }

func newKeyer() keyer { return keyer{seed: maphash.MakeSeed()} }

// key hashes c's multihash without copying the CID.
func (k keyer) key(c cid.Cid) blockKey {
	s := c.KeyString()
	if c.Version() != 0 { // version and codec, two uvarints, before the multihash
		s = skipUvarint(skipUvarint(s))
	}
	return blockKey(maphash.String(k.seed, s))
}

func skipUvarint(s string) string {
	for i := 0; i < len(s) && i < 10; i++ {
		if s[i] < 0x80 {
			return s[i+1:]
		}
	}
	return ""
}

// members is the set of blocks of one root's DAG found in the store.
type members struct {
	keys map[blockKey]struct{}
	// complete: every block of the DAG was found (and the walk was not
	// cut at MaxRootMembers): the set never changes again. Otherwise it
	// may grow as the box gets more of the DAG (see dagIndex.get).
	complete bool
	// truncated: the walk stopped at MaxRootMembers; walking again would
	// stop there too.
	truncated bool
	seq       uint64 // the gate's send count when the walk started
	used      uint64 // the index's clock when a receipt last used it
}

func (m *members) has(k blockKey) bool { _, ok := m.keys[k]; return ok }

// dagIndex knows which blocks belong to which root's DAG, for the roots
// receipts name: a root's DAG is walked in the store once, its inner nodes
// only (a link whose size says it has no children is not read), and kept
// while receipts use it.
type dagIndex struct {
	blocks Blocks
	keyer  keyer

	mu    sync.Mutex // this index's own: never held across a store read
	roots map[string]*members
	total int
	clock uint64
}

func newDAGIndex(b Blocks, k keyer) *dagIndex {
	return &dagIndex{blocks: b, keyer: k, roots: make(map[string]*members)}
}

// get returns root's members (nil: the store does not hold the root). An
// incomplete set is walked again when stale, that is when the gate sent
// blocks since its walk (sent is the gate's send count now) and the
// caller asks (refresh): the box may have got more of the DAG meanwhile.
func (x *dagIndex) get(ctx context.Context, root cid.Cid, sent uint64, refresh bool) (*members, error) {
	rk := root.KeyString()
	x.mu.Lock()
	x.clock++
	m := x.roots[rk]
	if m != nil {
		m.used = x.clock
	}
	x.mu.Unlock()
	if m != nil && (m.complete || m.truncated || !refresh || m.seq >= sent) {
		return m, nil
	}
	m, err := x.walk(ctx, root, sent)
	if err != nil || m == nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.roots[rk]; old != nil {
		x.total -= len(old.keys)
	}
	m.used = x.clock
	x.roots[rk] = m
	x.total += len(m.keys)
	for x.total > MaxIndexedMembers && len(x.roots) > 1 {
		var lru string
		for k, o := range x.roots {
			if k != rk && (lru == "" || o.used < x.roots[lru].used) {
				lru = k
			}
		}
		x.total -= len(x.roots[lru].keys)
		delete(x.roots, lru)
	}
	return m, nil
}

// walk collects the keys of root's blocks that the store holds, and of
// the blocks their links name. It reads a dag-pb block only if it may have
// links: not when the link that named it gives a cumulative size no larger
// than the block itself (a leaf). A DAG whose links lie about their sizes
// loses members (its claims are refused), never gains any: every key in
// the set is named by a block of the DAG.
func (x *dagIndex) walk(ctx context.Context, root cid.Cid, seq uint64) (*members, error) {
	has, err := x.blocks.Has(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("meter: read root %s: %w", root, err)
	}
	if !has {
		return nil, nil
	}
	m := &members{keys: map[blockKey]struct{}{x.keyer.key(root): {}}, complete: true, seq: seq}
	type item struct {
		c     cid.Cid
		tsize uint64 // from the link that named it (0: unknown)
	}
	queue := []item{{c: root}}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it := queue[0]
		queue = queue[1:]
		if it.c.Prefix().Codec != cid.DagProtobuf {
			continue // raw and other leaves: no links
		}
		size, err := x.blocks.GetSize(ctx, it.c)
		if format.IsNotFound(err) {
			m.complete = false
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("meter: walk %s: %w", root, err)
		}
		if it.tsize != 0 && it.tsize <= uint64(size) {
			continue
		}
		b, err := x.blocks.Get(ctx, it.c)
		if format.IsNotFound(err) {
			m.complete = false
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("meter: walk %s: %w", root, err)
		}
		nd, err := merkledag.DecodeProtobufBlock(b)
		if err != nil {
			continue // not a node we can read: its block alone belongs
		}
		for _, l := range nd.Links() {
			k := x.keyer.key(l.Cid)
			if m.has(k) {
				continue
			}
			if len(m.keys) >= MaxRootMembers {
				m.complete, m.truncated = false, true
				return m, nil
			}
			m.keys[k] = struct{}{}
			queue = append(queue, item{c: l.Cid, tsize: l.Size})
		}
	}
	return m, nil
}
