package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

func withPackSize(n int64) Option { return func(c *config) error { c.packSize = n; return nil } }

// Deleted blocks' space comes back: packs more than half dead are compacted
// or removed, and every live block reads back the same, before and after a
// reopen.
func TestPackCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir, withPackSize(4<<20))
	rng := newRNG(7)
	var bs []blocks.Block
	for range 64 {
		b := randBlock(t, rng, 256<<10)
		bs = append(bs, b)
	}
	if err := s.PutMany(ctx, bs[:32]); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs[32:] {
		mustPut(t, s, b)
	}
	before := s.packs.diskSize()
	if n := len(s.packs.sealed()); n < 3 {
		t.Fatalf("%d sealed packs of 4 MiB for 16 MiB of blocks", n)
	}
	// Delete three in four blocks, and every block of the first pack.
	var kept []blocks.Block
	for i, b := range bs {
		if i%4 != 0 || i < 15 {
			if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
				t.Fatal(err)
			}
		} else {
			kept = append(kept, b)
		}
	}
	if err := s.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	after := s.packs.diskSize()
	if after*2 >= before {
		t.Fatalf("packs use %d bytes after collection, %d before", after, before)
	}
	check := func(s *Store) {
		t.Helper()
		for _, b := range kept {
			got, err := s.Get(ctx, b.Cid())
			if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
				t.Fatalf("kept block %s: %v", b.Cid(), err)
			}
		}
		for i, b := range bs {
			if i%4 != 0 || i < 15 {
				if _, err := s.Get(ctx, b.Cid()); !ipld.IsNotFound(err) {
					t.Fatalf("deleted block %d: %v", i, err)
				}
			}
		}
		if s.Used() != int64(len(kept))*256<<10 {
			t.Fatalf("Used %d for %d kept blocks", s.Used(), len(kept))
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openT(t, dir, withPackSize(4<<20)))
}

// A damaged record is an error that says so, not wrong bytes, and it
// damages no other block.
func TestPackCorruptionIsDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	rng := newRNG(8)
	a, b := randBlock(t, rng, 64<<10), randBlock(t, rng, 64<<10)
	mustPut(t, s, a)
	mustPut(t, s, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, packDir, "*"+packExt))
	var damaged bool
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(data, a.RawData()[:64]); i >= 0 {
			data[i+1000] ^= 0xff
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("block not found in any pack file")
	}
	s = openT(t, dir)
	if _, err := s.Get(ctx, a.Cid()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a damaged block: %v", err)
	}
	if err := s.View(ctx, a.Cid(), func([]byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("View of a damaged block: %v", err)
	}
	if got, err := s.Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
		t.Fatalf("the other block: %v", err)
	}
}

// A store written by layout version 1 (every block in badger) opens, reads
// its blocks and is upgraded; an unknown version is refused.
func TestLayoutUpgradeFromVersion1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	old := randBlock(t, newRNG(9), 256<<10)
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyVersion, []byte("1")); err != nil {
			return err
		}
		if err := txn.Set(makeKey(prefixSize, old.Cid().Hash()), encodeSize(int64(len(old.RawData())))); err != nil {
			return err
		}
		return txn.Set(makeKey(prefixData, old.Cid().Hash()), old.RawData())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if got, err := s.Get(ctx, old.Cid()); err != nil || !bytes.Equal(got.RawData(), old.RawData()) {
		t.Fatalf("version-1 block: %v", err)
	}
	if s.Used() != int64(len(old.RawData())) {
		t.Fatalf("Used %d", s.Used())
	}
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyVersion, []byte("9")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir); err == nil {
		s.Close()
		t.Fatal("a store of layout version 9 opened")
	}
}

// Syncs run beside appends and pack rotations (the fsync is outside the
// append lock): each sync succeeds, and every block reads back the same,
// before and after a reopen. Blocks of sizes around the writer's kept
// record buffer, larger ones too, come back intact.
func TestSyncBesideAppendsAndRotations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir, withPackSize(1<<20))
	rng := newRNG(11)
	var bs []blocks.Block
	for i := range 48 {
		size := 1 + (i*37<<10)%(300<<10)
		if i%16 == 5 {
			size = maxScratch + 1000 // a record past the kept buffer
		}
		bs = append(bs, randBlock(t, rng, size))
	}
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := s.packs.sync(); err != nil {
				done <- err
				return
			}
		}
	}()
	for _, b := range bs {
		mustPut(t, s, b)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("a sync beside appends failed: %v", err)
	}
	if n := len(s.packs.sealed()); n < 3 {
		t.Fatalf("%d sealed packs: the test needs rotations", n)
	}
	check := func(s *Store) {
		t.Helper()
		for _, b := range bs {
			got, err := s.Get(ctx, b.Cid())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.RawData(), b.RawData()) {
				t.Fatalf("block %s of %d bytes reads back different", b.Cid(), len(b.RawData()))
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openT(t, dir))
}
