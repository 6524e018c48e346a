package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

func TestQuota(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const size, quota = 1000, 3000
	s := openT(t, dir, WithQuota(quota))
	rng := newRNG(10)
	bs := make([]blocks.Block, 6)
	for i := range bs {
		bs[i] = randBlock(t, rng, size)
	}
	for _, b := range bs[:3] {
		mustPut(t, s, b)
	}
	if s.Used() != quota {
		t.Fatalf("Used = %d, want %d", s.Used(), quota)
	}

	// Over quota: refused, nothing stored, message says where we stand.
	err := s.Put(ctx, bs[3])
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("Put over quota: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "3000 of 3000 bytes used") || !strings.Contains(msg, "1000") {
		t.Fatalf("quota error lacks figures: %v", err)
	}
	if ok, _ := s.Has(ctx, bs[3].Cid()); ok || s.Used() != quota {
		t.Fatalf("refused block stored (Used %d)", s.Used())
	}

	// Duplicate Put at full quota: a no-op, not an error.
	mustPut(t, s, bs[0])
	if err := s.PutMany(ctx, bs[:3]); err != nil {
		t.Fatalf("PutMany of present blocks at full quota: %v", err)
	}
	if s.Used() != quota {
		t.Fatalf("duplicate counted: Used = %d", s.Used())
	}

	// Delete frees quota.
	if err := s.DeleteBlock(ctx, bs[0].Cid()); err != nil {
		t.Fatal(err)
	}
	if s.Used() != quota-size {
		t.Fatalf("Used after delete = %d", s.Used())
	}

	// PutMany needing 2000 with 1000 free: all or nothing.
	err = s.PutMany(ctx, []blocks.Block{bs[3], bs[4], bs[1]})
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("PutMany over quota: %v", err)
	}
	for _, b := range bs[3:5] {
		if ok, _ := s.Has(ctx, b.Cid()); ok {
			t.Fatal("PutMany over quota stored a block")
		}
	}
	if s.Used() != quota-size {
		t.Fatalf("Used after refused PutMany = %d", s.Used())
	}
	if err := s.PutMany(ctx, []blocks.Block{bs[3], bs[1], bs[2]}); err != nil {
		t.Fatalf("PutMany that fits: %v", err)
	}
	if s.Used() != quota {
		t.Fatalf("Used = %d, want %d", s.Used(), quota)
	}

	// Accounting survives reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, WithQuota(quota))
	if s.Used() != quota {
		t.Fatalf("Used after reopen = %d, want %d", s.Used(), quota)
	}
	if err := s.Put(ctx, bs[5]); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("Put over quota after reopen: %v", err)
	}
	// Reopen with a larger quota accepts more.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, WithQuota(2*quota))
	mustPut(t, s, bs[5])
	if s.Used() != quota+size {
		t.Fatalf("Used = %d", s.Used())
	}
}

func TestConcurrentPutsRespectQuota(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const size, fit = 4096, 25
	s := openT(t, dir, WithQuota(fit*size))
	rng := newRNG(11)
	const workers, each = 8, 10
	work := make([][]blocks.Block, workers)
	for w := range work {
		for range each {
			work[w] = append(work[w], randBlock(t, rng, size))
		}
	}
	shared := randBlock(t, rng, size) // every worker also writes this one

	var refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*(each+2))
	for w := range workers {
		wg.Go(func() {
			put := func(bs ...blocks.Block) {
				var err error
				if len(bs) == 1 {
					err = s.Put(ctx, bs[0])
				} else {
					err = s.PutMany(ctx, bs)
				}
				switch {
				case err == nil:
				case errors.Is(err, ErrQuotaExceeded):
					refused.Add(1)
				default:
					errs <- err
				}
				if used := s.Used(); used > fit*size {
					errs <- fmt.Errorf("Used %d exceeds quota %d", used, fit*size)
				}
			}
			put(shared)
			for i, b := range work[w] {
				if w%2 == 1 && i%5 == 0 && i+2 <= len(work[w]) { // some PutMany pairs
					put(b, work[w][i+1], shared)
					continue
				}
				if w%2 == 1 && i%5 == 1 {
					continue // written in the pair above
				}
				put(b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	stored := int64(len(allKeys(t, s)))
	if got := s.Used(); got != stored*size {
		t.Fatalf("Used = %d but %d blocks stored (%d bytes)", got, stored, stored*size)
	}
	if s.Used() > fit*size || refused.Load() == 0 {
		t.Fatalf("Used = %d, quota %d, refused %d", s.Used(), fit*size, refused.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if got := s.Used(); got != stored*size {
		t.Fatalf("Used after reopen = %d, want %d", got, stored*size)
	}
}

func TestConcurrentSameBlockCountedOnce(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	b := randBlock(t, newRNG(12), 300<<10)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if err := s.Put(ctx, b); err != nil {
					t.Error(err)
				}
				if err := s.PutMany(ctx, []blocks.Block{b, b}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() { // a deleter racing the writers must keep Used exact
		for range 20 {
			if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	mustPut(t, s, b)
	if s.Used() != int64(len(b.RawData())) {
		t.Fatalf("Used = %d, want %d", s.Used(), len(b.RawData()))
	}
}
