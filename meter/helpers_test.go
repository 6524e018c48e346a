package meter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	format "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: make(map[string][]byte)} }

func (s *memStore) GetMeta(_ context.Context, key []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	return v, ok, nil
}

func (s *memStore) PutMeta(_ context.Context, key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(key)] = append([]byte(nil), value...)
	return nil
}

func (s *memStore) ScanMeta(_ context.Context, prefix []byte, fn func(key, value []byte) error) error {
	s.mu.Lock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// errGone is a server the direct transport cannot reach.
var errGone = errors.New("test: no route to the server")

// direct is a Transport that hands receipts to Servers in this process,
// through the wire encoding of answers (so a refusal reaches the client
// as a *pod.RefusedError with its reason code, as over a stream).
type direct struct {
	mu      sync.Mutex
	servers map[peer.ID]*Server
}

func (d *direct) add(s *Server) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.servers == nil {
		d.servers = make(map[peer.ID]*Server)
	}
	d.servers[s.self] = s
}

func (d *direct) RoundTrip(ctx context.Context, r *pod.Receipt) (*pod.Receipt, error) {
	d.mu.Lock()
	s := d.servers[r.Server]
	d.mu.Unlock()
	if s == nil {
		return nil, errGone
	}
	var req bytes.Buffer
	if err := pod.WriteRequest(&req, r); err != nil {
		return nil, err
	}
	got, err := pod.ReadRequest(&req)
	if err == nil {
		err = s.Countersign(ctx, r.Client, got)
	}
	var resp bytes.Buffer
	if err := pod.WriteResponse(&resp, got, err); err != nil {
		return nil, err
	}
	return pod.ReadResponse(&resp)
}

// peerSet is Peers: the peers in it are connected.
type peerSet struct {
	mu sync.Mutex
	m  map[peer.ID]bool
}

func (p *peerSet) Connected(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[id]
}

func (p *peerSet) connect(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[peer.ID]bool)
	}
	p.m[id] = true
}

var testParams = pod.Params{Network: "ore-meter-test", GenesisTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	EpochLength: time.Minute, MaxSkew: 3}

// rig is a client and its own world: a clock, a transport to servers in
// this process, goroutines that end with the test.
type rig struct {
	t     testing.TB
	clock *testkit.Clock
	net   *direct
	ctx   context.Context
	wg    sync.WaitGroup
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, clock: testkit.NewClock(), net: &direct{}, ctx: ctx}
	t.Cleanup(func() { cancel(); r.wg.Wait() })
	r.clock.Freeze()
	return r
}

// config is a Config on the rig's clock for a new party.
func (r *rig) config(p testkit.Party) Config {
	return Config{Params: testParams, Key: p.Key, Store: newMemStore(), Clock: r.clock.Now, Transport: r.net,
		Blocks: blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore())),
		Go: func(f func(context.Context)) {
			r.wg.Add(1)
			go func() { defer r.wg.Done(); f(r.ctx) }()
		}}
}

func (r *rig) client(opts ...func(*Config)) *Client {
	r.t.Helper()
	cfg := r.config(testkit.NewParty(r.t))
	for _, o := range opts {
		o(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) server(opts ...func(*Config)) *Server {
	r.t.Helper()
	cfg := r.config(testkit.NewParty(r.t))
	for _, o := range opts {
		o(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.net.add(s)
	return s
}

func (r *rig) epoch() uint64 { return testParams.EpochAt(r.clock.Now()) }

func rawBlock(t testing.TB, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// queued reports whether a receipt for a delivery of server was queued
// (it may already be on its way: then the sender exists and its key is
// not dirty).
func queued(c *Client, server peer.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.senders[server] != nil
}

func (c *Client) delivery(server peer.ID, root cid.Cid, epoch uint64) *delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deliveries[pod.Key{Server: server, Client: c.self, Root: string(root.Bytes()), Epoch: epoch}]
}

// flushReturns runs c.Flush for root with no timeout of its own and
// reports whether it returned within d: only the end of the receipt
// exchanges it waits on can end its wait.
func flushReturns(t *testing.T, c *Client, root cid.Cid, d time.Duration) bool {
	t.Helper()
	c.mu.Lock()
	c.flushWait = time.Hour
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Flush(context.Background(), root)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// anyCID is a block's CID for gate calls that only count bytes.
var anyCID = cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")

// putDAG stores in s's blocks a dag-pb node linking to children (with
// their sizes, as an importer writes them), and the children; it returns
// the node.
func putDAG(t testing.TB, s *Server, children ...blocks.Block) blocks.Block {
	t.Helper()
	nd := merkledag.NodeWithData([]byte("a test node"))
	for i, c := range children {
		tsize := uint64(len(c.RawData())) // the link's cumulative size: the child's block and all below it
		if c.Cid().Prefix().Codec == cid.DagProtobuf {
			pn, err := merkledag.DecodeProtobufBlock(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range pn.Links() {
				tsize += l.Size
			}
		}
		if err := nd.AddRawLink(fmt.Sprint(i), &format.Link{Cid: c.Cid(), Size: tsize}); err != nil {
			t.Fatal(err)
		}
	}
	bs := s.dag.blocks.(blockstore.Blockstore)
	if err := bs.PutMany(context.Background(), append([]blocks.Block{nd}, children...)); err != nil {
		t.Fatal(err)
	}
	return nd
}
