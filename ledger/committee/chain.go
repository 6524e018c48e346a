package committee

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orecdn/ore/ledger"
)

// Two buckets by height: "blocks" holds each block as the state machine
// applied it (header and transactions, written once), "heads" its header
// with the signatures gathered so far (a few hundred bytes, rewritten as
// signatures arrive). Stores written before the split hold signatures
// inside "blocks" and no "heads"; get merges both.
var (
	bucketBlocks = []byte("blocks")
	bucketHeads  = []byte("heads")
)

// chain is the committee's durable block store.
type chain struct {
	db *bolt.DB
}

func openChain(path string) (*chain, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("committee: open chain %s (another coordinator running on it?): %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketBlocks); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketHeads)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("committee: init chain: %w", err)
	}
	return &chain{db: db}, nil
}

func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

// put stores block b, whose encoding without signatures is body (nil:
// encode it here), and its signatures.
func (c *chain) put(b *ledger.Block, body []byte) error {
	if body == nil {
		body = (&ledger.Block{Header: b.Header, Txs: b.Txs}).Marshal()
	}
	head := (&ledger.Block{Header: b.Header, Sigs: b.Sigs}).Marshal()
	return c.db.Update(func(tx *bolt.Tx) error {
		k := heightKey(b.Header.Height)
		if err := tx.Bucket(bucketBlocks).Put(k, body); err != nil {
			return err
		}
		return tx.Bucket(bucketHeads).Put(k, head)
	})
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
	var data, head []byte
	if err := c.db.View(func(tx *bolt.Tx) error {
		k := heightKey(h)
		v := tx.Bucket(bucketBlocks).Get(k)
		if v == nil {
			return errNoBlock
		}
		data = append([]byte(nil), v...)
		head = append([]byte(nil), tx.Bucket(bucketHeads).Get(k)...)
		return nil
	}); err != nil {
		return nil, err
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
		if k, _ := tx.Bucket(bucketBlocks).Cursor().Last(); k != nil {
			h = binary.BigEndian.Uint64(k)
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

func (c *chain) close() error { return c.db.Close() }
