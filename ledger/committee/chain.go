package committee

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orecdn/ore/ledger"
)

var bucketBlocks = []byte("blocks")

// chain is the committee's durable block store: height -> block (with the
// signatures gathered so far).
type chain struct {
	db *bolt.DB
}

func openChain(path string) (*chain, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("committee: open chain %s (another coordinator running on it?): %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketBlocks)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("committee: init chain: %w", err)
	}
	return &chain{db: db}, nil
}

func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

func (c *chain) put(b *ledger.Block) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put(heightKey(b.Header.Height), b.Marshal())
	})
}

var errNoBlock = errors.New("committee: no such block")

func (c *chain) get(h uint64) (*ledger.Block, error) {
	var data []byte
	if err := c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlocks).Get(heightKey(h))
		if v == nil {
			return errNoBlock
		}
		data = append([]byte(nil), v...)
		return nil
	}); err != nil {
		return nil, err
	}
	b, err := ledger.UnmarshalBlock(data)
	if err != nil {
		return nil, fmt.Errorf("committee: stored block %d is damaged: %w", h, err)
	}
	return b, nil
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
