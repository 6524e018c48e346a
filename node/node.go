package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/ipfs/boxo/namesys"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/bitswap"
	"github.com/orecdn/ore/dht"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/committee"
	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/store"
)

// Version is ore's version, sent in libp2p identify.
const Version = "0.1.0"

// Node is an ore box: a libp2p host with a DHT, bitswap and a block store.
type Node struct {
	cfg     *Config
	log     *slog.Logger
	host    host.Host
	rm      network.ResourceManager
	router  *dht.Router
	ex      *bitswap.Exchange
	store   *store.Store
	dag     ipld.DAGService // local blocks only
	reg     *prometheus.Registry
	metrics *metrics
	traffic *traffic
	recent  *recentBlocks // blocks received lately (see seed.go)
	pod     *receipts
	bulk    *bulk // the bulk DAG path (bulk.go); nil: off
	reach   *reach
	datacap *dataCap
	started time.Time

	key         crypto.PrivKey
	pubsub      *pubsub.PubSub
	intake      *intake.Intake
	receiptPool *intake.Pool
	synced      struct { // LedgerState's last verified state (not on coordinators)
		sync.Mutex
		state *ledger.State
	}
	committee *committee.Committee
	proofs    proofs // storage proofs submitted (storage.go)

	sources sourceRefs // fetch sources' connection protection

	completeMu sync.Mutex
	complete   map[cid.Cid]struct{} // roots whose whole DAG is local
	fetches    map[cid.Cid]int      // fetches running per root (guarded by completeMu)

	sched   *sched     // heat, reports, replication orders
	evictMu sync.Mutex // one eviction at a time

	compute    computeState    // the job engine, started on first use (compute.go)
	computeSvc *computeService // serves jobs to other peers (compute_remote.go); nil: lends none

	gateway      *gateway.Gateway
	gatewaySrv   *http.Server
	gatewayAddr  string
	gatewayHTTPS bool

	names namesys.NameSystem // IPNS records from the DHT, DNSLink from DNS
	deny  *gateway.Denylist  // content the box neither serves nor fetches (nil: none)

	ctx       context.Context
	cancel    context.CancelFunc
	bgMu      sync.Mutex // guards closing and wg.Add
	closing   bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New assembles and starts a box. It returns once the host listens; joining
// the network (Bootstrap) goes on in the background. Close releases every
// port, goroutine and file it opened.
func New(ctx context.Context, opts ...Option) (_ *Node, err error) {
	cfg, err := defaults()
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key := cfg.Identity
	if key == nil {
		if key, err = LoadIdentity(cfg.RepoDir); err != nil {
			return nil, err
		}
	}

	n := &Node{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(), traffic: newTraffic(), key: key, started: time.Now()}
	if n.datacap, err = newDataCap(cfg.RepoDir, cfg.DataCap, time.Now, cfg.Logger); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var closers []func() error
	defer func() {
		if err != nil {
			n.cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	n.store, err = store.Open(filepath.Join(cfg.RepoDir, BlocksDir),
		store.WithQuota(cfg.Quota), store.WithLogger(cfg.Logger), store.WithSmallMemory(cfg.SmallMemory))
	if err != nil {
		return nil, fmt.Errorf("node: open block store: %w", err)
	}
	closers = append(closers, n.store.Close)

	if n.reach, err = newReach(cfg.Logger.With("part", "nat"), n.reg); err != nil {
		return nil, err
	}
	n.reach.relays.static = relayStatics(cfg, key)
	n.reach.ports = listenPorts(cfg.ListenAddrs)
	base, rm, err := newHost(cfg, key, n.reg, n.reach)
	if err != nil {
		return nil, err
	}
	n.rm = rm
	if rm != nil {
		closers = append(closers, rm.Close)
	}
	closers = append(closers, base.Close)
	if err := n.reach.watch(n.ctx, base); err != nil {
		return nil, err
	}

	n.router, err = dht.New(base,
		dht.WithMode(cfg.DHTMode),
		dht.WithBootstrapPeers(cfg.Bootstrap),
		dht.WithReprovideInterval(cfg.ReprovideInterval),
		dht.WithRoots(n.store.Pins),
		dht.WithLogger(cfg.Logger.With("part", "dht")),
	)
	if err != nil {
		return nil, err
	}
	closers = append(closers, n.router.Close)
	n.host = routedhost.Wrap(base, n.router.Routing())
	if n.names, err = newNameSystem(cfg, n.router.Routing()); err != nil {
		return nil, err
	}
	if n.deny, err = loadDenylists(cfg.Denylists, n.log); err != nil {
		return nil, err
	}

	if err := n.startReceipts(key); err != nil {
		return nil, err
	}
	recent := newRecentBlocks()
	n.recent = recent
	hooks := bitswap.Hooks{BlockSent: func(p peer.ID, b blocks.Block) {
		n.traffic.sent(p, b)
		n.reach.countBlock(p, false, len(b.RawData()))
	}, BlockReceived: func(p peer.ID, b blocks.Block) {
		recent.add(b.Cid())
		n.traffic.received(p, b)
		n.reach.countBlock(p, true, len(b.RawData()))
		n.datacap.add(capFetched, len(b.RawData()))
	}}
	var (
		bopts    []bitswap.Option
		sendGate bitswap.Gate // bitswap's and the bulk path's
	)
	if !cfg.ReceiptsOff {
		hooks.BlockReceived = func(p peer.ID, b blocks.Block) {
			recent.add(b.Cid())
			n.traffic.received(p, b)
			n.reach.countBlock(p, true, len(b.RawData()))
			n.datacap.add(capFetched, len(b.RawData()))
			n.pod.received(p, b)
		}
		var gate bitswap.Gate = n.pod.server
		if r, d := cfg.freeTier(); r > 0 {
			ft, err := newFreeTier(n.host, n.pod.server, r, d, n.log.With("part", "free"), n.reg)
			if err != nil {
				return nil, err
			}
			ft.release = n.release
			gate = ft
		}
		sendGate = capGate{d: n.datacap, next: gate}
	} else {
		sendGate = capGate{d: n.datacap}
	}
	bopts = append(bopts, bitswap.WithGate(sendGate))
	// One request filter: the month's data cap, and the denylist.
	filter := n.datacap.allow
	if n.deny != nil {
		deny := n.deny
		filter = func(p peer.ID, c cid.Cid) bool { return !deny.Denied(c) && n.datacap.allow(p, c) }
	}
	bopts = append(bopts, cfg.profileBitswapOptions()...)
	bopts = append(bopts, bitswap.WithRequestFilter(filter))
	if cfg.UploadLimit > 0 {
		bopts = append(bopts, bitswap.WithUploadLimit(cfg.UploadLimit))
	}
	if cfg.spreads() {
		bopts = append(bopts, bitswap.WithSpread(min(cfg.SpreadHold, cfg.StallTimeout/2), recent.seeded))
	}

	if !cfg.BulkOff {
		if n.bulk, err = n.newBulk(sendGate, filter, hooks); err != nil {
			return nil, err
		}
		closers = append(closers, n.bulk.close)
	}
	n.ex, err = bitswap.New(n.ctx, n.host, n.router, n.store, append(bopts, bitswap.WithHooks(hooks))...)
	if err != nil {
		return nil, err
	}
	closers = append(closers, n.ex.Close)
	n.dag = merkledag.NewDAGService(blockservice.New(n.store, nil))
	if n.bulk != nil {
		n.bulk.serve(n.host)
	}

	if n.metrics, err = newMetrics(n); err != nil {
		return nil, err
	}
	for _, c := range n.datacap.collectors() {
		if err := n.reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: register data cap metrics: %w", err)
		}
	}
	n.sched = newSched(n)

	if err := n.startGossip(); err != nil {
		return nil, err
	}
	n.startComputeService()
	closers = append(closers, n.intake.Close)
	// The gateway before the scheduler: the scheduler's report loop reads
	// the gateway's heat (a gateway started after it raced with it).
	if cfg.Role == RoleGateway {
		if err := n.startGateway(); err != nil {
			return nil, err
		}
		closers = append(closers, n.stopGateway)
	}
	if err := n.sched.start(); err != nil {
		return nil, err
	}
	closers = append(closers, func() error { n.sched.close(); return nil })
	if cfg.Role == RoleCoordinator {
		if err := n.startCommittee(ctx); err != nil {
			return nil, err
		}
		closers = append(closers, n.committee.Close)
		n.startJobChecker()
	}

	n.every(dataCapSaveEvery, func(context.Context) { n.datacap.save() })
	n.every(evictInterval, func(ctx context.Context) {
		if err := n.evictOverWatermark(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("eviction failed", "err", err)
		}
	})
	n.every(nameRepublishEvery, n.republishName)
	n.startProving()
	n.spawn(n.reach.watchRouter)
	n.log.Info("box started", "peer", n.host.ID(), "addrs", n.host.Addrs(), "role", cfg.Role, "dht", cfg.DHTMode)
	if len(cfg.Bootstrap) > 0 {
		n.spawn(func(ctx context.Context) {
			bctx, cancel := context.WithTimeout(ctx, defaultBootstrapTimeout)
			defer cancel()
			if err := n.Bootstrap(bctx); err != nil && ctx.Err() == nil {
				n.log.Warn("bootstrap failed; the DHT retries on its own", "err", err)
			}
		})
	}
	return n, nil
}

// Bootstrap joins the network through the configured bootstrap peers and
// fills the DHT routing table.
func (n *Node) Bootstrap(ctx context.Context) error {
	return n.router.Bootstrap(ctx)
}

// Connect dials a peer.
func (n *Node) Connect(ctx context.Context, p peer.AddrInfo) error {
	if err := n.host.Connect(ctx, p); err != nil {
		return fmt.Errorf("node: connect to %s: %w", p.ID, err)
	}
	return nil
}

// ID is the box's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host is the box's libp2p host (routed through the DHT).
func (n *Node) Host() host.Host { return n.host }

// AddrInfo is how other boxes reach this one.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
}

// P2PAddrs are the box's addresses with /p2p/ID appended, as bootstrap
// lists want them.
func (n *Node) P2PAddrs() []ma.Multiaddr {
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	return out
}

// Store is the box's block store.
func (n *Node) Store() *store.Store { return n.store }

// DHT is the box's content router.
func (n *Node) DHT() *dht.Router { return n.router }

// Exchange is the box's bitswap.
func (n *Node) Exchange() *bitswap.Exchange { return n.ex }

// Metrics is the box's Prometheus registry.
func (n *Node) Metrics() *prometheus.Registry { return n.reg }

// Role is the box's role.
func (n *Node) Role() Role { return n.cfg.Role }

// Reachability is how the internet reaches the box now: port mappings,
// what AutoNAT found, relays, hole punching.
func (n *Node) Reachability() Reachability { return n.reach.view() }

// Network is the network's parameters (ID, genesis, epochs).
func (n *Node) Network() pod.Params { return n.cfg.Network }

// Close stops the box and releases everything it holds. It is safe to call
// more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.bgMu.Lock()
		n.closing = true
		n.bgMu.Unlock()
		var errs []error
		add := func(what string, err error) {
			if err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", what, err))
			}
		}
		add("gateway", n.stopGateway())
		// The ledger's parts leave their topics while gossipsub still runs
		// (it stops with n.ctx).
		if n.committee != nil {
			add("committee", n.committee.Close())
		}
		n.sched.close()
		add("intake", n.intake.Close())
		n.cancel()
		if n.bulk != nil {
			add("bulk", n.bulk.close())
		}
		n.wg.Wait()
		add("bitswap", n.ex.Close())
		add("dht", n.router.Close())
		add("host", n.host.Close())
		if n.rm != nil {
			add("resource manager", n.rm.Close())
		}
		add("store", n.store.Close())
		n.datacap.save()
		n.closeErr = errors.Join(errs...)
		n.log.Info("box stopped", "peer", n.host.ID())
	})
	return n.closeErr
}

// every runs f every interval until the node closes.
func (n *Node) every(interval time.Duration, f func(ctx context.Context)) {
	n.spawn(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
			}
		}
	})
}

// spawn runs f in the background until the node closes; Close waits for it.
func (n *Node) spawn(f func(ctx context.Context)) {
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if n.closing {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}
