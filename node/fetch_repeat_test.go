package node_test

import (
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/orecdn/ore/node"
)

// TestFetchOfRepeatedLeaves: a file whose leaves are mostly one block (a
// sparse file's zeros), linked hundreds of times across several chunks of
// a level at once, is fetched whole and byte-identical. The fetch no longer
// remembers every leaf it met (its memory stays bounded), so chunks in
// flight together ask for the same block; each must get it.
func TestFetchOfRepeatedLeaves(t *testing.T) {
	const leaves = 300 // over a level's chunk of 256
	data := make([]byte, leaves*node.DefaultChunkSize)
	for i := 0; i < leaves; i += 50 {
		if _, err := rand.Read(data[i*node.DefaultChunkSize : (i+1)*node.DefaultChunkSize]); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(t.TempDir(), "sparse.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)

	nw := newNet(t, 2)
	ctx := testCtx(t)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if _, err := nw.Nodes[1].Get(ctx, res.Root, out, nil); err != nil {
		t.Fatalf("get of a file of repeated leaves: %v", err)
	}
	if fileHash(t, out) != want {
		t.Fatal("the fetched file differs from the added one")
	}
}
