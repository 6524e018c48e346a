package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Put stores b under its multihash. The CID is trusted, not re-hashed. A
// block already present is a no-op. Exceeding the quota fails with an error
// wrapping ErrQuotaExceeded and writes nothing.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b == nil {
		return errors.New("store: put: nil block")
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return s.put(b.Cid(), b.RawData())
}

func (s *Store) put(c cid.Cid, data []byte) error {
	if !c.Defined() {
		return errors.New("store: put: undefined CID")
	}
	h := []byte(c.Hash())
	sk := makeKey(prefixSize, h)
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()

	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(sk)
		return err
	})
	if err == nil {
		return nil // already stored
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return wrapIOErr(fmt.Sprintf("put %s", c), err)
	}
	n := int64(len(data))
	if err := s.reserve(n, "block needs"); err != nil {
		return err
	}
	value, meta, err := s.pack(h, data)
	if err == nil && s.syncWrites {
		err = s.packs.sync()
	}
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error {
			if err := txn.Set(sk, encodeSize(n)); err != nil {
				return err
			}
			return txn.SetEntry(badger.NewEntry(makeKey(prefixData, h), value).WithMeta(meta))
		})
	}
	if err != nil {
		s.used.Add(-n)
		return wrapIOErr(fmt.Sprintf("put %s", c), err)
	}
	s.sizes.add(h, n)
	return nil
}

// pack writes a block of packMin bytes or more to a pack file and returns
// the pointer to store in its place; a smaller block is its own value.
func (s *Store) pack(h, data []byte) (value []byte, meta byte, err error) {
	if len(data) < packMin {
		return data, 0, nil
	}
	ptr, err := s.packs.append(h, data)
	if err != nil {
		return nil, 0, err
	}
	return ptr.encode(), metaPacked, nil
}

// PutMany stores the blocks in one write batch, skipping those already
// present. If the new blocks together exceed the quota nothing is written.
func (s *Store) PutMany(ctx context.Context, bs []blocks.Block) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, b := range bs {
		if b == nil || !b.Cid().Defined() {
			return fmt.Errorf("store: put many: block %d is nil or has an undefined CID", i)
		}
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	switch len(bs) {
	case 0:
		return nil
	case 1:
		return s.put(bs[0].Cid(), bs[0].RawData())
	}

	entries := make([]pendingBlock, 0, len(bs))
	var locked [numStripes]bool
	for _, b := range bs {
		h := []byte(b.Cid().Hash())
		entries = append(entries, pendingBlock{h: h, data: b.RawData()})
		locked[stripeIndex(h)] = true
	}
	// Lock stripes in index order so concurrent PutManys cannot deadlock.
	for i := range locked {
		if locked[i] {
			s.stripes[i].Lock()
			defer s.stripes[i].Unlock()
		}
	}

	todo := entries[:0]
	var total int64
	seen := make(map[string]struct{}, len(entries))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, e := range entries {
			if _, dup := seen[string(e.h)]; dup {
				continue
			}
			seen[string(e.h)] = struct{}{}
			_, err := txn.Get(makeKey(prefixSize, e.h))
			if err == nil {
				continue
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			todo = append(todo, e)
			total += int64(len(e.data))
		}
		return nil
	})
	if err != nil {
		return wrapIOErr("put many: check existing", err)
	}
	if len(todo) == 0 {
		return nil
	}
	if err := s.reserve(total, fmt.Sprintf("%d new blocks need", len(todo))); err != nil {
		return err
	}

	values := make([][]byte, len(todo))
	metas := make([]byte, len(todo))
	for i, e := range todo {
		if values[i], metas[i], err = s.pack(e.h, e.data); err != nil {
			break
		}
	}
	if err == nil && s.syncWrites {
		err = s.packs.sync()
	}
	if err != nil {
		s.used.Add(-total)
		return wrapIOErr(fmt.Sprintf("put many (%d blocks)", len(todo)), err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, e := range todo {
		if err = wb.Set(makeKey(prefixSize, e.h), encodeSize(int64(len(e.data)))); err != nil {
			break
		}
		if err = wb.SetEntry(badger.NewEntry(makeKey(prefixData, e.h), values[i]).WithMeta(metas[i])); err != nil {
			break
		}
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		// A batch too big for one transaction may have committed in part:
		// wait for its commits (Cancel does), then count back only what is
		// really there.
		wb.Cancel()
		s.used.Add(-total)
		s.recount(todo)
		return wrapIOErr(fmt.Sprintf("put many (%d blocks)", len(todo)), err)
	}
	for _, e := range todo {
		s.sizes.add(e.h, int64(len(e.data)))
	}
	return nil
}

type pendingBlock struct {
	h    []byte // multihash
	data []byte
}

// recount adds to Used the blocks of a failed batch that did land.
func (s *Store) recount(bs []pendingBlock) {
	_ = s.db.View(func(txn *badger.Txn) error {
		for _, e := range bs {
			if _, err := txn.Get(makeKey(prefixSize, e.h)); err == nil {
				s.used.Add(int64(len(e.data)))
			}
		}
		return nil
	})
}

// Get returns the block for c's multihash, with c as its CID. A missing
// block yields ipld.ErrNotFound; one damaged on disk an error wrapping
// ErrCorrupt.
func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	var data []byte
	err := s.view(ctx, c, nil, func(v []byte, owned bool, _ int) error {
		if owned {
			data = v
		} else {
			data = append(make([]byte, 0, len(v)), v...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// View calls fn with the block bytes. fn must not keep or modify the slice:
// it is only valid during the call.
func (s *Store) View(ctx context.Context, c cid.Cid, fn func([]byte) error) error {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	return s.view(ctx, c, bp, func(v []byte, _ bool, _ int) error { return fn(v) })
}

// ReadBlock reads c's block into *buf (grown as needed, and kept there for
// the next call) after room free bytes, and returns them: out[room:] is the
// block, out[:room] is the caller's to write (a frame header sent with the
// bytes in one write). out is valid until *buf is used again. A server
// that sends block after block reads them all into one buffer, with no
// allocation or copy a block: a packed block's bytes are read from the
// pack straight where they are sent from (room must then be at most
// ReadRoom).
func (s *Store) ReadBlock(ctx context.Context, c cid.Cid, room int, buf *[]byte) ([]byte, error) {
	if room < 0 || room > ReadRoom {
		return nil, fmt.Errorf("store: read room %d is not in [0, %d]", room, ReadRoom)
	}
	var out []byte
	err := s.view(ctx, c, buf, func(v []byte, _ bool, at int) error {
		if at >= room {
			out = (*buf)[at-room : at+len(v)] // a packed block: the record's header and key are the room
			return nil
		}
		// An inline block, in badger's memory: copied after the room.
		if cap(*buf) < room+len(v) {
			*buf = make([]byte, 0, room+len(v))
		}
		out = append((*buf)[:room], v...)
		return nil
	})
	return out, err
}

// ReadRoom is the most room ReadBlock leaves before a block: a record's
// header (a packed block's bytes follow it and the block's key).
const ReadRoom = recordHeader

// readBufs are View's buffers for packed blocks.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10+128); return &b }}

// view finds c's block: an inline one is handed to fn inside the badger
// transaction (owned false, at -1); a packed one is read into *buf (nil: a
// new buffer, then owned is true) after it, its record's header and key
// first: at is where the block's bytes start in *buf (-1 with no buf).
func (s *Store) view(ctx context.Context, c cid.Cid, buf *[]byte, fn func(v []byte, owned bool, at int) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.Defined() {
		return ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	h := []byte(c.Hash())
	var ptr pointer
	packed := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(makeKey(prefixData, h))
		if err != nil {
			return err
		}
		if item.UserMeta()&metaPacked == 0 {
			return item.Value(func(v []byte) error { return fn(v, false, -1) })
		}
		packed = true
		return item.Value(func(v []byte) error {
			ptr, err = decodePointer(v)
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return wrapIOErr(fmt.Sprintf("get %s", c), err)
	}
	if !packed {
		return nil
	}
	var into []byte
	if buf != nil {
		if int64(cap(*buf)) < ptr.recordSize() {
			*buf = make([]byte, 0, ptr.recordSize()) // kept for the next View
		}
		into = *buf
	}
	data, err := s.packs.read(ptr, h, into)
	if err != nil {
		return fmt.Errorf("store: get %s: %w", c, err)
	}
	at := -1
	if buf != nil {
		at = int(ptr.recordSize()) - len(data)
	}
	return fn(data, buf == nil, at)
}

// GetSize returns the size of the block for c's multihash, or -1 and
// ipld.ErrNotFound.
func (s *Store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	if !c.Defined() {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return -1, err
	}
	defer s.mu.RUnlock()
	n, ok, err := s.size(c.Hash())
	if err != nil {
		return -1, wrapIOErr(fmt.Sprintf("get size %s", c), err)
	}
	if !ok {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	return int(n), nil
}

// size looks a block's size up, in the cache first.
func (s *Store) size(h []byte) (int64, bool, error) {
	if n, ok := s.sizes.get(h); ok {
		return n, true, nil
	}
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(makeKey(prefixSize, h))
		if err != nil {
			return err
		}
		n, err = itemSize(item)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, err
	}
	s.sizes.add(h, n)
	return n, true, nil
}

// Has reports whether the block for c's multihash is stored.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
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
	_, ok, err := s.size(c.Hash())
	if err != nil {
		return false, wrapIOErr(fmt.Sprintf("has %s", c), err)
	}
	return ok, nil
}

// DeleteBlock removes the block for c's multihash and lowers Used. Deleting
// a missing block is not an error. Pins are not consulted.
func (s *Store) DeleteBlock(ctx context.Context, c cid.Cid) error {
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
	h := []byte(c.Hash())
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	var freed int64
	err := s.db.Update(func(txn *badger.Txn) error {
		sk := makeKey(prefixSize, h)
		item, err := txn.Get(sk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := itemSize(item)
		if err != nil {
			return err
		}
		if err := txn.Delete(sk); err != nil {
			return err
		}
		freed = n
		return txn.Delete(makeKey(prefixData, h))
	})
	s.sizes.remove(h)
	s.sections.remove(h)
	if err != nil {
		return wrapIOErr(fmt.Sprintf("delete %s", c), err)
	}
	s.used.Add(-freed)
	return nil
}

// AllKeysChan returns every stored block as a CIDv1 with the raw codec (the
// store keeps multihashes only). The channel closes when done, when ctx is
// done, or when the store closes.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch, _, err := s.AllKeysChanWithErr(ctx)
	return ch, err
}

// AllKeysChanWithErr is AllKeysChan plus a function that, once the channel is
// drained, reports whether the enumeration ended early.
func (s *Store) AllKeysChanWithErr(ctx context.Context) (<-chan cid.Cid, func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, nil, err
	}
	out := make(chan cid.Cid, 256)
	done := make(chan struct{})
	var iterErr error
	go func() {
		defer s.mu.RUnlock()
		defer close(done)
		defer close(out)
		iterErr = s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixSize, PrefetchValues: false})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				c := cid.NewCidV1(cid.Raw, it.Item().Key()[len(prefixSize):]) // copies the key
				select {
				case out <- c:
				case <-ctx.Done():
					return ctx.Err()
				case <-s.closing:
					return ErrClosed
				}
			}
			return nil
		})
		if iterErr != nil && !errors.Is(iterErr, ctx.Err()) && !errors.Is(iterErr, ErrClosed) {
			iterErr = wrapIOErr("list keys", iterErr)
		}
	}()
	return out, func() error { <-done; return iterErr }, nil
}
