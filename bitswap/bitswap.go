package bitswap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bs "github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/client"
	bsmsg "github.com/ipfs/boxo/bitswap/message"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// Hooks are called for every block that crosses the exchange. They run on
// bitswap's message path: they must be fast and must not block.
type Hooks struct {
	// BlockReceived is called for each block received from a peer. The block's
	// CID was verified against its bytes when the message was decoded.
	BlockReceived func(from peer.ID, b blocks.Block)
	// BlockSent is called for each block sent to a peer (after the send
	// gate let it through and the message was written).
	BlockSent func(to peer.ID, b blocks.Block)
}

// RequestFilter decides whether the server answers peer p's want for c.
// Returning false makes the box act as if it did not have the block.
type RequestFilter func(p peer.ID, c cid.Cid) bool

type config struct {
	hooks               Hooks
	filter              RequestFilter
	gate                Gate
	maxOutstandingBytes int
	uploadLimit         int64
	spreadHold          time.Duration
	spreadSeed          func(cid.Cid) bool
}

// Option configures an Exchange.
type Option func(*config) error

// WithHooks sets the per-block hooks.
func WithHooks(h Hooks) Option {
	return func(c *config) error {
		c.hooks = h
		return nil
	}
}

// WithRequestFilter sets the server's request filter.
func WithRequestFilter(f RequestFilter) Option {
	return func(c *config) error {
		if c.filter != nil {
			return errors.New("bitswap: request filter set twice")
		}
		c.filter = f
		return nil
	}
}

// WithMaxOutstandingBytesPerPeer overrides DefaultMaxOutstandingBytesPerPeer.
func WithMaxOutstandingBytesPerPeer(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("bitswap: outstanding bytes per peer must be positive, got %d", n)
		}
		c.maxOutstandingBytes = n
		return nil
	}
}

// Exchange is a box's bitswap client and server.
type Exchange struct {
	bs        *bs.Bitswap
	net       *gatedNetwork
	ctx       context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex // guards closed and wg.Add
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	// Blocks another path than bitswap brought (CountReceived).
	otherBlocks, otherData atomic.Uint64
}

var _ exchange.SessionExchange = (*Exchange)(nil)

// New starts bitswap on h, serving blocks from bstore and finding providers
// with finder (nil: only ask connected peers).
func New(ctx context.Context, h host.Host, finder routing.ContentDiscovery, bstore blockstore.Blockstore, opts ...Option) (*Exchange, error) {
	cfg := config{maxOutstandingBytes: DefaultMaxOutstandingBytesPerPeer}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	bopts := []bs.Option{
		bs.MaxOutstandingBytesPerPeer(cfg.maxOutstandingBytes),
		bs.EngineTaskWorkerCount(DefaultEngineTaskWorkers),
		bs.EngineBlockstoreWorkerCount(DefaultEngineBlockstoreWorkers),
		bs.WithTargetMessageSize(DefaultTargetMessageSize),
		bs.ProviderSearchDelay(DefaultProviderSearchDelay),
		// No DONT_HAVE answers: a box that lacks a block keeps the want
		// and says HAVE when the block arrives. In a crowd every box lacks
		// everything at first, and boxo drops a peer from a session after
		// 16 DONT_HAVEs in a row, forgetting what it announced since; the
		// asker then waited for the origin (measured: 8 of 50 fetches
		// stalled with 2 MiB/s uplinks). A want-block to a box that turns
		// out not to have the block times out instead (see
		// DefaultMinDontHaveTimeout).
		bs.SetSendDontHaves(false),
		bs.WithClientOption(client.WithDontHaveTimeoutConfig(dontHaveTimeouts())),
		bs.MaxQueuedWantlistEntriesPerPeer(DefaultMaxWantlistPerPeer),
		// Broadcast wants (a session's first, and those no session peer
		// has) go to the peers that sent this box blocks before, to peered
		// and local peers, and to DefaultBroadcastRandomPeers others, not
		// to every connected peer: every box that gets a want keeps it and
		// says HAVE when the block arrives, then gets the session's
		// want-haves for every later block and answers each. Sent to every
		// connection, a crowd's control traffic grew with the square of its
		// size (see DefaultBroadcastRandomPeers). node protects the sources
		// its fetches dial with boxo's peering tag, so they get the
		// broadcasts.
		bs.WithClientOption(client.BroadcastControlEnable(true)),
		bs.WithClientOption(client.BroadcastControlMaxRandomPeers(DefaultBroadcastRandomPeers)),
	}
	if cfg.hooks.BlockReceived != nil {
		bopts = append(bopts, bs.WithTracer(tracer{cfg.hooks}))
	}
	if cfg.filter != nil {
		bopts = append(bopts, bs.WithPeerBlockRequestFilter(func(p peer.ID, c cid.Cid) bool { return cfg.filter(p, c) }))
	}
	var cd routing.ContentDiscovery
	if finder != nil {
		cd = finder
	}
	e := &Exchange{net: newGatedNetwork(bsnet.NewFromIpfsHost(h), cfg.gate, cfg.hooks.BlockSent, bstore)}
	e.net.up = newUplink(cfg.uploadLimit)
	e.net.spread = newSpreader(cfg.spreadHold, cfg.spreadSeed)
	e.ctx, e.cancel = context.WithCancel(ctx)
	if e.net.spread != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.net.releaseSpread(e.ctx, min(cfg.spreadHold/8, spreadTick))
		}()
	}
	e.bs = bs.New(ctx, e.net, cd, bstore, bopts...)
	return e, nil
}

// Release sends, in the background, the blocks the gate held back for p
// that it now allows. Call it when the gate's verdict for p may have
// changed (a receipt arrived).
func (e *Exchange) Release(p peer.ID) {
	if e.net.gate == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.net.release(e.ctx, p)
	}()
}

// WaitUplink blocks until n more bytes may leave under the upload limit
// (WithUploadLimit; at once without one), or ctx ends. Other senders of
// blocks than bitswap (the bulk DAG stream) wait here, so the limit holds
// over everything the box uploads.
func (e *Exchange) WaitUplink(ctx context.Context, n int) error {
	return e.net.up.wait(ctx, n)
}

// GetBlock fetches one block from the network.
func (e *Exchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return e.bs.GetBlock(ctx, c)
}

// GetBlocks fetches blocks from the network; the channel closes when all
// arrived or ctx ends.
func (e *Exchange) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	return e.bs.GetBlocks(ctx, cs)
}

// NewSession starts a session: wants of one logical fetch go to the peers
// that answered earlier wants of that fetch first.
func (e *Exchange) NewSession(ctx context.Context) exchange.Fetcher {
	return e.bs.NewSession(ctx)
}

// NotifyNewBlocks tells the exchange that blocks were stored locally, so
// waiting wants of other peers are answered.
func (e *Exchange) NotifyNewBlocks(ctx context.Context, blks ...blocks.Block) error {
	return e.bs.NotifyNewBlocks(ctx, blks...)
}

// Stats are the exchange's counters.
type Stats struct {
	Peers          int
	WantlistLen    int
	BlocksReceived uint64
	DataReceived   uint64
	DupBlocks      uint64
	BlocksSent     uint64 // blocks that left (not those held back)
	DataSent       uint64 // bytes of those blocks
	// LateCancelled is blocks the server had packed for a peer that
	// cancelled them before their turn at the uplink came (not sent).
	LateCancelled uint64
	// OtherBlocksReceived is how many of BlocksReceived another path
	// than bitswap brought (CountReceived: the bulk DAG stream).
	OtherBlocksReceived uint64
}

// CountSent counts a block another path than bitswap sent (the bulk DAG
// stream): Stats is what the box uploaded, whichever way.
func (e *Exchange) CountSent(b blocks.Block) {
	e.net.blocksSent.Add(1)
	e.net.dataSent.Add(uint64(len(b.RawData())))
}

// CountReceived counts a block another path than bitswap brought: Stats
// is what the box downloaded, whichever way.
func (e *Exchange) CountReceived(b blocks.Block) {
	e.otherBlocks.Add(1)
	e.otherData.Add(uint64(len(b.RawData())))
}

// Stats returns the exchange's counters: blocks and bytes bitswap moved,
// and those counted with CountSent and CountReceived.
func (e *Exchange) Stats() (Stats, error) {
	s, err := e.bs.Stat()
	if err != nil {
		return Stats{}, fmt.Errorf("bitswap: stat: %w", err)
	}
	return Stats{
		Peers:               len(s.Peers),
		WantlistLen:         len(s.Wantlist),
		BlocksReceived:      s.BlocksReceived + e.otherBlocks.Load(),
		DataReceived:        s.DataReceived + e.otherData.Load(),
		DupBlocks:           s.DupBlksReceived,
		BlocksSent:          e.net.blocksSent.Load(),
		DataSent:            e.net.dataSent.Load(),
		LateCancelled:       e.net.lateDropped.Load(),
		OtherBlocksReceived: e.otherBlocks.Load(),
	}, nil
}

// Tables are the sizes of the exchange's own tables that remote peers
// feed, for metrics. Each is bounded: a peer's entries go when it
// disconnects, and each peer's are capped (maxHeldPerPeer,
// maxLateCancels; the spreader holds a want per block a peer asks for, and
// boxo's server bounds a peer's wantlist; it remembers its sends for
// spreadMemory, pruned past maxSpreadRemembered).
type Tables struct {
	HeldPeers   int // peers the gate holds blocks back for
	HeldBlocks  int // blocks the gate holds back
	SpreadHeld  int // wants the spreader holds back
	SpreadSent  int // seed sends the spreader remembers
	LatePeers   int // peers whose late cancels are remembered
	LateCancels int // late cancels remembered
}

// Tables returns the sizes of the exchange's tables.
func (e *Exchange) Tables() Tables {
	var t Tables
	g := e.net
	g.mu.Lock()
	t.HeldPeers = len(g.held)
	for _, h := range g.held {
		t.HeldBlocks += len(h.items)
	}
	g.mu.Unlock()
	if s := g.spread; s != nil {
		s.mu.Lock()
		for _, m := range s.held {
			t.SpreadHeld += len(m)
		}
		t.SpreadSent = len(s.last)
		s.mu.Unlock()
	}
	g.late.mu.Lock()
	t.LatePeers = len(g.late.m)
	for _, m := range g.late.m {
		t.LateCancels += len(m)
	}
	g.late.mu.Unlock()
	return t
}

// Close stops the exchange.
func (e *Exchange) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		e.cancel()
		e.wg.Wait()
		err = e.bs.Close()
	})
	return err
}

// dontHaveTimeouts is boxo's timeout for want-blocks that get no answer,
// with DefaultMinDontHaveTimeout as the least.
func dontHaveTimeouts() *client.DontHaveTimeoutConfig {
	c := client.DefaultDontHaveTimeoutConfig()
	c.MinTimeout = DefaultMinDontHaveTimeout
	return c
}

type tracer struct{ h Hooks }

func (t tracer) MessageReceived(p peer.ID, m bsmsg.BitSwapMessage) {
	if t.h.BlockReceived == nil {
		return
	}
	for _, b := range m.Blocks() {
		t.h.BlockReceived(p, b)
	}
}

func (t tracer) MessageSent(peer.ID, bsmsg.BitSwapMessage) {}

// Wanting is how many of cs this box's bitswap still asks its peers for
// (as broadcast wants or from given peers). The wants of a request whose
// context ended leave after its channel closed, not with it.
func (e *Exchange) Wanting(cs []cid.Cid) int {
	if len(cs) == 0 {
		return 0
	}
	want := cid.NewSet()
	for _, c := range cs {
		want.Add(c)
	}
	n := 0
	for _, c := range e.bs.GetWantlist() {
		if want.Has(c) {
			n++
		}
	}
	return n
}
