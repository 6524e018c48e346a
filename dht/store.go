package dht

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// ErrStoreFull is returned for a record the DHT's store has no room for.
var ErrStoreFull = errors.New("dht: record store full")

// Bounds of the DHT's record store (provider records and values, which
// any peer may ask a DHT server to keep: kad-dht keeps them in memory, for
// 48 h, in a map without a bound). An ore network is closed (/ore): a
// server keeps about 20 records for every root of the network over the
// number of servers (1,000 boxes of 1,000 roots each: ~20,000 records of
// ~100 bytes), so 256 Ki records and 64 MiB leave room for fifty times
// that.
const (
	maxStoreKeys  = 1 << 18
	maxStoreBytes = 64 << 20
)

// StoreStats are the size of the DHT's record store.
type StoreStats struct {
	Keys    int    // records held
	Bytes   int64  // of their keys and values
	Refused uint64 // records refused because the store was full
}

// boundedStore is the DHT's in-memory datastore with bounds on its records
// and bytes. A record of a new key past either bound is refused (a write
// alone fails with ErrStoreFull; a batch leaves it out): a provider
// record dropped that way comes back with its provider's next reprovide,
// once expired records made room.
type boundedStore struct {
	ds.Batching
	maxKeys  int
	maxBytes int64

	mu      sync.Mutex
	keys    int
	bytes   int64
	refused atomic.Uint64
}

var _ ds.Batching = (*boundedStore)(nil)

func newBoundedStore(maxKeys int, maxBytes int64) *boundedStore {
	return &boundedStore{Batching: dssync.MutexWrap(ds.NewMapDatastore()), maxKeys: maxKeys, maxBytes: maxBytes}
}

// size is what a record takes against maxBytes.
func size(k ds.Key, v int) int64 { return int64(len(k.String()) + v) }

func (s *boundedStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.Batching.GetSize(ctx, k)
	exists := err == nil
	if err != nil && !errors.Is(err, ds.ErrNotFound) {
		return err
	}
	grow := size(k, len(v))
	if exists {
		grow -= size(k, old)
	}
	if (!exists && s.keys >= s.maxKeys) || s.bytes+grow > s.maxBytes {
		s.refused.Add(1)
		return fmt.Errorf("%w: %d records, %d bytes (bounds %d and %d)", ErrStoreFull, s.keys, s.bytes, s.maxKeys, s.maxBytes)
	}
	if err := s.Batching.Put(ctx, k, v); err != nil {
		return err
	}
	if !exists {
		s.keys++
	}
	s.bytes += grow
	return nil
}

func (s *boundedStore) Delete(ctx context.Context, k ds.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.Batching.GetSize(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.Batching.Delete(ctx, k); err != nil {
		return err
	}
	s.keys--
	s.bytes -= size(k, old)
	return nil
}

func (s *boundedStore) Batch(context.Context) (ds.Batch, error) { return &boundedBatch{s: s}, nil }

func (s *boundedStore) stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{Keys: s.keys, Bytes: s.bytes, Refused: s.refused.Load()}
}

// boundedBatch applies its writes in order on Commit. A record the store
// is full for is left out, not failed: kad-dht keeps a failed batch of
// provider records and retries it whole (the records that fit too) until
// it drops the lot.
type boundedBatch struct {
	s   *boundedStore
	ops []batchOp
}

type batchOp struct {
	k      ds.Key
	v      []byte
	delete bool
}

func (b *boundedBatch) Put(_ context.Context, k ds.Key, v []byte) error {
	b.ops = append(b.ops, batchOp{k: k, v: v})
	return nil
}

func (b *boundedBatch) Delete(_ context.Context, k ds.Key) error {
	b.ops = append(b.ops, batchOp{k: k, delete: true})
	return nil
}

func (b *boundedBatch) Commit(ctx context.Context) error {
	for _, op := range b.ops {
		var err error
		if op.delete {
			err = b.s.Delete(ctx, op.k)
		} else {
			err = b.s.Put(ctx, op.k, op.v)
		}
		if err != nil && !errors.Is(err, ErrStoreFull) {
			return err
		}
	}
	b.ops = nil
	return nil
}
