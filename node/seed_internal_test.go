package node

import (
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func testCID(t *testing.T, i int) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func TestRecentBlocksForgetsOldGenerations(t *testing.T) {
	r := newRecentBlocks()
	a := testCID(t, 0)
	if !r.seeded(a) {
		t.Fatal("a block never received is seeded")
	}
	r.add(a)
	if r.seeded(a) {
		t.Fatal("a block just received is not seeded")
	}
	// One full generation later a is still remembered (old generation),
	// two later it is forgotten.
	for i := 1; i <= maxRecentBlocks; i++ {
		r.add(testCID(t, i))
	}
	if r.seeded(a) {
		t.Fatal("a block one generation old must still count as received")
	}
	for i := maxRecentBlocks + 1; i <= 2*maxRecentBlocks; i++ {
		r.add(testCID(t, i))
	}
	if !r.seeded(a) {
		t.Fatal("a block two generations old counts as seeded")
	}
	if n := len(r.cur) + len(r.old); n > 2*maxRecentBlocks {
		t.Fatalf("remembers %d blocks, bound is %d", n, 2*maxRecentBlocks)
	}
}
