package store

import (
	"context"
	"errors"

	badger "github.com/dgraph-io/badger/v4"
)

// Meta records are small values beside the blocks (receipts, records of
// other packages), under their own key prefix so they never count against
// the block quota or collide with blocks and pins. Callers namespace their
// keys themselves ("pod/s/...").
var prefixMeta = []byte("x/")

// MaxMetaValue bounds one meta value: they live in the LSM tree.
const MaxMetaValue = 64 << 10

// PutMeta stores value under key, replacing what was there.
func (s *Store) PutMeta(ctx context.Context, key, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(key) == 0 || len(value) > MaxMetaValue {
		return errors.New("store: meta record needs a key and at most 64 KiB of value")
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(makeKey(prefixMeta, key), value)
	})
	if err != nil {
		return wrapIOErr("put meta", err)
	}
	return nil
}

// GetMeta returns the value under key; ok is false when there is none.
func (s *Store) GetMeta(ctx context.Context, key []byte) (value []byte, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := s.acquire(); err != nil {
		return nil, false, err
	}
	defer s.mu.RUnlock()
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(makeKey(prefixMeta, key))
		if err != nil {
			return err
		}
		value, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrapIOErr("get meta", err)
	}
	return value, true, nil
}

// ScanMeta calls fn for every record whose key starts with prefix, in key
// order. The slices are only valid during the call.
func (s *Store) ScanMeta(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	full := makeKey(prefixMeta, prefix)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: full, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			if err := item.Value(func(v []byte) error {
				return fn(item.Key()[len(prefixMeta):], v)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return wrapIOErr("scan meta", err)
	}
	return err
}

// DeleteMeta removes the record under key; a missing record is not an
// error.
func (s *Store) DeleteMeta(ctx context.Context, key []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(makeKey(prefixMeta, key))
	}); err != nil {
		return wrapIOErr("delete meta", err)
	}
	return nil
}
