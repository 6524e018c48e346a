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
	if ptr, ok := s.sections.get(h); ok {
		return ptr.section(), nil
	}
	// Under the block's stripe lock, so a delete or a compaction (which
	// forget the block under it) never races a stale pointer back in.
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
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
	bp := readBufs.Get().(*[]byte)
	_, err = s.packs.read(ptr, h, (*bp)[:0])
	readBufs.Put(bp)
	if err != nil {
		return Section{}, fmt.Errorf("store: locate %s: %w", c, err)
	}
	s.sections.add(h, ptr)
	return ptr.section(), nil
}

func (p pointer) section() Section {
	return Section{Pack: p.pack, Off: p.off + recordHeader + int64(p.keyLen), Len: int64(p.length)}
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

// maxSections bounds the blocks Section remembers (a multihash and a
// pointer, some 100 bytes with the map's share): 64 Ki blocks, 16 GiB of
// 256 KiB leaves. When full it forgets them all, and each is looked up and
// checked again at its next Section: forgetting costs a read, never a
// check.
const maxSections = 1 << 16

// sectionCache is the blocks Section located and checked (key and
// CRC-32C) since Open, so that a hot file's next request reads neither
// badger nor its bytes. A record never changes once written (packs are
// append-only, compaction writes a new record elsewhere), so one check
// covers every later Section of it; an entry is added and removed under
// the block's stripe lock, by Section, DeleteBlock and compaction.
type sectionCache struct {
	mu sync.Mutex
	m  map[string]pointer
}

func (c *sectionCache) get(h []byte) (pointer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[string(h)]
	return p, ok
}

func (c *sectionCache) add(h []byte, p pointer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxSections {
		c.m = make(map[string]pointer)
	}
	c.m[string(h)] = p
}

func (c *sectionCache) remove(h []byte) {
	c.mu.Lock()
	delete(c.m, string(h))
	c.mu.Unlock()
}
