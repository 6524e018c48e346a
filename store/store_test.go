package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

var rawPrefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}

// randBlock returns a block of n random bytes with a real sha2-256 CIDv1.
func randBlock(t testing.TB, rng *rand.Rand, n int) blocks.Block {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	c, err := rawPrefix.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x0e)) }

func openT(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustPut(t testing.TB, s *Store, b blocks.Block) {
	t.Helper()
	if err := s.Put(context.Background(), b); err != nil {
		t.Fatalf("Put %s: %v", b.Cid(), err)
	}
}

func allKeys(t testing.TB, s *Store) []cid.Cid {
	t.Helper()
	ch, errf, err := s.AllKeysChanWithErr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for c := range ch {
		out = append(out, c)
	}
	if err := errf(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	rng := newRNG(1)
	small, big := randBlock(t, rng, 100), randBlock(t, rng, 256<<10)
	mustPut(t, s, small)
	mustPut(t, s, big)

	for _, b := range []blocks.Block{small, big} {
		if ok, err := s.Has(ctx, b.Cid()); err != nil || !ok {
			t.Fatalf("Has = %v, %v", ok, err)
		}
		got, err := s.Get(ctx, b.Cid())
		if err != nil {
			t.Fatal(err)
		}
		if !got.Cid().Equals(b.Cid()) || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatal("Get returned different block")
		}
		if n, err := s.GetSize(ctx, b.Cid()); err != nil || n != len(b.RawData()) {
			t.Fatalf("GetSize = %d, %v; want %d", n, err, len(b.RawData()))
		}
	}
	if got, want := s.Used(), int64(100+256<<10); got != want {
		t.Fatalf("Used = %d, want %d", got, want)
	}
	keys := allKeys(t, s)
	if len(keys) != 2 {
		t.Fatalf("AllKeysChan gave %d keys, want 2", len(keys))
	}
	for _, k := range keys {
		if k.Prefix().Codec != cid.Raw || k.Version() != 1 {
			t.Fatalf("key %s is not CIDv1 raw", k)
		}
		if !k.Equals(small.Cid()) && !k.Equals(big.Cid()) {
			t.Fatalf("unexpected key %s", k)
		}
	}

	if err := s.DeleteBlock(ctx, big.Cid()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, big.Cid()); ok {
		t.Fatal("Has after delete")
	}
	if _, err := s.Get(ctx, big.Cid()); !ipld.IsNotFound(err) {
		t.Fatalf("Get after delete: %v", err)
	}
	if s.Used() != 100 {
		t.Fatalf("Used after delete = %d", s.Used())
	}
	if err := s.DeleteBlock(ctx, big.Cid()); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if s.Used() != 100 {
		t.Fatalf("Used after second delete = %d", s.Used())
	}
}

func TestMissing(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	c := randBlock(t, newRNG(2), 10).Cid()
	if _, err := s.Get(ctx, c); !ipld.IsNotFound(err) {
		t.Fatalf("Get missing: %v", err)
	}
	if n, err := s.GetSize(ctx, c); !ipld.IsNotFound(err) || n != -1 {
		t.Fatalf("GetSize missing: %d, %v", n, err)
	}
	if ok, err := s.Has(ctx, c); ok || err != nil {
		t.Fatalf("Has missing: %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, cid.Undef); !ipld.IsNotFound(err) {
		t.Fatalf("Get undef: %v", err)
	}
	if err := s.Put(ctx, nil); err == nil {
		t.Fatal("Put(nil) succeeded")
	}
	if err := s.PutMany(ctx, []blocks.Block{nil, nil}); err == nil {
		t.Fatal("PutMany(nil...) succeeded")
	}
}

func TestCIDv0AndV1ShareBlock(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	data := []byte("same bytes, two CIDs")
	hash, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	c0 := cid.NewCidV0(hash)
	c1 := cid.NewCidV1(cid.DagProtobuf, hash)
	b0, _ := blocks.NewBlockWithCid(data, c0)
	b1, _ := blocks.NewBlockWithCid(data, c1)
	mustPut(t, s, b0)
	mustPut(t, s, b1) // no-op
	if s.Used() != int64(len(data)) {
		t.Fatalf("Used = %d, want %d", s.Used(), len(data))
	}
	got, err := s.Get(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cid().Equals(c1) || !bytes.Equal(got.RawData(), data) {
		t.Fatalf("Get(v1) = %s", got.Cid())
	}
	got, err = s.Get(ctx, c0)
	if err != nil || !got.Cid().Equals(c0) {
		t.Fatalf("Get(v0) = %v, %v", got, err)
	}
	if keys := allKeys(t, s); len(keys) != 1 || !keys[0].Equals(cid.NewCidV1(cid.Raw, hash)) {
		t.Fatalf("AllKeysChan = %v", keys)
	}
	if err := s.DeleteBlock(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, c0); ok || s.Used() != 0 {
		t.Fatalf("v0 still present after deleting v1 (Used %d)", s.Used())
	}
}

func TestPutManyLargeBatchSplits(t *testing.T) {
	// 6000 inline-sized blocks exceed one badger transaction with small
	// memory (max batch ~1.2 MiB): the write batch must split and Used must
	// stay exact, also after reopen.
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir, WithSmallMemory(true))
	rng := newRNG(3)
	bs := make([]blocks.Block, 0, 6001)
	var want int64
	for range 6000 {
		b := randBlock(t, rng, 500)
		bs = append(bs, b)
		want += 500
	}
	bs = append(bs, bs[0]) // duplicate inside the call
	if err := s.PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	if s.Used() != want {
		t.Fatalf("Used = %d, want %d", s.Used(), want)
	}
	if err := s.PutMany(ctx, bs[:100]); err != nil { // all present: no-op
		t.Fatal(err)
	}
	if s.Used() != want {
		t.Fatalf("Used after re-put = %d, want %d", s.Used(), want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, WithSmallMemory(true))
	if s.Used() != want {
		t.Fatalf("Used after reopen = %d, want %d", s.Used(), want)
	}
	for _, i := range []int{0, 2999, 5999} {
		got, err := s.Get(ctx, bs[i].Cid())
		if err != nil || !bytes.Equal(got.RawData(), bs[i].RawData()) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	if n := len(allKeys(t, s)); n != 6000 {
		t.Fatalf("AllKeysChan gave %d keys", n)
	}
}

func TestAllKeysChanCancel(t *testing.T) {
	s := openT(t, t.TempDir())
	rng := newRNG(4)
	bs := make([]blocks.Block, 1000)
	for i := range bs {
		bs[i] = randBlock(t, rng, 16)
	}
	if err := s.PutMany(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, errf, err := s.AllKeysChanWithErr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	cancel()
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-deadline:
			t.Fatal("channel not closed after cancel")
		}
	}
	if err := errf(); !errors.Is(err, context.Canceled) {
		t.Fatalf("errf = %v, want context.Canceled", err)
	}
}

func TestPins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	rng := newRNG(5)
	a, b := randBlock(t, rng, 10).Cid(), randBlock(t, rng, 10).Cid()
	a0 := cid.NewCidV0(a.Hash())
	for _, c := range []cid.Cid{a, b, a0, a} {
		if err := s.Pin(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Pin(ctx, cid.Undef); err == nil {
		t.Fatal("Pin(Undef) succeeded")
	}
	if err := s.Unpin(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(ctx, b); err != nil {
		t.Fatalf("second unpin: %v", err)
	}
	check := func(s *Store) {
		t.Helper()
		for c, want := range map[cid.Cid]bool{a: true, a0: true, b: false} {
			if got, err := s.IsPinned(ctx, c); err != nil || got != want {
				t.Fatalf("IsPinned(%s) = %v, %v; want %v", c, got, err, want)
			}
		}
		pins, err := s.Pins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(pins) != 2 || !slices.ContainsFunc(pins, a.Equals) || !slices.ContainsFunc(pins, a0.Equals) {
			t.Fatalf("Pins = %v", pins)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openT(t, dir))
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "stop the other ore process") {
		t.Fatalf("unhelpful lock error: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openT(t, dir) // free again
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := randBlock(t, newRNG(6), 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Put(ctx, b); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Get(ctx, b.Cid()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := s.AllKeysChan(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("AllKeysChan after Close: %v", err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open(t.TempDir(), WithQuota(-1)); err == nil {
		t.Fatal("negative quota accepted")
	}
	if _, err := Open(""); err == nil {
		t.Fatal("empty dir accepted")
	}
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := slogAdapter{l: l}
	a.Infof("info %d", 1)
	a.Debugf("debug %d", 2)
	a.Warningf("warn %d\n", 3)
	a.Errorf("error %d", 4)
	out := buf.String()
	if strings.Contains(out, "info 1") || strings.Contains(out, "debug 2") ||
		!strings.Contains(out, "warn 3") || !strings.Contains(out, "error 4") {
		t.Fatalf("logger output: %q", out)
	}
	slogAdapter{}.Errorf("nil logger must not panic")
	s := openT(t, t.TempDir(), WithLogger(l), WithSyncWrites(true), WithSmallMemory(true), WithQuota(1<<20))
	if s.Quota() != 1<<20 {
		t.Fatalf("Quota = %d", s.Quota())
	}
	mustPut(t, s, randBlock(t, newRNG(7), 1000))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReadBlock: ReadBlock hands back a block's bytes after the room asked
// for, inline and packed, reusing the caller's buffer for a packed block
// that fits, and refuses a room larger than ReadRoom.
func TestReadBlock(t *testing.T) {
	s := openT(t, t.TempDir())
	rng := newRNG(7)
	small, large, larger := randBlock(t, rng, 100), randBlock(t, rng, 64<<10), randBlock(t, rng, 256<<10)
	for _, b := range []blocks.Block{small, large, larger} {
		mustPut(t, s, b)
	}
	ctx := context.Background()
	var buf []byte
	for _, room := range []int{0, 3, ReadRoom} {
		for _, b := range []blocks.Block{small, large, larger, large} {
			out, err := s.ReadBlock(ctx, b.Cid(), room, &buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != room+len(b.RawData()) || !bytes.Equal(out[room:], b.RawData()) {
				t.Fatalf("room %d, block of %d bytes: read %d bytes, not the block after the room", room, len(b.RawData()), len(out))
			}
		}
	}
	// The buffer grew to the largest record and stays: the next read of a
	// packed block lands in it.
	kept := &buf[:1][0]
	out, err := s.ReadBlock(ctx, larger.Cid(), 3, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if &buf[:1][0] != kept || &out[0] != &buf[:cap(buf)][cap(buf)-cap(out)] {
		t.Fatal("a packed block was read into a new buffer, not the one kept")
	}
	if _, err := s.ReadBlock(ctx, large.Cid(), ReadRoom+1, &buf); err == nil {
		t.Fatal("a room larger than ReadRoom was accepted")
	}
	if _, err := s.ReadBlock(ctx, randBlock(t, rng, 10).Cid(), 0, &buf); !ipld.IsNotFound(err) {
		t.Fatalf("a missing block: %v, want not found", err)
	}
}
