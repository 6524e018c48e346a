package store

import (
	"context"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

const benchBlockSize = 256 << 10

// benchBlocks returns n distinct 256 KiB blocks. Put does not re-hash, so the
// CIDs are random multihashes over a few shared buffers: the benchmark
// measures the store, not sha256.
func benchBlocks(b *testing.B, n int) []blocks.Block {
	b.Helper()
	rng := newRNG(99)
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, benchBlockSize)
		for j := range bufs[i] {
			bufs[i][j] = byte(rng.Uint32())
		}
	}
	out := make([]blocks.Block, n)
	digest := make([]byte, 32)
	for i := range out {
		for j := range digest {
			digest[j] = byte(rng.Uint32())
		}
		h, err := mh.Encode(digest, mh.SHA2_256)
		if err != nil {
			b.Fatal(err)
		}
		out[i], err = blocks.NewBlockWithCid(bufs[i%len(bufs)], cid.NewCidV1(cid.Raw, h))
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

func BenchmarkPut256KiB(b *testing.B) {
	s := openT(b, b.TempDir())
	bs := benchBlocks(b, b.N)
	ctx := context.Background()
	b.SetBytes(benchBlockSize)
	b.ResetTimer()
	for i := range b.N {
		if err := s.Put(ctx, bs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPutMany256KiB(b *testing.B) {
	const batch = 32
	s := openT(b, b.TempDir())
	bs := benchBlocks(b, b.N)
	ctx := context.Background()
	b.SetBytes(benchBlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if err := s.PutMany(ctx, bs[i:min(i+batch, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet256KiB(b *testing.B) {
	const stored = 64
	s := openT(b, b.TempDir())
	bs := benchBlocks(b, stored)
	ctx := context.Background()
	if err := s.PutMany(ctx, bs); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBlockSize)
	b.ResetTimer()
	for i := range b.N {
		blk, err := s.Get(ctx, bs[i%stored].Cid())
		if err != nil {
			b.Fatal(err)
		}
		if len(blk.RawData()) != benchBlockSize {
			b.Fatal("short block")
		}
	}
}
