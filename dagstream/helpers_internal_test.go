package dagstream

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// newStore is an empty in-memory block store.
func newStore() blockstore.Blockstore {
	return blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
}

// testFile adds size random bytes as a UnixFS file of 4 KiB raw leaves, 8
// links a node (a few levels deep), and returns the bytes and the root.
func testFile(t *testing.T, bs blockstore.Blockstore, size int, seed uint64) ([]byte, cid.Cid) {
	t.Helper()
	return testFileChunked(t, bs, size, seed, 4096, 8)
}

// testFileChunked is testFile with leaves of chunk bytes, links a node.
func testFileChunked(t testing.TB, bs blockstore.Blockstore, size int, seed uint64, chunk int64, links int) ([]byte, cid.Cid) {
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	dag := merkledag.NewDAGService(blockservice.New(bs, nil))
	prefix, err := merkledag.PrefixForCidVersion(1)
	if err != nil {
		t.Fatal(err)
	}
	params := helpers.DagBuilderParams{Maxlinks: links, RawLeaves: true, CidBuilder: prefix, Dagserv: dag}
	db, err := params.New(chunker.NewSizeSplitter(bytes.NewReader(data), chunk))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return data, nd.Cid()
}

// walkOrder is the blocks of req's DAG in bs, in the order a server sends them.
func walkOrder(t *testing.T, bs blockstore.Blockstore, req Request) []blocks.Block {
	t.Helper()
	w := newWalker(req, 0)
	var out []blocks.Block
	for {
		it, ok, err := w.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		b, err := bs.Get(context.Background(), it.c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.visited(it, b.RawData()); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// newHost is a libp2p host on loopback TCP, closed with the test.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// pair is a client host connected to a server host.
func pair(t *testing.T) (client, server host.Host) {
	t.Helper()
	client, server = newHost(t), newHost(t)
	if err := client.Connect(context.Background(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// memSink keeps what a client stored, in order.
type memSink struct {
	mu  sync.Mutex
	bs  []blocks.Block
	err error // returned by Put once set
}

func (s *memSink) Put(_ context.Context, bs []blocks.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.bs = append(s.bs, bs...)
	return nil
}

func (s *memSink) blocks() []blocks.Block {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]blocks.Block(nil), s.bs...)
}

// sameBlocks fails t unless got are want, in order.
func sameBlocks(t *testing.T, got, want []blocks.Block) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d blocks, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].Cid().Equals(want[i].Cid()) || !bytes.Equal(got[i].RawData(), want[i].RawData()) {
			t.Fatalf("block %d is %s, want %s", i, got[i].Cid(), want[i].Cid())
		}
	}
}

func always(context.Context, cid.Cid) bool { return true }

var errSinkFull = errors.New("sink full")
