package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// Pack files hold the bytes of blocks of packMin bytes or more; badger holds
// only a pointer to each (18 bytes, inline in its LSM tree). Packs are read
// and written with pread and pwrite, never memory-mapped: badger maps its
// value log, so every block a box wrote or served used to count in its
// resident memory (VmRSS) until the kernel reclaimed the pages, and every
// new page of a mapping is a page fault on the write path.
//
// A pack is append-only: records of
//
//	magic u16 | key length u16 | data length u32 | CRC-32C of data u32 | key | data
//
// where key is the block's multihash. A record is written before the
// pointer to it is committed, so a pointer never names bytes that were not
// written; a record whose commit failed (or a process killed in between) is
// dead weight that CollectGarbage reclaims. Each Open starts a new pack, so
// a torn tail from a crash is never appended to.

const (
	packMin       = 1 << 10 // smaller blocks stay inline in badger
	packDir       = "packs"
	packExt       = ".pack"
	recordHeader  = 12
	recordMagic   = 0x6f62 // "ob"
	metaPacked    = 1      // badger UserMeta of a b/ key whose value is a pointer
	pointerLength = 4 + 8 + 2 + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by reads of a block whose bytes on disk do not
// match what was written (a damaged disk, or a write lost in a power cut).
var ErrCorrupt = errors.New("store: corrupt block on disk")

// pointer locates a record.
type pointer struct {
	pack   uint32
	off    int64 // of the record
	keyLen uint16
	length uint32 // of the data
}

func (p pointer) encode() []byte {
	b := make([]byte, pointerLength)
	binary.BigEndian.PutUint32(b[0:], p.pack)
	binary.BigEndian.PutUint64(b[4:], uint64(p.off))
	binary.BigEndian.PutUint16(b[12:], p.keyLen)
	binary.BigEndian.PutUint32(b[14:], p.length)
	return b
}

func decodePointer(b []byte) (pointer, error) {
	if len(b) != pointerLength {
		return pointer{}, fmt.Errorf("%w: pointer of %d bytes", ErrCorrupt, len(b))
	}
	return pointer{
		pack:   binary.BigEndian.Uint32(b[0:]),
		off:    int64(binary.BigEndian.Uint64(b[4:])),
		keyLen: binary.BigEndian.Uint16(b[12:]),
		length: binary.BigEndian.Uint32(b[14:]),
	}, nil
}

func (p pointer) recordSize() int64 { return recordHeader + int64(p.keyLen) + int64(p.length) }

// packs is the set of pack files of a store.
type packs struct {
	dir     string
	maxSize int64

	mu      sync.Mutex // appends
	cur     *os.File
	curID   uint32
	curSize int64
	dirty   bool   // written since the last fsync
	head    []byte // a record's header and key (under mu)
	scratch []byte // a record's header and data, as one write where there is no pwritev (under mu; grows to the largest record)
	// smu orders syncs: the fsync runs outside mu (appends go on while it
	// runs), and a sync that finds nothing dirty may return only once the
	// fsync under way, which covers its records, is done.
	smu sync.Mutex

	rmu   sync.RWMutex
	files map[uint32]*os.File // every pack, for reading
}

func openPacks(dir string, maxSize int64) (*packs, error) {
	p := &packs{dir: filepath.Join(dir, packDir), maxSize: maxSize, files: map[uint32]*os.File{}}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", p.dir, err)
	}
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", p.dir, err)
	}
	var last uint32
	for _, e := range ents {
		id, ok := packID(e.Name())
		if !ok {
			continue
		}
		f, err := os.Open(filepath.Join(p.dir, e.Name()))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("store: open pack: %w", err)
		}
		p.files[id] = f
		last = max(last, id)
	}
	if err := p.rotate(last + 1); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func packID(name string) (uint32, bool) {
	s, ok := strings.CutSuffix(name, packExt)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 32)
	return uint32(id), err == nil && id > 0
}

func (p *packs) path(id uint32) string {
	return filepath.Join(p.dir, fmt.Sprintf("%08d%s", id, packExt))
}

// rotate starts pack id as the one appended to. Callers hold mu (or own p).
func (p *packs) rotate(id uint32) error {
	if p.cur != nil {
		if err := p.cur.Sync(); err != nil {
			return wrapIOErr("sync pack", err)
		}
		_ = p.cur.Close()
		p.cur = nil
	}
	f, err := os.OpenFile(p.path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return wrapIOErr("create pack", err)
	}
	r, err := os.Open(p.path(id))
	if err != nil {
		_ = f.Close()
		return wrapIOErr("open pack", err)
	}
	p.rmu.Lock()
	p.files[id] = r
	p.rmu.Unlock()
	p.cur, p.curID, p.curSize, p.dirty = f, id, 0, false
	return nil
}

// maxScratch bounds the buffer packs keeps for its next record where
// records are built in one (no pwritev): a block (≤ 2 MiB on the wire)
// fits, anything larger gets a buffer of its own.
const maxScratch = 4 << 20

// append writes one record and returns its pointer.
func (p *packs) append(key, data []byte) (pointer, error) {
	if len(key) > 0xffff || int64(len(data)) > 1<<31 {
		return pointer{}, fmt.Errorf("store: block of %d bytes with a %d-byte key is too large", len(data), len(key))
	}
	sum := crc32.Checksum(data, crcTable)
	size := int64(recordHeader + len(key) + len(data))

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.curSize > 0 && p.curSize+size > p.maxSize {
		if err := p.rotate(p.curID + 1); err != nil {
			return pointer{}, err
		}
	}
	off := p.curSize
	// Header and data in one write: two writes would leave a window where
	// a reader of the file sees a header without its data.
	if cap(p.head) < recordHeader {
		p.head = make([]byte, recordHeader, recordHeader+64)
	}
	head := p.head[:recordHeader]
	binary.BigEndian.PutUint16(head[0:], recordMagic)
	binary.BigEndian.PutUint16(head[2:], uint16(len(key)))
	binary.BigEndian.PutUint32(head[4:], uint32(len(data)))
	binary.BigEndian.PutUint32(head[8:], sum)
	head = append(head, key...)
	p.head = head
	if err := writeRecord(p.cur, off, head, data, &p.scratch); err != nil {
		return pointer{}, wrapIOErr("write pack", err)
	}
	p.curSize += size
	p.dirty = true
	return pointer{pack: p.curID, off: off, keyLen: uint16(len(key)), length: uint32(len(data))}, nil
}

// sync makes every record appended before it durable. The fsync runs
// without the append lock: on a loaded disk one took up to 85 ms, and a
// bulk fetch's appends waited for it every second.
func (p *packs) sync() error {
	p.smu.Lock()
	defer p.smu.Unlock()
	p.mu.Lock()
	f := p.cur
	if !p.dirty || f == nil {
		p.mu.Unlock()
		return nil
	}
	p.dirty = false
	p.mu.Unlock()
	err := f.Sync()
	if errors.Is(err, os.ErrClosed) {
		// rotate synced the pack before it closed it.
		return nil
	}
	if err != nil {
		p.mu.Lock()
		if p.cur == f {
			p.dirty = true
		}
		p.mu.Unlock()
		return wrapIOErr("sync pack", err)
	}
	return nil
}

// read reads the record at ptr into buf (grown as needed) and returns the
// data, checked against its key and CRC.
func (p *packs) read(ptr pointer, key []byte, buf []byte) ([]byte, error) {
	p.rmu.RLock()
	f := p.files[ptr.pack]
	p.rmu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("%w: pack %d is missing", ErrCorrupt, ptr.pack)
	}
	n := int(ptr.recordSize())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, ptr.off); err != nil {
		return nil, fmt.Errorf("%w: pack %d at %d: %v", ErrCorrupt, ptr.pack, ptr.off, err)
	}
	if binary.BigEndian.Uint16(buf[0:]) != recordMagic ||
		binary.BigEndian.Uint16(buf[2:]) != ptr.keyLen ||
		binary.BigEndian.Uint32(buf[4:]) != ptr.length ||
		string(buf[recordHeader:recordHeader+int(ptr.keyLen)]) != string(key) {
		return nil, fmt.Errorf("%w: pack %d at %d holds another record", ErrCorrupt, ptr.pack, ptr.off)
	}
	data := buf[recordHeader+int(ptr.keyLen):]
	if crc32.Checksum(data, crcTable) != binary.BigEndian.Uint32(buf[8:]) {
		return nil, fmt.Errorf("%w: pack %d at %d fails its checksum", ErrCorrupt, ptr.pack, ptr.off)
	}
	return data, nil
}

// sizes returns the size of every pack but the one appended to.
func (p *packs) sealed() map[uint32]int64 {
	p.mu.Lock()
	cur := p.curID
	p.mu.Unlock()
	out := map[uint32]int64{}
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	for id, f := range p.files {
		if id == cur {
			continue
		}
		if st, err := f.Stat(); err == nil {
			out[id] = st.Size()
		}
	}
	return out
}

// remove deletes a sealed pack.
func (p *packs) remove(id uint32) error {
	p.rmu.Lock()
	f := p.files[id]
	delete(p.files, id)
	p.rmu.Unlock()
	if f != nil {
		_ = f.Close()
	}
	if err := os.Remove(p.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrapIOErr("remove pack", err)
	}
	return nil
}

// diskSize is the bytes of all pack files.
func (p *packs) diskSize() int64 {
	var n int64
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	ids := make([]uint32, 0, len(p.files))
	for id := range p.files {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if st, err := p.files[id].Stat(); err == nil {
			n += st.Size()
		}
	}
	return n
}

func (p *packs) close() error {
	var err error
	p.mu.Lock()
	if p.cur != nil {
		err = p.cur.Sync()
		if cerr := p.cur.Close(); err == nil {
			err = cerr
		}
		p.cur = nil
	}
	p.mu.Unlock()
	p.rmu.Lock()
	for id, f := range p.files {
		_ = f.Close()
		delete(p.files, id)
	}
	p.rmu.Unlock()
	return err
}

// packEntry is a live block in a pack being compacted.
type packEntry struct {
	key []byte // multihash
	ptr pointer
}

// collectPacks reclaims the space of deleted blocks in sealed packs: a pack
// with no live block is removed, one less than half live has its live
// blocks copied to the current pack and is then removed.
func (s *Store) collectPacks(ctx context.Context) error {
	sealed := s.packs.sealed()
	if len(sealed) == 0 {
		return nil
	}
	live := map[uint32]int64{}
	entries := map[uint32][]packEntry{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixData})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.UserMeta()&metaPacked == 0 {
				continue
			}
			var ptr pointer
			if err := item.Value(func(v []byte) (err error) { ptr, err = decodePointer(v); return err }); err != nil {
				return err
			}
			if _, ok := sealed[ptr.pack]; !ok {
				continue
			}
			live[ptr.pack] += ptr.recordSize()
			entries[ptr.pack] = append(entries[ptr.pack], packEntry{key: item.KeyCopy(nil)[len(prefixData):], ptr: ptr})
		}
		return nil
	})
	if err != nil {
		return wrapIOErr("scan packs", err)
	}
	ids := make([]uint32, 0, len(sealed))
	for id := range sealed {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if live[id]*2 >= sealed[id] {
			continue
		}
		for _, e := range entries[id] {
			if err := s.movePacked(e); err != nil {
				return err
			}
		}
		// The copies and the pointers to them are on disk before the old
		// pack goes.
		if err := s.syncAll(); err != nil {
			return err
		}
		if err := s.packs.remove(id); err != nil {
			return err
		}
	}
	return nil
}

// movePacked copies one block to the current pack and points its key there,
// unless the key was deleted or moved meanwhile.
func (s *Store) movePacked(e packEntry) error {
	mu := s.stripe(e.key)
	mu.Lock()
	defer mu.Unlock()
	dk := makeKey(prefixData, e.key)
	still := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(dk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			still = item.UserMeta()&metaPacked != 0 && bytes.Equal(v, e.ptr.encode())
			return nil
		})
	})
	if err != nil || !still {
		return wrapIOErrNil("compact pack", err)
	}
	data, err := s.packs.read(e.ptr, e.key, nil)
	if err != nil {
		// A damaged record is not copied: its key keeps pointing at the
		// old pack, which then stays.
		return fmt.Errorf("store: compact pack %d: %w", e.ptr.pack, err)
	}
	ptr, err := s.packs.append(e.key, data)
	if err != nil {
		return err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(badger.NewEntry(dk, ptr.encode()).WithMeta(metaPacked))
	})
	s.sections.remove(e.key)
	return wrapIOErrNil("compact pack", err)
}

func wrapIOErrNil(op string, err error) error {
	if err == nil {
		return nil
	}
	return wrapIOErr(op, err)
}
