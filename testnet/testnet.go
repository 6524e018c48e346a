package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/orecdn/ore/dht"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

// Network is a set of boxes on loopback.
type Network struct {
	Nodes   []*node.Node
	Dirs    []string        // each box's repo
	Genesis *ledger.Genesis // with WithLedger

	root    string
	ownRoot bool
	mn      mocknet.Mocknet // with WithMocknet
	hosts   []host.Host     // with WithMocknet: box i's host, until it starts
	servers int             // WithDHTServers's n (0: every box serves)
}

type config struct {
	dir      string
	nodeOpts []node.Option
	boxOpts  map[int][]node.Option
	listen   map[int][]string
	log      *slog.Logger
	ledger   *LedgerSpec
	tcpOnly  bool
	quicOnly bool
	mock     *mocknet.LinkOptions
	// dhtServers, if above 0, is how many of the first boxes serve the
	// DHT; the rest are its clients (see WithDHTServers).
	dhtServers int
}

// WithDHTServers makes boxes 0 to n-1 the network's DHT servers and every
// later box a DHT client, as home boxes behind a NAT are in the auto mode
// (default: every box serves). A client bootstraps from a server (see
// bootstrapOf) and holds connections to the servers and to the boxes it
// exchanges blocks with, not to a routing table's worth of peers: in a
// 205-box network of servers each box holds ~125 connections before any
// fetch, and each costs gossipsub's and the DHT's streams.
func WithDHTServers(n int) Option {
	return func(c *config) { c.dhtServers = n }
}

// WithMocknet runs the boxes on go-libp2p's in-memory mocknet instead of
// loopback sockets: no file descriptors, no kernel TCP, no encryption, so
// hundreds of boxes fit in one process; every pair of boxes is linked with
// links (latency, bandwidth per link; zero: none).
func WithMocknet(links mocknet.LinkOptions) Option {
	return func(c *config) { c.mock = &links }
}

// WithTCPOnly makes every box listen on TCP alone (default: TCP and QUIC).
// Many QUIC hosts in one process overflow loopback's UDP buffers, and
// QUIC's congestion control then throttles them: large in-process networks
// measure ore, not that.
func WithTCPOnly() Option { return func(c *config) { c.tcpOnly = true } }

// WithQUICOnly makes every box listen on QUIC alone: what `ore bench
// transfer --transport quic` measures.
func WithQUICOnly() Option { return func(c *config) { c.quicOnly = true } }

// listenAddrs are box i's default listen addresses.
func (c *config) listenAddrs() []string {
	if c.tcpOnly {
		return []string{"/ip4/127.0.0.1/tcp/0"}
	}
	if c.quicOnly {
		return []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	return []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
}

// Option configures a Network.
type Option func(*config)

// WithDir puts the boxes' repos under dir (default: a new temporary
// directory, removed by Close).
func WithDir(dir string) Option { return func(c *config) { c.dir = dir } }

// WithNodeOptions adds options to every box.
func WithNodeOptions(opts ...node.Option) Option {
	return func(c *config) { c.nodeOpts = append(c.nodeOpts, opts...) }
}

// WithBoxOptions adds options to box i only (after WithNodeOptions).
func WithBoxOptions(i int, opts ...node.Option) Option {
	return func(c *config) {
		if c.boxOpts == nil {
			c.boxOpts = make(map[int][]node.Option)
		}
		c.boxOpts[i] = append(c.boxOpts[i], opts...)
	}
}

// WithLogger sets every box's logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// New starts n boxes and waits until each has joined the DHT.
func New(ctx context.Context, n int, opts ...Option) (_ *Network, err error) {
	if n < 1 {
		return nil, fmt.Errorf("testnet: need at least one box, got %d", n)
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	nw := &Network{root: cfg.dir, servers: cfg.dhtServers}
	if nw.root == "" {
		if nw.root, err = os.MkdirTemp("", "ore-testnet-*"); err != nil {
			return nil, fmt.Errorf("testnet: temp dir: %w", err)
		}
		nw.ownRoot = true
	}
	defer func() {
		if err != nil {
			nw.Close()
		}
	}()
	for i := 0; i < n; i++ {
		dir := filepath.Join(nw.root, fmt.Sprintf("box%02d", i))
		if _, err := node.Init(dir, node.DefaultFileConfig()); err != nil {
			return nil, fmt.Errorf("testnet: box %d: %w", i, err)
		}
		nw.Dirs = append(nw.Dirs, dir)
	}
	if cfg.ledger != nil {
		if err := nw.makeGenesis(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.mock != nil {
		if err := nw.makeMocknet(*cfg.mock); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		var err error
		nw.AsBox(ctx, i, func(ctx context.Context) { err = nw.start(ctx, i, &cfg) })
		if err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			nw.AsBox(ctx, i, func(ctx context.Context) {
				if err := nw.Nodes[i].Bootstrap(ctx); err != nil {
					errs[i] = fmt.Errorf("testnet: box %d bootstrap: %w", i, err)
				}
			})
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return nw, nil
}

// BoxLabel is the pprof label key that names the box a goroutine works
// for ("0", "1", ...): box i starts and bootstraps under it, so the
// goroutines it spawns (listeners, connections it dials or accepts, its
// streams) carry it, and a CPU profile tells the boxes of one process
// apart (what `ore bench transfer` splits its CPU by). The runtime's own
// goroutines (the garbage collector's workers) carry none.
const BoxLabel = "box"

// AsBox runs f with the goroutine labelled as box i's (see BoxLabel): a
// caller acting for a box (a fetch, a dial) runs it under AsBox for its
// work to count as the box's.
func (nw *Network) AsBox(ctx context.Context, i int, f func(ctx context.Context)) {
	pprof.Do(ctx, pprof.Labels(BoxLabel, strconv.Itoa(i)), f)
}

func (nw *Network) start(ctx context.Context, i int, cfg *config) error {
	dir := nw.Dirs[i]
	listen := cfg.listenAddrs()
	if a, ok := cfg.listen[i]; ok {
		listen = a
	}
	opts := []node.Option{
		node.WithRepo(dir),
		node.WithListenAddrs(listen...),
		node.WithDHTMode(dhtMode(i, cfg.dhtServers)),
		node.WithQuota(1 << 40),
	}
	if cfg.log != nil {
		opts = append(opts, node.WithLogger(cfg.log.With("box", i)))
	}
	if i > 0 {
		opts = append(opts, node.WithBootstrapPeers(nw.Nodes[bootstrapOf(i, cfg.dhtServers)].AddrInfo()))
	}
	opts = append(opts, cfg.nodeOpts...)
	opts = append(opts, cfg.boxOpts[i]...)
	if nw.hosts != nil {
		opts = append(opts, node.WithHost(nw.hosts[i]))
		nw.hosts[i] = nil // the box owns it now
	}
	nd, err := node.New(ctx, opts...)
	if err != nil {
		return fmt.Errorf("testnet: box %d: %w", i, err)
	}
	nw.Nodes = append(nw.Nodes, nd)
	return nil
}

// makeMocknet builds every box's host on one mocknet, with its identity,
// and links them all.
func (nw *Network) makeMocknet(links mocknet.LinkOptions) error {
	nw.mn = mocknet.New()
	nw.mn.SetLinkDefaults(links)
	for i, dir := range nw.Dirs {
		key, err := node.LoadIdentity(dir)
		if err != nil {
			return fmt.Errorf("testnet: box %d: %w", i, err)
		}
		// Public addresses (RFC 2544's benchmarking range): boxes of a
		// crowd are on the internet, where bitswap's broadcast control
		// applies; it always broadcasts to private and loopback peers.
		addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/198.%d.%d.%d/tcp/4601", 18+i>>16&1, i>>8&255, i&255))
		if err != nil {
			return err
		}
		h, err := nw.mn.AddPeer(key, addr)
		if err != nil {
			return fmt.Errorf("testnet: box %d: mocknet host: %w", i, err)
		}
		nw.hosts = append(nw.hosts, h)
	}
	if err := nw.mn.LinkAll(); err != nil {
		return fmt.Errorf("testnet: mocknet links: %w", err)
	}
	return nil
}

// dhtMode is box i's DHT mode when the first servers boxes serve the DHT
// (0: all of them).
func dhtMode(i, servers int) dht.Mode {
	if servers > 0 && i >= servers {
		return dht.ModeClient
	}
	return dht.ModeServer
}

// Restart closes box i and starts it again on the same repo (same key,
// same blocks, new ports).
func (nw *Network) Restart(ctx context.Context, i int, opts ...node.Option) (*node.Node, error) {
	if i < 0 || i >= len(nw.Nodes) {
		return nil, fmt.Errorf("testnet: no box %d", i)
	}
	if nw.mn != nil {
		return nil, errors.New("testnet: a box on a mocknet cannot restart (its host closed with it)")
	}
	if err := nw.Nodes[i].Close(); err != nil {
		return nil, fmt.Errorf("testnet: close box %d: %w", i, err)
	}
	all := []node.Option{
		node.WithRepo(nw.Dirs[i]),
		node.WithListenAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		node.WithDHTMode(dhtMode(i, nw.servers)),
		node.WithQuota(1 << 40),
	}
	for j, other := range nw.Nodes {
		if j != i {
			all = append(all, node.WithBootstrapPeers(other.AddrInfo()))
			break
		}
	}
	nd, err := node.New(ctx, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("testnet: restart box %d: %w", i, err)
	}
	nw.Nodes[i] = nd
	return nd, nil
}

// Leave closes box i for good, as a box that left the network: on a
// mocknet it is unlinked from every other box too, so that dials of it
// fail as they do of a real box that went away. A closed mocknet host
// still accepts connections and streams (mocknet never refuses them): the
// closed box's bitswap took the wants of every box that found its stale
// provider record and dialled it, and never answered them.
func (nw *Network) Leave(i int) error {
	if i < 0 || i >= len(nw.Nodes) {
		return fmt.Errorf("testnet: no box %d", i)
	}
	nd := nw.Nodes[i]
	// Unlinked first: a box that dialled it while it closed would keep
	// that connection.
	if nw.mn != nil {
		for _, other := range nw.mn.Peers() {
			if other == nd.ID() || len(nw.mn.LinksBetweenPeers(nd.ID(), other)) == 0 {
				continue
			}
			if err := nw.mn.UnlinkPeers(nd.ID(), other); err != nil {
				return fmt.Errorf("testnet: unlink box %d: %w", i, err)
			}
		}
	}
	if err := nd.Close(); err != nil {
		return fmt.Errorf("testnet: close box %d: %w", i, err)
	}
	return nil
}

// Close stops every box and removes the temporary directory.
func (nw *Network) Close() error {
	var errs []error
	for i, nd := range nw.Nodes {
		if err := nd.Close(); err != nil {
			errs = append(errs, fmt.Errorf("box %d: %w", i, err))
		}
	}
	for _, h := range nw.hosts {
		if h != nil {
			h.Close()
		}
	}
	if nw.mn != nil {
		if err := nw.mn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mocknet: %w", err))
		}
	}
	if nw.ownRoot {
		if err := os.RemoveAll(nw.root); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// bootstrapOf is the box that box i joins through: box 0 for the first
// boxes, then a tree (box i through box (i-1)/4), so that hundreds of boxes
// starting at once do not all dial one box (its resource manager refuses
// them, as a real bootstrap peer's would).
func bootstrapOf(i, servers int) int {
	if servers > 0 && i >= servers {
		return i % servers // a client bootstraps from a server
	}
	if i <= 16 {
		return 0
	}
	return (i - 1) / 4
}
