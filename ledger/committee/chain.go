package committee

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
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
type chain struct {
	db     *bolt.DB
	bodies *os.File
	mu     sync.Mutex // put's append
	end    int64      // chain.dat's length: where the next body goes
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openChain opens the store in dir. A body written when the process died
// before its index entry is cut off chain.dat.
func openChain(dir string) (*chain, error) {
	path := filepath.Join(dir, "chain.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("committee: open chain %s (another coordinator running on it?): %w", path, err)
	}
	c := &chain{db: db}
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
		c.close()
		return nil, fmt.Errorf("committee: open chain: %w", err)
	}
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
// encode it here), and its signatures: the body is appended to chain.dat
// and synced before bolt records where it is.
func (c *chain) put(b *ledger.Block, body []byte) error {
	if body == nil {
		body = (&ledger.Block{Header: b.Header, Txs: b.Txs}).Marshal()
	}
	head := (&ledger.Block{Header: b.Header, Sigs: b.Sigs}).Marshal()
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
		k := heightKey(b.Header.Height)
		if err := tx.Bucket(bucketIndex).Put(k, encodeIndex(off, int64(len(body)), crc32.Checksum(body, castagnoli))); err != nil {
			return err
		}
		return tx.Bucket(bucketHeads).Put(k, head)
	}); err != nil {
		return err // the body written past end is overwritten by the next put
	}
	c.end = off + int64(len(body))
	return nil
}

// putHead stores the signatures of a stored block's header.
func (c *chain) putHead(h *ledger.Block) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeads).Put(heightKey(h.Header.Height), (&ledger.Block{Header: h.Header, Sigs: h.Sigs}).Marshal())
	})
}

var errNoBlock = errors.New("committee: no such block")

// get returns a stored block with its signatures.
func (c *chain) get(h uint64) (*ledger.Block, error) {
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
	return h
}

// replay rebuilds the state from genesis through every stored block.
func (c *chain) replay(g *ledger.Genesis) (*ledger.State, error) {
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

func (c *chain) close() error {
	var errs []error
	if c.bodies != nil {
		errs = append(errs, c.bodies.Close())
	}
	return errors.Join(append(errs, c.db.Close())...)
}
