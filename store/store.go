package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/boxo/blockstore"
)

var (
	// ErrQuotaExceeded is wrapped by Put and PutMany when the blocks would
	// take Used above Quota.
	ErrQuotaExceeded = errors.New("store: storage quota exceeded")
	// ErrLocked is wrapped by Open when another process (or another Open in
	// this process) holds the directory.
	ErrLocked = errors.New("store: repository is in use by another process")
	// ErrDiskFull is wrapped by writes that failed because the device is full.
	ErrDiskFull = errors.New("store: disk full")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
)

var (
	_ blockstore.Blockstore           = (*Store)(nil)
	_ blockstore.Viewer               = (*Store)(nil)
	_ blockstore.AllKeysChanWithErrer = (*Store)(nil)
)

// Key layout. Prefixes are two bytes so they never collide with each other.
var (
	prefixData    = []byte("b/") // + multihash  -> block bytes, or a pointer into a pack (UserMeta metaPacked)
	prefixSize    = []byte("s/") // + multihash  -> uvarint block size (inline in the LSM)
	prefixPin     = []byte("p/") // + CID bytes  -> empty
	keyVersion    = []byte("m/version")
	layoutVersion = []byte("2") // 2: blocks of packMin bytes or more in pack files
	// layoutUpgradable are versions Open upgrades in place: version 1 kept
	// every block in badger, which version 2 still reads.
	layoutUpgradable = [][]byte{[]byte("1")}
)

// numStripes is the number of key-striped write locks. Writes to the same
// multihash are serialised so the has-check, quota reservation and write are
// atomic per block; writes to different blocks run in parallel and are
// group-committed by badger.
const numStripes = 256

// Store is a badger-backed block store with a quota and a pin set. It is safe
// for concurrent use. See the package documentation.
type Store struct {
	db         *badger.DB
	packs      *packs
	dir        string
	quota      int64
	used       atomic.Int64
	syncWrites bool
	sizes      sizeCache    // sizes of blocks known to be present
	sections   sectionCache // blocks Section located and checked

	stripes [numStripes]sync.Mutex

	// mu guards db against Close: every operation holds it for reading.
	mu        sync.RWMutex
	closed    bool
	closing   chan struct{} // closed at the start of Close, stops iterators
	closeOnce sync.Once
	bg        sync.WaitGroup
}

// packSyncEvery is how often written pack data is fsynced in the
// background, so that badger (which syncs its own files now and then)
// rarely holds a pointer to pack bytes not yet on disk.
const packSyncEvery = time.Second

func (s *Store) syncLoop() {
	defer s.bg.Done()
	t := time.NewTicker(packSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			_ = s.packs.sync()
		}
	}
}

// Open opens (creating if needed) the store in dir. It fails with an error
// wrapping ErrLocked if another process holds dir.
func Open(dir string, opts ...Option) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: open: empty directory path")
	}
	var cfg config
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(badgerOptions(dir, &cfg))
	if err != nil {
		if isLockErr(err) {
			return nil, fmt.Errorf("%w: %s: stop the other ore process using this directory: %w", ErrLocked, dir, err)
		}
		return nil, wrapIOErr("open "+dir, err)
	}
	s := &Store{db: db, dir: dir, quota: cfg.quota, syncWrites: cfg.syncWrites, closing: make(chan struct{})}
	if err := s.checkLayout(); err != nil {
		_ = db.Close()
		return nil, err
	}
	packSize := int64(256 << 20)
	if cfg.smallMemory {
		packSize = 64 << 20
	}
	if cfg.packSize > 0 {
		packSize = cfg.packSize
	}
	if s.packs, err = openPacks(dir, packSize); err != nil {
		_ = db.Close()
		return nil, err
	}
	used, err := s.scanUsed()
	if err != nil {
		_ = s.packs.close()
		_ = db.Close()
		return nil, err
	}
	s.used.Store(used)
	s.bg.Add(1)
	go s.syncLoop()
	return s, nil
}

// Close flushes and closes the store. It stops running AllKeysChan
// iterations and waits for in-flight operations. Calling it twice is a no-op.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.bg.Wait()
	perr := s.packs.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.dir, err)
	}
	if perr != nil {
		return fmt.Errorf("store: close %s: %w", s.dir, perr)
	}
	return nil
}

// Used returns the bytes of block data stored (the sum of block sizes),
// including writes in flight. It is recomputed from the keys at Open.
func (s *Store) Used() int64 { return s.used.Load() }

// Quota returns the configured quota in bytes; 0 means unlimited.
func (s *Store) Quota() int64 { return s.quota }

// DiskUsage returns the bytes the store takes on disk: pack files (live
// blocks and the dead ones CollectGarbage has not reclaimed yet) and
// badger's tables and logs.
func (s *Store) DiskUsage() int64 {
	if err := s.acquire(); err != nil {
		return 0
	}
	defer s.mu.RUnlock()
	lsm, vlog := s.db.Size()
	return s.packs.diskSize() + lsm + vlog
}

// Dir returns the directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

// Sync flushes all writes to stable storage (fsync).
func (s *Store) Sync() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return s.syncAll()
}

// syncAll fsyncs the packs, then badger: a pointer on disk never names
// pack bytes that are not.
func (s *Store) syncAll() error {
	if err := s.packs.sync(); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return wrapIOErr("sync", err)
	}
	return nil
}

// CollectGarbage reclaims the disk space of deleted blocks: pack files
// more than half dead are compacted, and badger's value log (blocks stored
// before packs, and small ones) is rewritten. Deletes lower Used at once,
// but the space only comes back here; call this periodically (it is I/O
// heavy) from whatever evicts blocks. It returns when there is nothing more
// worth rewriting.
func (s *Store) CollectGarbage(ctx context.Context) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := s.collectPacks(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		default:
		}
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return wrapIOErr("value log gc", err)
		}
	}
}

// acquire takes the read side of mu, failing if the store is closed. The
// caller must RUnlock on success.
func (s *Store) acquire() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// checkLayout stamps a fresh store with the key-layout version and refuses a
// store written with another one.
func (s *Store) checkLayout() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(keyVersion)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set(keyVersion, layoutVersion)
		}
		if err != nil {
			return wrapIOErr("read layout version", err)
		}
		var upgrade bool
		err = item.Value(func(v []byte) error {
			if bytes.Equal(v, layoutVersion) {
				return nil
			}
			for _, old := range layoutUpgradable {
				if bytes.Equal(v, old) {
					upgrade = true
					return nil
				}
			}
			return fmt.Errorf("store: %s has key layout version %q, this build reads %q: use the ore release that wrote it", s.dir, v, layoutVersion)
		})
		if err != nil || !upgrade {
			return err
		}
		return txn.Set(keyVersion, layoutVersion)
	})
}

// scanUsed sums the size records. They are inline in the LSM tree, so this
// reads no block data.
func (s *Store) scanUsed() (int64, error) {
	var used int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixSize, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n, err := itemSize(it.Item())
			if err != nil {
				return err
			}
			used += n
		}
		return nil
	})
	if err != nil {
		return 0, wrapIOErr("scan sizes", err)
	}
	return used, nil
}

// reserve adds n bytes to Used unless that would exceed the quota. It is a
// CAS loop, so concurrent writers can never overshoot together.
func (s *Store) reserve(n int64, what string) error {
	if s.quota <= 0 {
		s.used.Add(n)
		return nil
	}
	for {
		cur := s.used.Load()
		if cur+n > s.quota {
			return fmt.Errorf("%w: %d of %d bytes used, %s %d: raise the quota or free space",
				ErrQuotaExceeded, cur, s.quota, what, n)
		}
		if s.used.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

func (s *Store) stripe(h []byte) *sync.Mutex {
	return &s.stripes[stripeIndex(h)]
}

func stripeIndex(h []byte) int {
	if len(h) == 0 {
		return 0
	}
	return int(h[len(h)-1]) % numStripes // last digest byte: uniformly random
}

func makeKey(prefix, rest []byte) []byte {
	k := make([]byte, 0, len(prefix)+len(rest))
	return append(append(k, prefix...), rest...)
}

func encodeSize(n int64) []byte {
	return binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64), uint64(n))
}

func itemSize(item *badger.Item) (int64, error) {
	var n uint64
	err := item.Value(func(v []byte) error {
		var k int
		n, k = binary.Uvarint(v)
		if k <= 0 || k != len(v) || n > 1<<62 {
			return fmt.Errorf("store: corrupt size record for key %x", item.Key())
		}
		return nil
	})
	return int64(n), err
}

func isLockErr(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "Cannot acquire directory lock")
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}

// wrapIOErr prefixes a badger error and flags a full disk.
func wrapIOErr(op string, err error) error {
	if isDiskFull(err) {
		return fmt.Errorf("%w: %s: free space on the device or lower the quota: %w", ErrDiskFull, op, err)
	}
	if strings.HasPrefix(err.Error(), "store: ") {
		return err
	}
	return fmt.Errorf("store: %s: %w", op, err)
}
