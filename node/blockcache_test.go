package node

import (
	"context"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

func TestBlockCacheBoundedAndCorrect(t *testing.T) {
	ctx := context.Background()
	bs := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	c := newBlockCache(bs, 10_000)
	var cids []cid.Cid
	for i := 0; i < 20; i++ {
		b := blocks.NewBlock(append(make([]byte, 1000), byte(i)))
		if err := c.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		cids = append(cids, b.Cid())
	}
	for _, k := range cids {
		b, err := c.Get(ctx, k)
		if err != nil || !b.Cid().Equals(k) {
			t.Fatalf("get %s: %v", k, err)
		}
	}
	if c.size > c.max {
		t.Fatalf("cache holds %d bytes, bound %d", c.size, c.max)
	}
	// A CIDv1 of a cached v0 block comes back under the CID asked for.
	v1 := cid.NewCidV1(cid.Raw, cids[19].Hash())
	b, err := c.Get(ctx, v1)
	if err != nil || !b.Cid().Equals(v1) {
		t.Fatalf("v1 lookup: %v", err)
	}
	if err := c.DeleteBlock(ctx, cids[19]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, cids[19]); err == nil {
		t.Fatal("deleted block still served from the cache")
	}
}
