package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"github.com/orecdn/ore/dht"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// Role is what a node does in an ore network.
type Role string

// Roles.
const (
	// RoleBox stores, serves and fetches content: every node is a box.
	RoleBox Role = "box"
	// RoleGateway is a box that also serves content over HTTP to apps.
	RoleGateway Role = "gateway"
	// RoleCoordinator is a box that is also a member of the ledger's
	// committee (named in the genesis).
	RoleCoordinator Role = "coordinator"
)

// ParseRole reads a role as written in a config file.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case "", RoleBox:
		return RoleBox, nil
	case RoleGateway, RoleCoordinator:
		return Role(s), nil
	}
	return "", fmt.Errorf("node: unknown role %q: the roles are %q, %q and %q", s, RoleBox, RoleGateway, RoleCoordinator)
}

// Defaults of a box.
const (
	DefaultQuota          = 10 << 30 // 10 GiB of blocks
	DefaultChunkSize      = 256 << 10
	DefaultStallTimeout   = 30 * time.Second
	DefaultResourceMemory = 1 << 30 // libp2p resource manager: memory for all streams and connections
	DefaultResourceFDs    = 1024
	DefaultConnLow        = 64
	DefaultConnHigh       = 192
	DefaultProvideTimeout = time.Minute
	// DefaultSpreadHold: a block the box seeds (it did not just receive
	// it) leaves at most once per this while a crowd asks for it, and a
	// repeat waits this long for the crowd to deliver it, on a box with
	// an upload limit; see WithSpread (which cuts it to half the stall
	// timeout: 15 s with DefaultStallTimeout). `ore bench swarm` (stall
	// timeout 60 s, 50 boxes): 30 s, origin 1.02-1.05× the size in five
	// runs; 15 s, 1.71× (one run).
	DefaultSpreadHold       = 30 * time.Second
	defaultBootstrapTimeout = 30 * time.Second
)

// DefaultListenAddrs are where a box listens when nothing else is said:
// TCP and QUIC on every IPv4 and IPv6 address of the machine, as Kubo
// does. Many home lines have global IPv6 addresses that need no NAT
// traversal at all. A machine without IPv6 listens on IPv4 alone (the
// host starts when at least one address listens; the box logs the others).
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/4601", "/ip4/0.0.0.0/udp/4601/quic-v1",
	"/ip6/::/tcp/4601", "/ip6/::/udp/4601/quic-v1",
}

// Config is what New assembles a node from. Fill it with Options.
type Config struct {
	RepoDir           string
	Identity          crypto.PrivKey
	ListenAddrs       []ma.Multiaddr
	Bootstrap         []peer.AddrInfo
	Role              Role
	Quota             int64
	DHTMode           dht.Mode
	ReprovideInterval time.Duration
	StallTimeout      time.Duration
	ResourceMemory    int64
	ResourceFDs       int
	ConnLow, ConnHigh int
	SmallMemory       bool
	Logger            *slog.Logger
	Network           pod.Params // network ID, genesis time, epoch length
	Genesis           *ledger.Genesis
	CreditWindow      int64
	ReceiptEvery      int64
	MaxFetchBlocks    int64 // blocks one fetch visits at most, repeats counted (see WithMaxFetchBlocks)

	UploadLimit  int64 // bytes per second bitswap serves, all peers together (0: no limit)
	DataCap      int64 // bytes a calendar month bitswap serves (0: no cap); see WithDataCap
	dataCapClock func() time.Time
	// FreeRate and FreeDaily are the free tier for peers that do not sign
	// receipts (see freetier.go): bytes per second and per UTC day, all
	// such peers together (0: the profile's default; FreeRate < 0: no free
	// tier, such peers get the credit window only). See WithFreeTier.
	FreeRate, FreeDaily int64
	SpreadHold          time.Duration // a seeded block leaves at most once per this (0: no spreading)
	HeatHalfLife        time.Duration // half-life of request heat
	SchedulingOff       bool          // no heat reports, no replication orders
	Schedule            heat.Params   // the committee's planner (coordinators)

	// PortMapOff: the box does not ask its home router to forward its
	// listen ports (UPnP IGD, NAT-PMP/PCP). See WithPortMap.
	PortMapOff bool
	// RelayServiceOff: the box never relays for others, even when AutoNAT
	// finds it public. See WithRelayService.
	RelayServiceOff bool

	// ComputeService: jobs the box runs for other peers at once (0: none;
	// see WithComputeService).
	ComputeService int
	// ComputeMemory: the linear memory the box's jobs hold at once (see
	// WithComputeMemory; 0: the profile's share of the RAM).
	ComputeMemory int64

	ReceiptsOff   bool   // no proof of delivery at all: no gate, no signing
	BulkOff       bool   // no bulk DAG streams (/ore/dag/1.0.0): bitswap only; see WithBulk
	GatewayListen string // HTTP address of the gateway role
	// Denylists are files in the compact denylist format: content the box
	// neither serves nor fetches (and its gateway answers 410 for). See
	// WithDenylists.
	Denylists []string
	// DNSResolver is the DNS server ("host:port") DNSLink names are looked
	// up at; empty: the system's resolver. See WithDNSResolver.
	DNSResolver string
	// GatewayTLSCert and GatewayTLSKey are PEM files: set, the gateway
	// serves HTTPS. See WithGatewayTLS.
	GatewayTLSCert, GatewayTLSKey string
	Gateway                       gateway.Config // limits and timeouts of the gateway role
	// GatewayMetrics also serves the box's metrics at /metrics on the
	// gateway's public address (they are always on the control API's).
	GatewayMetrics bool
	// GatewayDomains are the subdomain gateway's hostnames, used when
	// Gateway.Domains is nil. See WithGatewayDomains.
	GatewayDomains []string

	// Host, if set, is the libp2p host the box runs on instead of one it
	// builds (ListenAddrs and ResourceMemory/FDs then do not apply, nor
	// ConnLow/High if the host has a connection manager of its own); the
	// box closes it. See WithHost.
	Host host.Host

	listenSet  bool
	spreadSet  bool                 // WithSpread was given: spread even without an upload limit
	noReceipts bool                 // test only: a client that never signs
	forceReach network.Reachability // test only: AutoNAT's verdict, fixed
	// levelParents bounds the nodes with links of one fetch level
	// (maxLevelParents; lower in tests only, see withLevelParents).
	levelParents int
}

// Option configures a node.
type Option func(*Config) error

func defaults() (*Config, error) {
	c := &Config{
		Role:              RoleBox,
		Quota:             DefaultQuota,
		DHTMode:           dht.ModeAuto,
		ReprovideInterval: dht.DefaultReprovideInterval,
		StallTimeout:      DefaultStallTimeout,
		ResourceMemory:    DefaultResourceMemory,
		ResourceFDs:       DefaultResourceFDs,
		ConnLow:           DefaultConnLow,
		ConnHigh:          DefaultConnHigh,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Network:           pod.DefaultParams(DefaultNetwork),
		CreditWindow:      DefaultCreditWindow,
		ReceiptEvery:      DefaultReceiptEvery,
		MaxFetchBlocks:    DefaultMaxFetchBlocks,
		levelParents:      maxLevelParents,
		GatewayListen:     DefaultGatewayListen,
		HeatHalfLife:      DefaultHeatHalfLife,
		Schedule:          heat.DefaultParams(),
		SpreadHold:        DefaultSpreadHold,
	}
	addrs, err := parseAddrs(DefaultListenAddrs)
	if err != nil {
		return nil, err
	}
	c.ListenAddrs = addrs
	return c, nil
}

func (c *Config) validate() error {
	if c.RepoDir == "" {
		return errors.New("node: no repo directory: pass node.WithRepo(dir) (create one with node.Init or `ore init`)")
	}
	if c.Quota <= 0 {
		return fmt.Errorf("node: storage quota must be positive, got %d", c.Quota)
	}
	if c.ConnLow <= 0 || c.ConnHigh < c.ConnLow {
		return fmt.Errorf("node: connection limits low=%d high=%d: need 0 < low <= high", c.ConnLow, c.ConnHigh)
	}
	if c.ResourceMemory < 64<<20 || c.ResourceFDs < 64 {
		return fmt.Errorf("node: resource limits %d bytes / %d fds are too small (need >= 64 MiB and >= 64 fds)", c.ResourceMemory, c.ResourceFDs)
	}
	if c.StallTimeout <= 0 {
		return errors.New("node: stall timeout must be positive")
	}
	if c.MaxFetchBlocks <= 0 {
		return fmt.Errorf("node: the most blocks a fetch visits must be positive, got %d", c.MaxFetchBlocks)
	}

	if err := c.Network.Validate(); err != nil {
		return fmt.Errorf("node: network parameters: %w", err)
	}
	if c.ReceiptEvery <= 0 || c.CreditWindow < 2*c.ReceiptEvery {
		return fmt.Errorf("node: credit window %d must be at least twice the receipt interval %d, or honest clients stall", c.CreditWindow, c.ReceiptEvery)
	}
	return nil
}

// WithRepo sets the repo directory: the identity key (unless WithIdentity)
// and the block store live there.
func WithRepo(dir string) Option {
	return func(c *Config) error {
		if dir == "" {
			return errors.New("node: empty repo directory")
		}
		c.RepoDir = dir
		return nil
	}
}

// WithIdentity sets the node's key instead of the repo's.
func WithIdentity(k crypto.PrivKey) Option {
	return func(c *Config) error {
		if k == nil {
			return errors.New("node: nil identity")
		}
		c.Identity = k
		return nil
	}
}

// WithListenAddrs sets the multiaddrs the host listens on. Use port 0 for
// any free port.
func WithListenAddrs(addrs ...string) Option {
	return func(c *Config) error {
		if c.listenSet {
			return errors.New("node: listen addresses set twice")
		}
		m, err := parseAddrs(addrs)
		if err != nil {
			return err
		}
		c.ListenAddrs, c.listenSet = m, true
		return nil
	}
}

// WithBootstrapPeers sets the boxes to dial to join the network.
func WithBootstrapPeers(peers ...peer.AddrInfo) Option {
	return func(c *Config) error {
		c.Bootstrap = append(c.Bootstrap, peers...)
		return nil
	}
}

// WithBootstrapAddrs is WithBootstrapPeers with multiaddr strings that end
// in /p2p/PEERID.
func WithBootstrapAddrs(addrs ...string) Option {
	return func(c *Config) error {
		peers, err := ParsePeerAddrs(addrs)
		if err != nil {
			return err
		}
		c.Bootstrap = append(c.Bootstrap, peers...)
		return nil
	}
}

// WithRole sets the node's role (default RoleBox).
func WithRole(r Role) Option {
	return func(c *Config) error {
		if _, err := ParseRole(string(r)); err != nil {
			return err
		}
		c.Role = r
		return nil
	}
}

// WithQuota sets the bytes of blocks the box may store.
func WithQuota(bytes int64) Option {
	return func(c *Config) error {
		if bytes <= 0 {
			return fmt.Errorf("node: quota must be positive, got %d", bytes)
		}
		c.Quota = bytes
		return nil
	}
}

// WithDHTMode sets the DHT mode (default auto).
func WithDHTMode(m dht.Mode) Option {
	return func(c *Config) error {
		c.DHTMode = m
		return nil
	}
}

// WithReprovideInterval sets how often pinned roots are announced again
// (0: never).
func WithReprovideInterval(d time.Duration) Option {
	return func(c *Config) error {
		if d < 0 {
			return errors.New("node: negative reprovide interval")
		}
		c.ReprovideInterval = d
		return nil
	}
}

// WithStallTimeout sets how long a fetch waits without receiving any block
// before it gives up (default 30 s) when none of its providers is
// connected any more; while some are, it waits stallPatience times as
// long, asking again meanwhile (see givesUp).
func WithStallTimeout(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return errors.New("node: stall timeout must be positive")
		}
		c.StallTimeout = d
		return nil
	}
}

// WithResourceLimits sets the libp2p resource manager's memory and file
// descriptor limits for all connections and streams.
func WithResourceLimits(memory int64, fds int) Option {
	return func(c *Config) error {
		c.ResourceMemory, c.ResourceFDs = memory, fds
		return nil
	}
}

// WithConnLimits sets the connection manager's low and high water marks.
func WithConnLimits(low, high int) Option {
	return func(c *Config) error {
		c.ConnLow, c.ConnHigh = low, high
		return nil
	}
}

// WithSmallMemory sizes the store and the network for a box with about
// 1 GiB of RAM.
func WithSmallMemory(on bool) Option {
	return func(c *Config) error {
		c.SmallMemory = on
		if on {
			c.ResourceMemory, c.ResourceFDs = 128<<20, 512
			c.ConnLow, c.ConnHigh = 32, 96
		}
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *Config) error {
		if l == nil {
			return errors.New("node: nil logger")
		}
		c.Logger = l
		return nil
	}
}

// WithNetwork sets the network's parameters: its ID, genesis time and epoch
// length. Boxes of different networks refuse each other's receipts.
func WithNetwork(p pod.Params) Option {
	return func(c *Config) error {
		if err := p.Validate(); err != nil {
			return err
		}
		c.Network = p
		return nil
	}
}

// WithGenesis joins the ledger network the genesis describes: its network
// ID, genesis time and epoch length replace WithNetwork's.
func WithGenesis(g *ledger.Genesis) Option {
	return func(c *Config) error {
		if g == nil {
			return errors.New("node: nil genesis")
		}
		if err := g.Validate(); err != nil {
			return err
		}
		c.Genesis = g
		c.Network = g.Params()
		return nil
	}
}

// WithMaxFetchBlocks sets how many blocks one fetch visits at most,
// counting a block linked twice twice (default DefaultMaxFetchBlocks, 2 TiB
// of 256 KiB leaves): a fetch of a DAG with more fails with an error
// wrapping ErrDAGTooLarge. It bounds the work and the memory a DAG
// someone else built can make a fetch spend.
func WithMaxFetchBlocks(n int64) Option {
	return func(c *Config) error {
		c.MaxFetchBlocks = n
		return nil
	}
}

// WithCreditWindow sets how many bytes this box, as a server, sends a client
// ahead of the client's receipts (default 4 MiB).
func WithCreditWindow(bytes int64) Option {
	return func(c *Config) error {
		c.CreditWindow = bytes
		return nil
	}
}

// WithReceiptEvery sets how many bytes this box, as a client, receives from
// a server between two receipts (default 1 MiB).
func WithReceiptEvery(bytes int64) Option {
	return func(c *Config) error {
		c.ReceiptEvery = bytes
		return nil
	}
}

// WithGatewayListen sets the gateway role's HTTP address (default
// 127.0.0.1:8080; port 0 picks a free port, see Node.GatewayAddr).
func WithGatewayListen(addr string) Option {
	return func(c *Config) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("node: gateway address %q: %w", addr, err)
		}
		c.GatewayListen = addr
		return nil
	}
}

// WithGateway sets the gateway role's limits and timeouts. Zero fields take
// gateway's defaults; the not-found and retrieval timeouts default to the
// stall timeout.
func WithGateway(gc gateway.Config) Option {
	return func(c *Config) error {
		c.Gateway = gc
		return nil
	}
}

// WithDenylists reads content-blocking lists (the compact denylist format
// of IPFS gateways, e.g. the bad-bits list) at start: the box refuses to
// serve or fetch what they block, and its gateway answers 410.
func WithDenylists(files ...string) Option {
	return func(c *Config) error {
		c.Denylists = append(c.Denylists, files...)
		return nil
	}
}

// WithDNSResolver looks DNSLink names (/ipns/example.com: the TXT record
// of _dnslink.example.com) up at the DNS server addr ("host:port") instead
// of the system's resolver.
func WithDNSResolver(addr string) Option {
	return func(c *Config) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("node: DNS resolver %q: want host:port: %w", addr, err)
		}
		c.DNSResolver = addr
		return nil
	}
}

// WithGatewayTLS serves the gateway over HTTPS with the certificate and
// key in these PEM files (for a box that faces browsers itself, without a
// proxy in front). The files are read again when they change.
func WithGatewayTLS(certFile, keyFile string) Option {
	return func(c *Config) error {
		c.GatewayTLSCert, c.GatewayTLSKey = certFile, keyFile
		return nil
	}
}

// WithGatewayDomains names the hostnames the gateway serves as subdomain
// gateways ({cid}.ipfs.{domain}; /ipfs/{cid} on the domain redirects
// there). Without it, "localhost" is one; none at all: no domain given.
func WithGatewayDomains(domains ...string) Option {
	return func(c *Config) error {
		c.GatewayDomains = append([]string{}, domains...)
		return nil
	}
}

// WithGatewayClientLimits sets the gateway's limits per client address:
// requests a second (burst: two seconds' worth) and requests in flight;
// 0 keeps the gateway's default.
func WithGatewayClientLimits(perSecond float64, inFlight int) Option {
	return func(c *Config) error {
		if perSecond > 0 {
			c.Gateway.RatePerClient = rate.Limit(perSecond)
			c.Gateway.BurstPerClient = max(1, int(2*perSecond))
		}
		if inFlight > 0 {
			c.Gateway.MaxPerClient = inFlight
		}
		return nil
	}
}

// WithGatewayMetrics also serves the box's Prometheus metrics at /metrics on
// the gateway's address. Off by default: the gateway is public, and its
// metrics tell an attacker which limits bite; the daemon serves them on its
// loopback API address.
func WithGatewayMetrics(on bool) Option {
	return func(c *Config) error {
		c.GatewayMetrics = on
		return nil
	}
}

// WithPortMap turns port mapping on (the default) or off. On, a box whose
// listen addresses a router could forward (0.0.0.0, ::, or an address of
// the machine's) asks the home router, with UPnP IGD and NAT-PMP/PCP, to
// forward its listen ports, keeps the mappings renewed, and announces the
// router's external address: nearly every home line is behind a NAT, and
// a box nobody can dial cannot serve. Off for a box whose ports are
// forwarded by hand, or on a network whose operator forbids UPnP.
func WithPortMap(on bool) Option {
	return func(c *Config) error {
		c.PortMapOff = !on
		return nil
	}
}

// WithRelayService turns the relay service on (the default) or off. On, a
// box that AutoNAT finds public relays the signalling of boxes behind NATs
// (a reservation each, relayed connections limited to 128 KiB and two
// minutes: enough for hole punching, never for blocks; see relay.go).
func WithRelayService(on bool) Option {
	return func(c *Config) error {
		c.RelayServiceOff = !on
		return nil
	}
}

// WithReceipts turns proof of delivery on (the default) or off. Off, the box
// neither meters what it serves nor signs what it receives: for private
// deployments that pay nobody, and to measure what receipts cost.
func WithReceipts(on bool) Option {
	return func(c *Config) error {
		c.ReceiptsOff = !on
		return nil
	}
}

// spreads says whether the box spreads the blocks it seeds (see WithSpread):
// with an upload limit, or when WithSpread was given.
func (c *Config) spreads() bool {
	return c.SpreadHold > 0 && (c.UploadLimit > 0 || c.spreadSet)
}

// WithBulk turns the bulk DAG path (/ore/dag/1.0.0, package dagstream) on
// (the default) or off. On, a fetch asks its first source to stream the
// whole DAG before it asks bitswap, and the box streams the DAGs it holds
// whole to others; off, both go through bitswap alone (to measure one
// against the other, or for a box that serves only IPFS tools).
func WithBulk(on bool) Option {
	return func(c *Config) error {
		c.BulkOff = !on
		return nil
	}
}

// WithoutReceipts makes a client that never signs receipts, to test that
// servers stop serving it. Tests only.
func WithoutReceipts(t testing.TB) Option {
	return func(c *Config) error {
		t.Helper()
		c.noReceipts = true
		return nil
	}
}

// withLevelParents lowers maxLevelParents, to test it with a small DAG.
// Tests only.
func withLevelParents(t testing.TB, n int) Option {
	return func(c *Config) error {
		t.Helper()
		c.levelParents = n
		return nil
	}
}

// WithForcedReachability fixes what AutoNAT says of the box (public or
// private), for tests on loopback, where AutoNAT never decides (it dials
// back public addresses only). Tests only.
func WithForcedReachability(t testing.TB, r network.Reachability) Option {
	return func(c *Config) error {
		t.Helper()
		c.forceReach = r
		return nil
	}
}

// WithHost runs the box on h, a host built by the caller, instead of
// building one: in-memory networks of many boxes in one process
// (go-libp2p's mocknet, which needs no sockets) use it. The box takes h
// over and closes it. h's key must be the box's identity.
func WithHost(h host.Host) Option {
	return func(c *Config) error {
		if h == nil {
			return errors.New("node: nil host")
		}
		if c.Host != nil {
			return errors.New("node: host set twice")
		}
		c.Host = h
		return nil
	}
}

func parseAddrs(addrs []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("node: bad listen address %q: %w", s, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// ParsePeerAddrs parses multiaddrs ending in /p2p/PEERID into peers,
// merging addresses of the same peer.
func ParsePeerAddrs(addrs []string) ([]peer.AddrInfo, error) {
	ms := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("node: bad peer address %q: %w", s, err)
		}
		ms = append(ms, m)
	}
	peers, err := peer.AddrInfosFromP2pAddrs(ms...)
	if err != nil {
		return nil, fmt.Errorf("node: peer addresses must end in /p2p/PEERID: %w", err)
	}
	return peers, nil
}

// WithFreeTier sets the budget a box serves peers that do not speak
// /ore/pod/1.0.0 from (Kubo, Helia): bytes per second and per UTC day,
// shared by all of them with a fair share each; beyond it they get
// DONT_HAVE. Defaults: DefaultFreeRate and DefaultFreeDaily, SmallFreeRate
// and SmallFreeDaily on the small profile. A negative rate switches the
// free tier off (such peers then stall after the credit window).
func WithFreeTier(bytesPerSecond, bytesPerDay int64) Option {
	return func(c *Config) error {
		if bytesPerSecond >= 0 && bytesPerSecond < freeMaxBlock/8 && bytesPerSecond != 0 {
			return fmt.Errorf("node: free rate %d B/s: at least %d (a block must pass within a few seconds), or negative for none", bytesPerSecond, freeMaxBlock/8)
		}
		if bytesPerDay < 0 {
			return fmt.Errorf("node: free daily budget %d: want ≥ 0 (0: the default)", bytesPerDay)
		}
		c.FreeRate, c.FreeDaily = bytesPerSecond, bytesPerDay
		return nil
	}
}

// freeTier returns the free tier's rate and daily budget (rate < 0: off).
func (c *Config) freeTier() (int64, int64) {
	r, d := c.FreeRate, c.FreeDaily
	if r == 0 {
		r = DefaultFreeRate
		if c.SmallMemory {
			r = SmallFreeRate
		}
	}
	if d == 0 {
		d = DefaultFreeDaily
		if c.SmallMemory {
			d = SmallFreeDaily
		}
	}
	return r, d
}

// WithUploadLimit caps the bytes per second the box serves to other boxes,
// all together (0: no limit): a box lends idle bandwidth, not its uplink.
func WithUploadLimit(bytesPerSecond int64) Option {
	return func(c *Config) error {
		if bytesPerSecond < 0 {
			return fmt.Errorf("node: upload limit must not be negative, got %d", bytesPerSecond)
		}
		c.UploadLimit = bytesPerSecond
		return nil
	}
}

// WithDataCap caps the bytes the box serves in a calendar month (local
// time; 0: no cap), the allowance of a home line: once reached, the box
// answers no new wants until the month ends. The month's count is kept in
// the repo (DataCapFile) across restarts. Node.SetDataCap changes it while
// the box runs.
func WithDataCap(bytesPerMonth int64) Option {
	return func(c *Config) error {
		if bytesPerMonth < 0 {
			return fmt.Errorf("node: data cap must not be negative, got %d", bytesPerMonth)
		}
		c.DataCap = bytesPerMonth
		return nil
	}
}

// WithSpread sets how often at most a block the box seeds leaves it while
// a crowd asks for it (default DefaultSpreadHold; 0: as often as asked). A
// seeded block is one the box did not receive from another box lately:
// content it published, or fetched long ago. The box's upload then goes
// to blocks the crowd does not hold yet, and the crowd trades them among
// itself (BitTorrent's super-seeding). Wants are never refused: a want
// for a block already sent to another box is answered when hold has
// passed since it came (and since the block's last send), unless the
// asker got the block elsewhere first. A hold longer
// than half the stall timeout is cut to that, so that no fetch from this
// box is taken for stalled.
//
// By default a box spreads only when it has an upload limit
// (WithUploadLimit): a box whose uplink is known to be scarce. Spreading
// delays a second asker of a seeded block (by up to the hold, or until
// another box that has it answers), which only pays off when the upload
// is the bottleneck. WithSpread turns it on (or off) whatever the limit.
func WithSpread(hold time.Duration) Option {
	return func(c *Config) error {
		if hold < 0 {
			return fmt.Errorf("node: spread hold must not be negative, got %s", hold)
		}
		c.SpreadHold, c.spreadSet = hold, true
		return nil
	}
}

// WithHeatHalfLife sets the half-life of the box's request heat (default
// 10 min): the shorter, the sooner a burst cools down.
func WithHeatHalfLife(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return errors.New("node: heat half-life must be positive")
		}
		c.HeatHalfLife = d
		return nil
	}
}

// WithScheduling turns heat scheduling on (the default on a ledger
// network) or off: off, the box neither reports heat nor executes
// replication orders, and a coordinator issues none.
func WithScheduling(on bool) Option {
	return func(c *Config) error {
		c.SchedulingOff = !on
		return nil
	}
}

// WithSchedule sets the committee's planner parameters (coordinators).
func WithSchedule(p heat.Params) Option {
	return func(c *Config) error {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("node: schedule: %w", err)
		}
		c.Schedule = p
		return nil
	}
}
