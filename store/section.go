package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	badger "github.com/dgraph-io/badger/v4"
)

// Section is where a packed block's bytes lie on disk: Len bytes at Off in
// pack Pack. A reader that copies them without reading them (sendfile from
// a file OpenPack returned) serves the block with no copy in user space.
type Section struct {
	Pack uint32
	Off  int64 // of the block's data in the pack file
	Len  int64
}

// ErrNotPacked says a block has no Section: it is under 1 KiB and lives
// inline in badger (read it with Get or View).
var ErrNotPacked = errors.New("store: block is not in a pack file")

// Section locates the bytes of c's block in its pack file, for readers
// that copy them file to socket. The bytes are checked under the rule of
// the package doc ("Integrity"): before the first Section of a record in
// this process, never after. A missing block yields ipld.ErrNotFound, a
// block under 1 KiB ErrNotPacked, one damaged on disk an error wrapping
// ErrCorrupt.
func (s *Store) Section(ctx context.Context, c cid.Cid) (Section, error) {
	if err := ctx.Err(); err != nil {
		return Section{}, err
	}
	if !c.Defined() {
		return Section{}, ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return Section{}, err
	}
	defer s.mu.RUnlock()
	h := []byte(c.Hash())
	var ptr pointer
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(makeKey(prefixData, h))
		if err != nil {
			return err
		}
		if item.UserMeta()&metaPacked == 0 {
			return ErrNotPacked
		}
		return item.Value(func(v []byte) error {
			ptr, err = decodePointer(v)
			return err
		})
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return Section{}, ipld.ErrNotFound{Cid: c}
	case errors.Is(err, ErrNotPacked):
		return Section{}, err
	case err != nil:
		return Section{}, wrapIOErr(fmt.Sprintf("locate %s", c), err)
	}
	if !s.packs.checked.has(ptr) {
		bp := readBufs.Get().(*[]byte)
		_, err := s.packs.read(ptr, h, (*bp)[:0])
		readBufs.Put(bp)
		if err != nil {
			return Section{}, fmt.Errorf("store: locate %s: %w", c, err)
		}
		s.packs.checked.add(ptr)
	}
	return Section{Pack: ptr.pack, Off: ptr.off + recordHeader + int64(ptr.keyLen), Len: int64(ptr.length)}, nil
}

// OpenPack opens pack id for reading with a file offset of its own (Linux's
// sendfile reads from the file's offset, so the store's shared descriptors,
// read with pread, must not be seeked). The caller closes it. A pack that
// compaction removed after a Section named it fails with an error wrapping
// os.ErrNotExist; reading the block again finds its new place.
func (s *Store) OpenPack(id uint32) (*os.File, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	f, err := os.Open(s.packs.path(id))
	if err != nil {
		return nil, fmt.Errorf("store: open pack %d: %w", id, err)
	}
	return f, nil
}

// maxChecked bounds the records Section remembers as checked (a pointer,
// some 60 bytes with the map's share): 256 Ki records, 64 GiB of 256 KiB
// leaves. When full it forgets them all, and each is checked again at its
// next Section: forgetting costs a read, never a check.
const maxChecked = 1 << 18

// checkedSet is the records whose key and CRC-32C were checked since Open.
// A record never changes once written (packs are append-only and
// compaction writes a new record at a new place), so one check covers
// every later Section of it.
type checkedSet struct {
	mu sync.Mutex
	m  map[pointer]struct{}
}

func (c *checkedSet) has(p pointer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[p]
	return ok
}

func (c *checkedSet) add(p pointer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxChecked {
		c.m = make(map[pointer]struct{})
	}
	c.m[p] = struct{}{}
}

// forget drops the records of a removed pack: a later pack never reuses its
// number while the store is open, but the set stays exact anyway.
func (c *checkedSet) forget(pack uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.m {
		if p.pack == pack {
			delete(c.m, p)
		}
	}
}
