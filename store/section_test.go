package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

// A Section names exactly the block's bytes in a pack file that OpenPack
// opens; a block inline in badger has none; a missing one is not found.
func TestSectionReadsTheBlock(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	rng := newRNG(21)
	big, tiny := randBlock(t, rng, 256<<10), randBlock(t, rng, 100)
	mustPut(t, s, big)
	mustPut(t, s, tiny)
	sec, err := s.Section(ctx, big.Cid())
	if err != nil {
		t.Fatal(err)
	}
	if sec.Len != int64(len(big.RawData())) {
		t.Fatalf("section of %d bytes for a block of %d", sec.Len, len(big.RawData()))
	}
	f, err := s.OpenPack(sec.Pack)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The file's offset is its own: seek it, read through it.
	if _, err := f.Seek(sec.Off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, sec.Len)
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, big.RawData()) {
		t.Fatalf("the section's bytes differ from the block's (%v)", err)
	}
	// A deleted block has no Section any more, though its bytes are
	// still in the pack.
	if err := s.DeleteBlock(ctx, big.Cid()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Section(ctx, big.Cid()); !ipld.IsNotFound(err) {
		t.Fatalf("Section of a deleted block: %v", err)
	}
	if _, err := s.Section(ctx, tiny.Cid()); !errors.Is(err, ErrNotPacked) {
		t.Fatalf("Section of an inline block: %v", err)
	}
	if _, err := s.Section(ctx, randBlock(t, rng, 4096).Cid()); !ipld.IsNotFound(err) {
		t.Fatalf("Section of a missing block: %v", err)
	}
}

// The integrity rule: a record damaged before its first Section in a
// process fails it with ErrCorrupt; once checked, Section trusts it (the
// bytes go file to socket unread), while Get and View still check every
// read.
func TestSectionChecksOncePerProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	rng := newRNG(22)
	a, b := randBlock(t, rng, 64<<10), randBlock(t, rng, 64<<10)
	mustPut(t, s, a)
	mustPut(t, s, b)
	// b is located (and checked) before the damage, a is not.
	if _, err := s.Section(ctx, b.Cid()); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, packDir, "*"+packExt))
	damaged := 0
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, blk := range [][]byte{a.RawData(), b.RawData()} {
			if i := bytes.Index(data, blk[:64]); i >= 0 {
				pf, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := pf.WriteAt([]byte{blk[1000] ^ 0xff}, int64(i+1000)); err != nil {
					t.Fatal(err)
				}
				pf.Close()
				damaged++
			}
		}
	}
	if damaged != 2 {
		t.Fatalf("%d of the 2 blocks found in the pack files", damaged)
	}
	if _, err := s.Section(ctx, a.Cid()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("first Section of a damaged record: %v", err)
	}
	if _, err := s.Section(ctx, b.Cid()); err != nil {
		t.Fatalf("Section of a record checked before its damage: %v", err)
	}
	if _, err := s.Get(ctx, b.Cid()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of the same record: %v", err)
	}
	// A new process checks again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if _, err := s.Section(ctx, b.Cid()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Section of the damaged record after a reopen: %v", err)
	}
}

// Compaction moves blocks: a Section located before it is forgotten, and
// the next one names the block's new place.
func TestSectionAfterCompaction(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir(), withPackSize(1<<20))
	rng := newRNG(23)
	var bs []blocks.Block
	for range 16 {
		b := randBlock(t, rng, 128<<10)
		mustPut(t, s, b)
		bs = append(bs, b)
		if _, err := s.Section(ctx, b.Cid()); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range bs {
		if i%4 != 0 {
			if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(bs); i += 4 {
		sec, err := s.Section(ctx, bs[i].Cid())
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.OpenPack(sec.Pack)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		got := make([]byte, sec.Len)
		_, err = f.ReadAt(got, sec.Off)
		f.Close()
		if err != nil || !bytes.Equal(got, bs[i].RawData()) {
			t.Fatalf("block %d after compaction: %v", i, err)
		}
	}
}
