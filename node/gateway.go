package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/namesys"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/gateway"
)

// DefaultGatewayListen is where a gateway serves HTTP unless told otherwise:
// loopback, so opening it to a network is a decision.
const DefaultGatewayListen = "127.0.0.1:8080"

// gatewayBackend is the gateway's view of the box.
type gatewayBackend struct {
	n       *Node
	bs      blockservice.BlockService
	cache   *blockCache // hot blocks, in front of the store
	indexes *indexCache // leaf lists of wholly local files (the fast path)
}

var (
	_ gateway.Backend   = (*gatewayBackend)(nil)
	_ gateway.LocalDAGs = (*gatewayBackend)(nil)
	_ gateway.Names     = (*gatewayBackend)(nil)
)

func (b *gatewayBackend) BlockService() blockservice.BlockService { return b.bs }

// Locate fetches the root's block (finding providers in the DHT) unless it
// is local.
func (b *gatewayBackend) Locate(ctx context.Context, root cid.Cid) error {
	if has, err := b.n.store.Has(ctx, root); err == nil && has {
		return nil
	}
	_, err := b.n.fetch(ctx, root, nil, fetchRoot)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		// Nothing arrived before the gateway's not-found timeout.
		return fmt.Errorf("%w: %w", gateway.ErrNotFound, err)
	case errors.Is(err, ErrQuotaFull):
		return fmt.Errorf("%w: the gateway's store is full: %w", gateway.ErrOutOfResources, err)
	case errors.Is(err, ErrDataCapReached):
		return fmt.Errorf("%w: %w", gateway.ErrOutOfResources, err)
	case errors.Is(err, ErrUnsupported):
		return fmt.Errorf("%w: %w", gateway.ErrNotFound, err)
	case errors.Is(err, ErrTicket):
		return fmt.Errorf("%w: %w", gateway.ErrBadTicket, err)
	}
	return err
}

// Prefetch fetches root's DAG while the request lasts.
func (b *gatewayBackend) Prefetch(ctx context.Context, root cid.Cid) {
	if b.n.isComplete(ctx, root) {
		return // nothing to fill: every block is local
	}
	if _, err := b.n.fetch(ctx, root, nil, fetchStream); err != nil && ctx.Err() == nil {
		b.n.log.Debug("gateway prefetch", "root", root, "err", err)
	}
}

// Complete reports whether the box holds root's whole DAG: the gateway
// serves such requests from local blocks under its CPU permits.
func (b *gatewayBackend) Complete(ctx context.Context, root cid.Cid) bool {
	return b.n.isComplete(ctx, root)
}

// NameSystem resolves the gateway's /ipns/ names.
func (b *gatewayBackend) NameSystem() namesys.NameSystem { return b.n.names }

// ValueStore is where the gateway reads IPNS records: ore's DHT.
func (b *gatewayBackend) ValueStore() routing.ValueStore { return b.n.router.Routing() }

// Done sends the final receipts of the request's root.
func (b *gatewayBackend) Done(root cid.Cid) { b.n.pod.finalize(root) }

// receiptExchange is the gateway's exchange: bitswap, with every wanted
// block registered for receipts under the request's root; a request marked
// gateway.Offline (only-if-cached) fetches nothing.
type receiptExchange struct{ n *Node }

var _ exchange.SessionExchange = receiptExchange{}

func (e receiptExchange) want(ctx context.Context, cs ...cid.Cid) {
	root, ok := gateway.RootFrom(ctx)
	if !ok && len(cs) > 0 {
		root = cs[0]
	}
	e.n.pod.want(root, cs)
}

// errOffline answers a fetch of a request that must not use the network.
var errOffline = fmt.Errorf("node: only-if-cached: %w", ipld.ErrNotFound{})

// closedBlocks is what GetBlocks answers such a request: no block.
func closedBlocks() <-chan blocks.Block {
	ch := make(chan blocks.Block)
	close(ch)
	return ch
}

func (e receiptExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if gateway.Offline(ctx) {
		return nil, errOffline
	}
	if err := e.n.datacap.refusal(); err != nil {
		return nil, err
	}
	e.want(ctx, c)
	return e.n.ex.GetBlock(ctx, c)
}

func (e receiptExchange) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	if gateway.Offline(ctx) {
		return closedBlocks(), nil
	}
	if err := e.n.datacap.refusal(); err != nil {
		return nil, err
	}
	e.want(ctx, cs...)
	return e.n.ex.GetBlocks(ctx, cs)
}

func (e receiptExchange) NotifyNewBlocks(ctx context.Context, bs ...blocks.Block) error {
	return e.n.ex.NotifyNewBlocks(ctx, bs...)
}

func (e receiptExchange) NewSession(ctx context.Context) exchange.Fetcher {
	return receiptSession{x: e, ses: e.n.gatewaySession(ctx), ctx: ctx}
}

// gatewaySession is the bitswap session of the gateway request ctx serves:
// one for the look-up of its root and for its reads, so the box that sent
// the root is in the session when the first leaves are wanted and gets
// want-blocks at once (a new session broadcasts want-haves first, a round
// trip more, and boxo sends one peer at most a message per 20 ms).
// Outside a request (or in a request's whole-DAG prefetch, whose chunk
// cancellations would cancel the reads' wants) each caller gets its own.
func (n *Node) gatewaySession(ctx context.Context) exchange.Fetcher {
	req := gateway.RequestFrom(ctx)
	if req == nil {
		return n.ex.NewSession(ctx)
	}
	return req.Once(func(rctx context.Context) any { return n.ex.NewSession(rctx) }).(exchange.Fetcher)
}

func (e receiptExchange) Close() error { return nil }

type receiptSession struct {
	x   receiptExchange
	ses exchange.Fetcher
	ctx context.Context // the session's: carries the request's root
}

func (s receiptSession) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if gateway.Offline(ctx) || gateway.Offline(s.ctx) {
		return nil, errOffline
	}
	if err := s.x.n.datacap.refusal(); err != nil {
		return nil, err
	}
	s.x.want(s.ctx, c)
	return s.ses.GetBlock(ctx, c)
}

func (s receiptSession) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	if gateway.Offline(ctx) || gateway.Offline(s.ctx) {
		return closedBlocks(), nil
	}
	if err := s.x.n.datacap.refusal(); err != nil {
		return nil, err
	}
	s.x.want(s.ctx, cs...)
	return s.ses.GetBlocks(ctx, cs)
}

// startGateway serves the HTTP gateway when the box has the gateway role.
func (n *Node) startGateway() error {
	cache := newBlockCache(n.store, DefaultBlockCache)
	b := &gatewayBackend{n: n, bs: blockservice.New(cache, receiptExchange{n}), cache: cache,
		indexes: newIndexCache(defaultIndexLeaves)}
	gc := n.cfg.Gateway
	if gc.NotFoundTimeout == 0 {
		gc.NotFoundTimeout = n.cfg.StallTimeout
	}
	if gc.RetrievalTimeout == 0 {
		gc.RetrievalTimeout = n.cfg.StallTimeout
	}
	gc.Registry, gc.Gatherer, gc.Logger = n.reg, n.reg, n.log.With("part", "gateway")
	gc.PublicMetrics = gc.PublicMetrics || n.cfg.GatewayMetrics
	if gc.Domains == nil {
		gc.Domains = n.cfg.GatewayDomains
	}
	if gc.Denylist == nil {
		gc.Denylist = n.deny
	}
	if gc.Meter == nil {
		gc.Meter = gatewayMeter{n.datacap}
	}
	gw, err := gateway.New(gc, b)
	if err != nil {
		return err
	}
	tlsCfg, err := n.gatewayTLS()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", n.cfg.GatewayListen)
	if err != nil {
		return fmt.Errorf("node: gateway listen on %s (another process there? set another address): %w", n.cfg.GatewayListen, err)
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_gateway_block_cache_bytes",
			Help: fmt.Sprintf("Bytes of hot blocks the gateway caches (at most %d).", int64(DefaultBlockCache))},
			func() float64 { cache.mu.Lock(); defer cache.mu.Unlock(); return float64(cache.size) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_gateway_index_leaves",
			Help: fmt.Sprintf("Leaves of the file indexes the gateway caches (at most %d).", defaultIndexLeaves)},
			func() float64 { b.indexes.mu.Lock(); defer b.indexes.mu.Unlock(); return float64(b.indexes.leaves) }),
	} {
		if err := n.reg.Register(c); err != nil {
			return fmt.Errorf("node: register gateway cache metrics: %w", err)
		}
	}
	n.gateway = gw
	// The server bounds what comes before and between requests: a request's
	// headers arrive within 10 s (slowloris on the request side), an idle
	// keep-alive connection is closed after 2 minutes, and headers are at
	// most 16 KiB. No WriteTimeout: it would bound a whole response, and a
	// 256 MiB file to a slow honest client may take many minutes; the
	// gateway sets a deadline on each write instead (gateway.Config's
	// WriteTimeout and MinSendRate).
	n.gatewaySrv = &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.With("part", "gateway").Handler(), slog.LevelWarn),
	}
	n.gatewayAddr = l.Addr().String()
	if tlsCfg != nil {
		n.gatewaySrv.TLSConfig = tlsCfg // ServeTLS adds HTTP/2
		n.gatewayHTTPS = true
	}
	n.spawn(func(ctx context.Context) {
		serve := n.gatewaySrv.Serve
		if tlsCfg != nil {
			serve = func(l net.Listener) error { return n.gatewaySrv.ServeTLS(l, "", "") }
		}
		if err := serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("gateway stopped", "err", err)
		}
	})
	n.log.Info("gateway serving", "addr", n.gatewayAddr)
	return nil
}

// GatewayAddr is the address the HTTP gateway listens on ("" when the box
// is not a gateway).
func (n *Node) GatewayAddr() string { return n.gatewayAddr }

// GatewayURL is the gateway's base URL, http:// or https:// ("" when the
// box is not a gateway).
func (n *Node) GatewayURL() string {
	if n.gatewayAddr == "" {
		return ""
	}
	if n.gatewayHTTPS {
		return "https://" + n.gatewayAddr
	}
	return "http://" + n.gatewayAddr
}

// Gateway is the box's HTTP gateway (nil when it is not a gateway).
func (n *Node) Gateway() *gateway.Gateway { return n.gateway }

func (n *Node) stopGateway() error {
	if n.gatewaySrv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := n.gatewaySrv.Shutdown(ctx); err != nil {
		return n.gatewaySrv.Close()
	}
	return nil
}
