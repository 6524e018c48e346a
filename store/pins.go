package store

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// Pins are a plain set of root CIDs, keyed by the full CID bytes (so a CIDv0
// and a CIDv1 of the same content are different pins). What a pin protects
// (the root alone or its whole DAG) is the caller's concern, as is keeping
// pinned blocks out of DeleteBlock.

// Pin adds c to the pin set. It syncs to disk before returning, so a pin
// that returned survives a power loss.
func (s *Store) Pin(ctx context.Context, c cid.Cid) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.Defined() {
		return errors.New("store: pin: undefined CID")
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	// The pinned DAG's pack bytes are on disk before the pin is.
	err := s.packs.sync()
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(makeKey(prefixPin, c.Bytes()), nil)
		})
	}
	if err == nil {
		err = s.syncAll()
	}
	if err != nil {
		return wrapIOErr(fmt.Sprintf("pin %s", c), err)
	}
	return nil
}

// Unpin removes c from the pin set. Unpinning a CID that is not pinned is
// not an error. It does not sync: an unpin lost in a crash leaves the CID
// pinned, which is the safe side.
func (s *Store) Unpin(ctx context.Context, c cid.Cid) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.Defined() {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(makeKey(prefixPin, c.Bytes()))
	})
	if err != nil {
		return wrapIOErr(fmt.Sprintf("unpin %s", c), err)
	}
	return nil
}

// IsPinned reports whether exactly c (not just its multihash) is pinned.
func (s *Store) IsPinned(ctx context.Context, c cid.Cid) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if !c.Defined() {
		return false, nil
	}
	if err := s.acquire(); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(makeKey(prefixPin, c.Bytes()))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrapIOErr(fmt.Sprintf("is pinned %s", c), err)
	}
	return true, nil
}

// Pins returns the pinned CIDs in key order.
func (s *Store) Pins(ctx context.Context) ([]cid.Cid, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var pins []cid.Cid
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixPin, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()[len(prefixPin):]
			c, err := cid.Cast(k) // copies k
			if err != nil {
				return fmt.Errorf("store: corrupt pin record %x: %w", k, err)
			}
			pins = append(pins, c)
		}
		return nil
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, err
		}
		return nil, wrapIOErr("list pins", err)
	}
	return pins, nil
}
