package meter

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// countingBlocks counts the blocks a walk reads.
type countingBlocks struct {
	blockstore.Blockstore
	gets atomic.Int64
}

func (c *countingBlocks) Get(ctx context.Context, k cid.Cid) (blocks.Block, error) {
	c.gets.Add(1)
	return c.Blockstore.Get(ctx, k)
}

// TestWalkReadsInnerNodesOnly: a root's DAG is indexed by reading its
// inner nodes: dag-pb leaves (as CIDv0 content has), whose links give
// their own size, are members without being read.
func TestWalkReadsInnerNodesOnly(t *testing.T) {
	rg := newRig(t)
	bs := &countingBlocks{Blockstore: blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))}
	s := rg.server(func(c *Config) { c.Blocks = bs })
	var all []blocks.Block
	var inners []blocks.Block
	for i := range 2 {
		var leaves []blocks.Block
		for j := range 3 {
			leaves = append(leaves, merkledag.NodeWithData(fmt.Appendf(nil, "leaf %d.%d", i, j)))
		}
		inner := putDAG(t, s, leaves...)
		inners = append(inners, inner)
		all = append(all, append(leaves, inner)...)
	}
	root := putDAG(t, s, inners...)
	all = append(all, root)
	bs.gets.Store(0)
	m, err := s.dag.get(rg.ctx, root.Cid(), 0, false)
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	if got := bs.gets.Load(); got != 3 {
		t.Errorf("the walk read %d blocks, want 3 (the root and two inner nodes)", got)
	}
	for _, b := range all {
		if !m.has(s.keyer.key(b.Cid())) {
			t.Errorf("%s is not a member", b.Cid())
		}
	}
	if !m.complete || len(m.keys) != len(all) {
		t.Fatalf("complete %v with %d members, want %d", m.complete, len(m.keys), len(all))
	}
	// A CIDv1 of a member's multihash is the same block.
	v1 := cid.NewCidV1(cid.DagProtobuf, all[0].Cid().Hash())
	if all[0].Cid().Version() != 0 || !m.has(s.keyer.key(v1)) {
		t.Fatal("a CIDv1 of a CIDv0 member's bytes is not a member")
	}
	if m.has(s.keyer.key(rawBlock(t, []byte("elsewhere")).Cid())) {
		t.Fatal("a block of no DAG here is a member")
	}
}
