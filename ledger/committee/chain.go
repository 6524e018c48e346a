package committee

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orecdn/ore/ledger"
)

// The store is chain.db (bolt) and chain.dat. chain.dat holds the block
// bodies (header and transactions, as the state machine applied them),
// appended one after the other; bolt holds, by height, where each body is
// ("index": offset, length, CRC-32C) and each header with the signatures
// gathered so far ("heads": a few hundred bytes, rewritten as signatures
// arrive). A body is megabytes: appended to a file it costs a write, where
// bolt would copy it through its pages (several times slower). Stores
// written before chain.dat hold bodies in bolt's "blocks" bucket, and
// before "heads" the signatures with them; get reads those as well.
var (
	bucketBlocks = []byte("blocks")
	bucketHeads  = []byte("heads")
	bucketIndex  = []byte("index")
)

// chain is the committee's durable block store.
//
// put hands a block to a writer goroutine and returns: a block of tens of
// thousands of receipts takes a write and two syncs, which the state
// machine (and so the member's signature, and the block's finality) need
// not wait for. Until it is written the block is served from memory. This
// costs no durability: a block is applied only once its Raft log entry is
// on disk, Raft keeps that entry until a snapshot covers it, and a
// snapshot is persisted only after every block below it is written
// (wait). A member that dies with blocks unwritten applies their entries
// again when it restarts.
type chain struct {
	db     *bolt.DB
	bodies *os.File
	mu     sync.Mutex // store's append
	end    int64      // chain.dat's length: where the next body goes

	pmu     sync.Mutex
	pending map[uint64]*unwritten // applied, not written yet
	written *sync.Cond            // on pmu: a pending block was written
	failed  error                 // a write that failed: every later put fails with it
	queue   chan *unwritten
	done    chan struct{} // the writer stopped
}

// unwritten is a block put but not written yet.
type unwritten struct {
	b    *ledger.Block // header and transactions
	body []byte
	sigs []ledger.Signature
	ver  int // bumped by putHead
}

// maxUnwritten bounds the blocks put and not yet written: put waits
// beyond it.
const maxUnwritten = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openChain opens the store in dir. A body written when the process died
// before its index entry is cut off chain.dat.
func openChain(dir string) (*chain, error) {
	path := filepath.Join(dir, "chain.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("committee: open chain %s (another coordinator running on it?): %w", path, err)
	}
	c := &chain{db: db, pending: make(map[uint64]*unwritten), queue: make(chan *unwritten, maxUnwritten), done: make(chan struct{})}
	c.written = sync.NewCond(&c.pmu)
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketBlocks, bucketHeads, bucketIndex} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketIndex).ForEach(func(_, v []byte) error {
			off, n, _, err := decodeIndex(v)
			if err != nil {
				return err
			}
			c.end = max(c.end, off+n)
			return nil
		})
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("committee: init chain: %w", err)
	}
	dat := filepath.Join(dir, "chain.dat")
	if c.bodies, err = os.OpenFile(dat, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("committee: open chain bodies: %w", err)
	}
	fi, err := c.bodies.Stat()
	if err == nil && fi.Size() < c.end {
		err = fmt.Errorf("%s holds %d bytes, its index needs %d: the store is damaged; remove %s and chain.db to sync the chain from the other members", dat, fi.Size(), c.end, dat)
	} else if err == nil && fi.Size() > c.end {
		err = c.bodies.Truncate(c.end)
	}
	if err != nil {
		c.closeFiles()
		return nil, fmt.Errorf("committee: open chain: %w", err)
	}
	go c.writer()
	return c, nil
}

func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

func encodeIndex(off, n int64, sum uint32) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(off))
	v = binary.BigEndian.AppendUint32(v, uint32(n))
	return binary.BigEndian.AppendUint32(v, sum)
}

func decodeIndex(v []byte) (off, n int64, sum uint32, err error) {
	if len(v) != 16 {
		return 0, 0, 0, fmt.Errorf("committee: chain index entry of %d bytes, want 16", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint32(v[8:])), binary.BigEndian.Uint32(v[12:]), nil
}

// put stores block b, whose encoding without signatures is body (nil:
// encode it here), and its signatures. It returns before they are written
// (see chain); an error is a write of an earlier block that failed, after
// which the store takes nothing more.
func (c *chain) put(b *ledger.Block, body []byte) error {
	if body == nil {
		body = (&ledger.Block{Header: b.Header, Txs: b.Txs}).Marshal()
	}
	u := &unwritten{b: &ledger.Block{Header: b.Header, Txs: b.Txs}, body: body, sigs: slices.Clone(b.Sigs)}
	c.pmu.Lock()
	if err := c.failed; err != nil {
		c.pmu.Unlock()
		return err
	}
	c.pending[b.Header.Height] = u
	c.pmu.Unlock()
	c.queue <- u
	return nil
}

// writer writes the blocks put, in order.
func (c *chain) writer() {
	defer close(c.done)
	for u := range c.queue {
		h := u.b.Header.Height
		c.pmu.Lock()
		err, ver, head := c.failed, u.ver, u.head()
		c.pmu.Unlock()
		if err == nil {
			err = c.store(h, u.body, head)
		}
		c.pmu.Lock()
		// Signatures that came while the block was being written.
		for err == nil && u.ver != ver {
			ver, head = u.ver, u.head()
			c.pmu.Unlock()
			err = c.storeHead(h, head)
			c.pmu.Lock()
		}
		if err != nil && c.failed == nil {
			c.failed = fmt.Errorf("committee: store block %d: %w", h, err)
		}
		delete(c.pending, h)
		c.written.Broadcast()
		c.pmu.Unlock()
	}
}

// head encodes the block's header with its signatures (pmu held).
func (u *unwritten) head() []byte {
	return (&ledger.Block{Header: u.b.Header, Sigs: u.sigs}).Marshal()
}

// wait returns when every block put so far is written, or a write failed.
func (c *chain) wait() error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for len(c.pending) > 0 && c.failed == nil {
		c.written.Wait()
	}
	return c.failed
}

// store appends a body to chain.dat and syncs it before bolt records
// where it is, with the head.
func (c *chain) store(height uint64, body, head []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	off := c.end
	if _, err := c.bodies.WriteAt(body, off); err != nil {
		return fmt.Errorf("write block body: %w", err)
	}
	if err := c.bodies.Sync(); err != nil {
		return fmt.Errorf("sync block bodies: %w", err)
	}
	if err := c.db.Update(func(tx *bolt.Tx) error {
		k := heightKey(height)
		if err := tx.Bucket(bucketIndex).Put(k, encodeIndex(off, int64(len(body)), crc32.Checksum(body, castagnoli))); err != nil {
			return err
		}
		return tx.Bucket(bucketHeads).Put(k, head)
	}); err != nil {
		return err // the body written past end is overwritten by the next store
	}
	c.end = off + int64(len(body))
	return nil
}

func (c *chain) storeHead(height uint64, head []byte) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeads).Put(heightKey(height), head)
	})
}

// putHead stores the signatures of a stored block's header.
func (c *chain) putHead(h *ledger.Block) error {
	c.pmu.Lock()
	if u := c.pending[h.Header.Height]; u != nil {
		u.sigs = slices.Clone(h.Sigs)
		u.ver++ // the writer stores them
		c.pmu.Unlock()
		return nil
	}
	c.pmu.Unlock()
	return c.storeHead(h.Header.Height, (&ledger.Block{Header: h.Header, Sigs: h.Sigs}).Marshal())
}

// unwrittenBlock returns a pending block with its signatures, or nil.
func (c *chain) unwrittenBlock(h uint64, txs bool) *ledger.Block {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	u := c.pending[h]
	if u == nil {
		return nil
	}
	b := &ledger.Block{Header: u.b.Header, Sigs: slices.Clone(u.sigs)}
	if txs {
		b.Txs = u.b.Txs
	}
	return b
}

var errNoBlock = errors.New("committee: no such block")

// get returns a stored block with its signatures.
func (c *chain) get(h uint64) (*ledger.Block, error) {
	if b := c.unwrittenBlock(h, true); b != nil {
		return b, nil
	}
	var data, head, at []byte
	if err := c.db.View(func(tx *bolt.Tx) error {
		k := heightKey(h)
		if v := tx.Bucket(bucketIndex).Get(k); v != nil {
			at = append([]byte(nil), v...)
		} else if v := tx.Bucket(bucketBlocks).Get(k); v != nil {
			data = append([]byte(nil), v...)
		} else {
			return errNoBlock
		}
		head = append([]byte(nil), tx.Bucket(bucketHeads).Get(k)...)
		return nil
	}); err != nil {
		return nil, err
	}
	if at != nil {
		off, n, sum, err := decodeIndex(at)
		if err != nil {
			return nil, err
		}
		data = make([]byte, n)
		if _, err := c.bodies.ReadAt(data, off); err != nil {
			return nil, fmt.Errorf("committee: read stored block %d: %w", h, err)
		}
		if crc32.Checksum(data, castagnoli) != sum {
			return nil, fmt.Errorf("committee: stored block %d is damaged (checksum): remove chain.dat and chain.db to sync the chain from the other members", h)
		}
	}
	b, err := ledger.UnmarshalBlock(data)
	if err != nil {
		return nil, fmt.Errorf("committee: stored block %d is damaged: %w", h, err)
	}
	if len(head) > 0 {
		hb, err := ledger.UnmarshalBlock(head)
		if err != nil || hb.Hash() != b.Hash() {
			return nil, fmt.Errorf("committee: stored signatures of block %d are damaged: %v", h, err)
		}
		for _, s := range hb.Sigs {
			if err := b.AddSignature(s); err != nil {
				return nil, fmt.Errorf("committee: stored signatures of block %d: %w", h, err)
			}
		}
	}
	return b, nil
}

// head returns a stored block's header and signatures, without its
// transactions.
func (c *chain) head(h uint64) (*ledger.Block, error) {
	if b := c.unwrittenBlock(h, false); b != nil {
		return b, nil
	}
	var head []byte
	if err := c.db.View(func(tx *bolt.Tx) error {
		head = append([]byte(nil), tx.Bucket(bucketHeads).Get(heightKey(h))...)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(head) == 0 {
		b, err := c.get(h) // none stored, or a store from before the split
		if err != nil {
			return nil, err
		}
		return &ledger.Block{Header: b.Header, Sigs: b.Sigs}, nil
	}
	hb, err := ledger.UnmarshalBlock(head)
	if err != nil {
		return nil, fmt.Errorf("committee: stored signatures of block %d are damaged: %w", h, err)
	}
	return hb, nil
}

// height is the highest stored block (0: none).
func (c *chain) height() uint64 {
	var h uint64
	_ = c.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketBlocks, bucketIndex} {
			if k, _ := tx.Bucket(name).Cursor().Last(); k != nil {
				h = max(h, binary.BigEndian.Uint64(k))
			}
		}
		return nil
	})
	c.pmu.Lock()
	for ph := range c.pending {
		h = max(h, ph)
	}
	c.pmu.Unlock()
	return h
}

// replay rebuilds the state from genesis through every stored block.
func (c *chain) replay(g *ledger.Genesis) (*ledger.State, error) {
	if err := c.wait(); err != nil {
		return nil, err
	}
	s, err := ledger.NewState(g)
	if err != nil {
		return nil, err
	}
	top := c.height()
	for h := uint64(1); h <= top; h++ {
		b, err := c.get(h)
		if err != nil {
			return nil, fmt.Errorf("committee: replay block %d: %w", h, err)
		}
		if s, err = ledger.Apply(s, b); err != nil {
			return nil, fmt.Errorf("committee: replay block %d: %w", h, err)
		}
	}
	return s, nil
}

// close writes the blocks put and closes the files.
func (c *chain) close() error {
	close(c.queue)
	<-c.done
	c.pmu.Lock()
	err := c.failed
	c.pmu.Unlock()
	return errors.Join(err, c.closeFiles())
}

func (c *chain) closeFiles() error {
	var errs []error
	if c.bodies != nil {
		errs = append(errs, c.bodies.Close())
	}
	return errors.Join(append(errs, c.db.Close())...)
}
