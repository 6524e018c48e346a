package dht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// ProtocolPrefix is the DHT protocol prefix of every ore network.
const ProtocolPrefix = "/ore"

// ErrNoPeers is returned by Provide and Bootstrap when the box knows no other
// box to talk to.
var ErrNoPeers = errors.New("dht: no peers in the routing table")

// Router is an ore box's DHT. It is a routing.ContentRouting (and
// routing.Routing) so bitswap and libp2p can use it directly.
type Router struct {
	dht   *kaddht.IpfsDHT
	store *boundedStore // the DHT's records (see maxStoreKeys)

	host   host.Host
	cfg    config
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ routing.ContentDiscovery = (*Router)(nil)

// New starts a DHT on h. Call Bootstrap to join the network.
func New(h host.Host, opts ...Option) (*Router, error) {
	cfg := config{
		mode:              ModeAuto,
		reprovideInterval: DefaultReprovideInterval,
		log:               slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	mode := kaddht.ModeAutoServer
	switch cfg.mode {
	case ModeServer:
		mode = kaddht.ModeServer
	case ModeClient:
		mode = kaddht.ModeClient
	}
	store := newBoundedStore(maxStoreKeys, maxStoreBytes)
	d, err := kaddht.New(h,
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Datastore(store), // provider records share it
		kaddht.Mode(mode),
		kaddht.BootstrapPeers(cfg.bootstrap...),
	)
	if err != nil {
		return nil, fmt.Errorf("dht: start: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &Router{dht: d, host: h, cfg: cfg, cancel: cancel, store: store}
	if cfg.reprovideInterval > 0 && cfg.roots != nil {
		r.wg.Add(1)
		go r.reprovideLoop(rctx)
	}
	return r, nil
}

// Bootstrap dials the bootstrap peers and fills the routing table. It fails
// only when bootstrap peers were given and none of them could be reached.
func (r *Router) Bootstrap(ctx context.Context) error {
	if len(r.cfg.bootstrap) == 0 {
		return r.dht.Bootstrap(ctx)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		ok   int
	)
	for _, p := range r.cfg.bootstrap {
		if p.ID == r.host.ID() {
			continue
		}
		wg.Add(1)
		go func(p peer.AddrInfo) {
			defer wg.Done()
			err := r.host.Connect(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.ID, err))
				return
			}
			ok++
		}(p)
	}
	wg.Wait()
	if ok == 0 && len(errs) > 0 {
		return fmt.Errorf("dht: no bootstrap peer reachable (check the addresses in the config and that those boxes run): %w", errors.Join(errs...))
	}
	for _, err := range errs {
		r.cfg.log.Warn("bootstrap peer unreachable", "err", err)
	}
	// The routing table takes a peer once identify has confirmed it speaks
	// the /ore DHT protocol; that happens asynchronously after Connect.
	if err := waitFor(ctx, func() bool { return r.dht.RoutingTable().Size() > 0 }); err != nil {
		return fmt.Errorf("dht: no bootstrap peer joined the routing table (do they run ore with dht_mode server or auto?): %w", err)
	}
	select {
	case err := <-r.dht.RefreshRoutingTable():
		if err != nil && r.dht.RoutingTable().Size() == 0 {
			return fmt.Errorf("dht: fill routing table: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("dht: fill routing table: %w", ctx.Err())
	}
	return nil
}

// waitFor polls cond until it holds or ctx ends: kad-dht offers no event
// for "routing table changed".
func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Provide announces that this box holds c.
func (r *Router) Provide(ctx context.Context, c cid.Cid) error {
	if r.dht.RoutingTable().Size() == 0 {
		return fmt.Errorf("%w: announce %s later or add bootstrap peers", ErrNoPeers, c)
	}
	if err := r.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("dht: provide %s: %w", c, err)
	}
	return nil
}

// FindProviders returns up to max boxes (other than this one) that announced c.
func (r *Router) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for p := range r.dht.FindProvidersAsync(ctx, c, max) {
		if p.ID == r.host.ID() {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dht: find providers of %s: %w", c, err)
		}
	}
	return out, nil
}

// FindProvidersAsync streams up to count providers of c (bitswap's
// provider finder).
func (r *Router) FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo {
	return r.dht.FindProvidersAsync(ctx, c, count)
}

// Routing returns the DHT as libp2p's full routing interface (peer routing
// for the host, values for later issues).
func (r *Router) Routing() routing.Routing { return r.dht }

// StoreStats returns the size of the DHT's record store.
func (r *Router) StoreStats() StoreStats { return r.store.stats() }

// RoutingTableSize is the number of boxes in the routing table.
func (r *Router) RoutingTableSize() int { return r.dht.RoutingTable().Size() }

// Mode reports whether the DHT currently serves queries.
func (r *Router) Mode() Mode {
	if r.dht.Mode() == kaddht.ModeServer {
		return ModeServer
	}
	return ModeClient
}

// Reprovide announces every root once now.
func (r *Router) Reprovide(ctx context.Context) error {
	if r.cfg.roots == nil {
		return nil
	}
	roots, err := r.cfg.roots(ctx)
	if err != nil {
		return fmt.Errorf("dht: list roots to reprovide: %w", err)
	}
	var errs []error
	for _, c := range roots {
		if err := r.Provide(ctx, c); err != nil {
			errs = append(errs, err)
			if errors.Is(err, ErrNoPeers) || ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Router) reprovideLoop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.reprovideInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			if err := r.Reprovide(ctx); err != nil && ctx.Err() == nil {
				r.cfg.log.Warn("reprovide failed", "err", err)
				continue
			}
			r.cfg.log.Info("reprovided roots", "took", time.Since(start))
		}
	}
}

// Close stops reproviding and closes the DHT.
func (r *Router) Close() error {
	r.cancel()
	r.wg.Wait()
	return r.dht.Close()
}
