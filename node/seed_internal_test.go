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

func TestRecentBlocksForgetsTheOldest(t *testing.T) {
	r := newRecentBlocks()
	a := testCID(t, 0)
	if !r.seeded(a) {
		t.Fatal("a block never received is seeded")
	}
	r.add(a)
	if r.seeded(a) {
		t.Fatal("a block just received is not seeded")
	}
	// Remembered while fewer than maxRecentBlocks came after it,
	// forgotten (seeded) once that many did.
	for i := 1; i < maxRecentBlocks; i++ {
		r.add(testCID(t, i))
	}
	if r.seeded(a) {
		t.Fatal("a block within the bound must still count as received")
	}
	r.add(testCID(t, maxRecentBlocks))
	if !r.seeded(a) {
		t.Fatal("a block past the bound counts as seeded")
	}
	if n := r.c.Len(); n > maxRecentBlocks {
		t.Fatalf("remembers %d blocks, bound is %d", n, maxRecentBlocks)
	}
}
