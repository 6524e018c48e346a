package node

import (
	"context"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// Unpinned content becomes evictable; pinning it again (it is local)
// protects it.
func TestUnpinMakesEvictable(t *testing.T) {
	box := newTestBox(t)
	ctx := context.Background()
	keep := addBytes(t, box, randomBytes(t, 1<<20))
	drop := addBytes(t, box, randomBytes(t, 1<<20))
	pins, err := box.Pins(ctx)
	if err != nil || !slices.Contains(pins, keep) || !slices.Contains(pins, drop) {
		t.Fatalf("pins after add: %v, %v", pins, err)
	}
	if was, err := box.Unpin(ctx, drop); err != nil || !was {
		t.Fatalf("unpin: %v, %v", was, err)
	}
	if was, err := box.Unpin(ctx, drop); err != nil || was {
		t.Fatalf("second unpin: %v, %v; want not pinned", was, err)
	}
	if pins, _ := box.Pins(ctx); slices.Contains(pins, drop) {
		t.Fatal("unpinned root still listed")
	}
	res, err := box.Evict(ctx, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Roots, []cid.Cid{drop}) {
		t.Fatalf("evicted %v, want only the unpinned %s", res.Roots, drop)
	}
	if has(t, box, drop) || !has(t, box, keep) {
		t.Fatal("eviction took the wrong blocks")
	}
	// Pin fetches what is missing: here the box's own copy is gone and
	// nobody else holds it, so pinning a local root is what is tested.
	if _, err := box.Pin(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if pinned, _ := box.store.IsPinned(ctx, keep); !pinned {
		t.Fatal("Pin did not pin")
	}
}
