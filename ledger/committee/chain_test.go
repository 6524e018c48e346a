package committee

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
)

var testProposer = func() peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		panic(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return id
}()

func testBlock(h uint64) *ledger.Block {
	b := &ledger.Block{Header: ledger.Header{Version: ledger.Version, Height: h, Epoch: h, Time: int64(h), Proposer: testProposer}}
	b.Header.Prev[0] = byte(h)
	return b
}

func mustGet(t *testing.T, c *chain, h uint64) {
	t.Helper()
	b, err := c.get(h)
	if err != nil {
		t.Fatalf("block %d: %v", h, err)
	}
	if b.Hash() != testBlock(h).Hash() {
		t.Fatalf("block %d: another block came back", h)
	}
}

// chainWith opens a chain in dir and stores blocks 1 to n in it.
func chainWith(t *testing.T, dir string, n uint64) *chain {
	t.Helper()
	c, err := openChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	for h := uint64(1); h <= n; h++ {
		if err := c.put(testBlock(h), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestChainCutsTheTornTail: a body appended when the process died before
// bolt recorded it is cut off on open, and the next block takes its place.
func TestChainCutsTheTornTail(t *testing.T) {
	dir := t.TempDir()
	c := chainWith(t, dir, 3)
	end := c.end
	c.close()
	f, err := os.OpenFile(filepath.Join(dir, "chain.dat"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a block"))
	f.Close()
	if c, err = openChain(dir); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if fi, _ := os.Stat(filepath.Join(dir, "chain.dat")); fi.Size() != end || c.height() != 3 {
		t.Fatalf("chain.dat holds %d bytes (want %d), height %d", fi.Size(), end, c.height())
	}
	if err := c.put(testBlock(4), nil); err != nil {
		t.Fatal(err)
	}
	for h := uint64(1); h <= 4; h++ {
		mustGet(t, c, h)
	}
}

// TestChainRefusesDamage: a flipped byte in a body is named, not decoded;
// a body file shorter than its index refuses to open.
func TestChainRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	c := chainWith(t, dir, 2)
	dat := filepath.Join(dir, "chain.dat")
	data, _ := os.ReadFile(dat)
	data[len(data)-1] ^= 1
	if err := os.WriteFile(dat, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, 1)
	if _, err := c.get(2); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a damaged body read as %v", err)
	}
	c.close()
	if err := os.Truncate(dat, 10); err != nil {
		t.Fatal(err)
	}
	if c, err := openChain(dir); err == nil {
		c.close()
		t.Fatal("a chain whose bodies are cut short opened")
	} else if !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("unclear error: %v", err)
	}
}

// TestChainReadsOlderStores: bodies a store kept in bolt before chain.dat
// existed still read, and count for the height.
func TestChainReadsOlderStores(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "chain.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketBlocks)
		if err != nil {
			return err
		}
		for h := uint64(1); h <= 2; h++ {
			if err := bk.Put(heightKey(h), testBlock(h).Marshal()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	c, err := openChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if c.height() != 2 {
		t.Fatalf("height %d, want 2", c.height())
	}
	if err := c.put(testBlock(3), nil); err != nil {
		t.Fatal(err)
	}
	for h := uint64(1); h <= 3; h++ {
		mustGet(t, c, h)
	}
	if hd, err := c.head(1); err != nil || hd.Header.Height != 1 {
		t.Fatalf("head of an older block: %v", err)
	}
}

// stored reports whether bolt indexes block h (written, not pending).
func stored(t *testing.T, c *chain, h uint64) bool {
	t.Helper()
	var ok bool
	if err := c.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketIndex).Get(heightKey(h)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestChainWritesBehind: blocks put are read at once, signatures added
// while a block waits to be written are written with it, a snapshot is
// persisted only after every block put is written, and close writes what
// is left.
func TestChainWritesBehind(t *testing.T) {
	dir := t.TempDir()
	c, err := openChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := testkit.NewParty(t).Key
	const n = 40
	for h := uint64(1); h <= n; h++ {
		if err := c.put(testBlock(h), nil); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, h)
		if c.height() != h {
			t.Fatalf("height %d after putting %d", c.height(), h)
		}
		hd, err := c.head(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := hd.Sign(k); err != nil {
			t.Fatal(err)
		}
		if err := c.putHead(hd); err != nil {
			t.Fatal(err)
		}
	}
	snap := heightSnapshot{height: n, chain: c}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v", err)
	}
	for h := uint64(1); h <= n; h++ {
		if !stored(t, c, h) {
			t.Fatalf("snapshot persisted before block %d was written", h)
		}
	}
	if err := c.put(testBlock(n+1), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if c, err = openChain(dir); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if c.height() != n+1 {
		t.Fatalf("height %d after reopening, want %d", c.height(), n+1)
	}
	for h := uint64(1); h <= n+1; h++ {
		mustGet(t, c, h)
		hd, err := c.head(h)
		if err != nil {
			t.Fatal(err)
		}
		want := 1 // signed while it waited to be written
		if h > n {
			want = 0
		}
		if len(hd.Sigs) != want {
			t.Fatalf("block %d has %d signatures, want %d", h, len(hd.Sigs), want)
		}
	}
}

// TestChainWriteFailureSticks: once a write fails, put refuses every later
// block with that error, and a snapshot is not persisted.
func TestChainWriteFailureSticks(t *testing.T) {
	c, err := openChain(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.bodies.Close() // every write now fails
	if err := c.put(testBlock(1), nil); err != nil {
		t.Fatal(err) // the write happens later
	}
	if err := c.wait(); err == nil || !strings.Contains(err.Error(), "store block 1") {
		t.Fatalf("wait after a failed write: %v", err)
	}
	if err := c.put(testBlock(2), nil); err == nil {
		t.Fatal("put took a block after a failed write")
	}
	sink := &memSink{}
	if err := (heightSnapshot{height: 1, chain: c}).Persist(sink); err == nil || !sink.cancelled {
		t.Fatalf("a snapshot over an unwritten block persisted: %v", err)
	}
	_ = c.close()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	data              []byte
	closed, cancelled bool
}

func (s *memSink) Write(p []byte) (int, error) { s.data = append(s.data, p...); return len(p), nil }
func (s *memSink) Close() error                { s.closed = true; return nil }
func (s *memSink) ID() string                  { return "mem" }
func (s *memSink) Cancel() error               { s.cancelled = true; return nil }

// TestEarlySignaturesAreBounded: signatures for heights far above the
// chain are not kept (repair brings those blocks final), so a member that
// signs every height it likes cannot grow the table of early signatures.
// Every height used to be kept.
func TestEarlySignaturesAreBounded(t *testing.T) {
	members := make([]ledger.Member, 3)
	c := &Committee{chain: chainWith(t, t.TempDir(), 3), pending: map[uint64][]ledger.Signature{},
		cfg: Config{Genesis: &ledger.Genesis{Committee: members}}}
	defer c.chain.close()
	for h := uint64(4); h < 4+10*maxEarlyHeights; h++ {
		c.addSig(&sigMsg{height: h, sig: ledger.Signature{Signer: testProposer}})
	}
	if n := len(c.pending); n != maxEarlyHeights {
		t.Fatalf("signatures kept for %d heights above a chain of 3, want %d", n, maxEarlyHeights)
	}
	if c.pending[3+maxEarlyHeights] == nil || c.pending[4+maxEarlyHeights] != nil {
		t.Fatal("the heights kept are not those just above the chain")
	}
}
