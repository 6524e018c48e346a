package store

import (
	"context"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

// TestSizeCacheFollowsDeletes: sizes served from the cache agree with the
// store through puts, deletes and a reopen, also when lookups race deletes.
func TestSizeCacheFollowsDeletes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	rng := newRNG(7)
	var bs []blocks.Block
	for i := 0; i < 64; i++ {
		bs = append(bs, randBlock(t, rng, 2000+i))
	}
	if err := s.PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	for i, b := range bs {
		if n, err := s.GetSize(ctx, b.Cid()); err != nil || n != 2000+i {
			t.Fatalf("size of block %d: %d, %v", i, n, err)
		}
	}
	// Deletes race lookups: once DeleteBlock returned, nothing says the
	// block is there.
	var wg sync.WaitGroup
	for _, b := range bs[:32] {
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = s.Has(ctx, b.Cid()) }()
		go func() {
			defer wg.Done()
			if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, b := range bs {
		has, err := s.Has(ctx, b.Cid())
		if err != nil {
			t.Fatal(err)
		}
		if has != (i >= 32) {
			t.Fatalf("block %d: Has = %v after deleting the first 32", i, has)
		}
		if _, err := s.GetSize(ctx, b.Cid()); (err == nil) != (i >= 32) || (err != nil && !ipld.IsNotFound(err)) {
			t.Fatalf("block %d: GetSize error %v", i, err)
		}
	}
	if err := s.Put(ctx, bs[0]); err != nil {
		t.Fatal(err)
	}
	if has, _ := s.Has(ctx, bs[0].Cid()); !has {
		t.Fatal("a block put again is not seen")
	}
}
