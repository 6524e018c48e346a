package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	boxogw "github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/namesys"
	"github.com/ipfs/boxo/verifcid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/miekg/dns"
	mh "github.com/multiformats/go-multihash"
	"github.com/orecdn/ore/pod"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// Errors a Backend returns from Locate, mapped to HTTP statuses.
var (
	// ErrNotFound: no box provides the content within the not-found
	// timeout (404).
	ErrNotFound = errors.New("gateway: no box provides this content")
	// ErrOutOfResources: the gateway cannot take the content now (503).
	ErrOutOfResources = errors.New("gateway: out of resources")
	// ErrBadTicket: the request's ticket cannot pay for its fetch (403).
	ErrBadTicket = errors.New("gateway: the ticket does not pay for this request")
)

// TicketParam and TicketHeader carry a publisher's ticket (pod.Ticket's
// URL form), the way a CDN's signed URL carries its token: the boxes that
// serve the request's fetches are then paid by the ticket's publisher.
const (
	TicketParam  = "ore-ticket"
	TicketHeader = "Ore-Ticket"
)

type ticketKey struct{}

// WithTicket marks ctx as serving a request under tk.
func WithTicket(ctx context.Context, tk *pod.Ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, tk)
}

// TicketFrom returns the ticket a context serves under, if any.
func TicketFrom(ctx context.Context) *pod.Ticket {
	tk, _ := ctx.Value(ticketKey{}).(*pod.Ticket)
	return tk
}

// Backend is what the gateway needs from a box.
type Backend interface {
	// BlockService reads local blocks and fetches missing ones. Fetches made
	// under a context from WithRoot count towards that root (receipts).
	BlockService() blockservice.BlockService
	// Locate returns once root's own block is local, or fails (wrapping
	// ErrNotFound or ErrOutOfResources when those apply).
	Locate(ctx context.Context, root cid.Cid) error
	// Prefetch fetches root's whole DAG until ctx ends, so the response
	// reads local blocks (many wants in flight, not one block at a time).
	Prefetch(ctx context.Context, root cid.Cid)
	// Done says a request for root has finished.
	Done(root cid.Cid)
}

// Names is implemented by backends that resolve /ipns/ names: the
// gateway resolves names with NameSystem (IPNS records, DNSLink), reads
// records from ValueStore for ?format=ipns-record (boxo validates them),
// and serves /ipns/{name}[/path].
type Names interface {
	ValueStore() routing.ValueStore
	NameSystem() namesys.NameSystem
}

type rootKey struct{}

type offlineKey struct{}

// withOffline marks ctx as serving a request that must not go to the
// network (Cache-Control: only-if-cached).
func withOffline(ctx context.Context) context.Context {
	return context.WithValue(ctx, offlineKey{}, true)
}

// Offline reports whether a request must be answered from local blocks
// alone: a Backend's exchange fails such fetches at once (the gateway then
// answers 412, as the path gateway spec says of only-if-cached).
func Offline(ctx context.Context) bool {
	v, _ := ctx.Value(offlineKey{}).(bool)
	return v
}

// WithRoot marks ctx as serving a request for root.
func WithRoot(ctx context.Context, root cid.Cid) context.Context {
	return context.WithValue(ctx, rootKey{}, root)
}

// RootFrom returns the root a context serves, if any.
func RootFrom(ctx context.Context) (cid.Cid, bool) {
	c, ok := ctx.Value(rootKey{}).(cid.Cid)
	return c, ok
}

type requestKey struct{}

// Request is what a Backend may keep for one request, from its Locate to
// its last block read: a box keeps the bitswap session that fetched the
// root, so the box that sent the root is asked for the rest at once,
// without a broadcast and its round trip first.
type Request struct {
	ctx  context.Context // the request's: it outlives Locate's deadline
	once sync.Once
	val  any
}

// withRequest gives ctx (a request's context) a Request.
func withRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestKey{}, &Request{ctx: ctx})
}

// RequestFrom returns the Request of the HTTP request ctx serves, or nil.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// Once returns what make made on the first call of the request, made with
// the request's context (which ends with the request, not with the
// deadline of the call that came first).
func (r *Request) Once(make func(ctx context.Context) any) any {
	r.once.Do(func() { r.val = make(r.ctx) })
	return r.val
}

// Meter is a budget of response bytes (a box's monthly data cap). The
// gateway reserves each body write before it leaves: a write the budget
// has no room for fails, which cuts that response, and once Refusal says
// the budget is spent, content requests answer 503 with its reason.
type Meter interface {
	// Refusal is nil while the budget has room, and otherwise says why
	// the gateway serves no content and until when.
	Refusal() error
	// Reserve counts n bytes about to be written; false: they would pass
	// the budget, nothing is counted and they must not be written.
	Reserve(n int) bool
	// Unreserve gives back reserved bytes that were not written.
	Unreserve(n int)
}

// ErrBudget fails a response write the gateway's Meter has no room for.
var ErrBudget = errors.New("gateway: the box's data budget has no room for this response")

// Config tunes a gateway. Zero values take the defaults.
type Config struct {
	NotFoundTimeout      time.Duration // no provider within this: 404 (default 30 s)
	RetrievalTimeout     time.Duration // no byte within this mid-transfer: 504 (default 60 s)
	MaxRequestDuration   time.Duration // a request never lasts longer (default 1 h)
	MaxConcurrentFetches int           // requests being served at once; beyond: 503 (default 512)
	RatePerClient        rate.Limit    // requests per second per client; beyond: 429 (default 100)
	BurstPerClient       int           // (default 200)
	// MaxPerClient caps the requests one client has in flight; beyond it,
	// 429 at once (default 16, a 32nd of the default slots). Clients are
	// IPv4 addresses and IPv6 /64s, as for the rate limit. 429 and not
	// 503: the refusal is about this client's load, not the gateway's, and
	// a load balancer or monitor reading 503 would think the gateway full.
	MaxPerClient int
	// ClientEntries bounds the per-client rate limiters kept, least
	// recently seen forgotten first (default 65,536; about 230 bytes each
	// with IPv4 keys, some 15 MiB in all).
	ClientEntries int
	// WriteTimeout bounds each write of a response: a client that reads
	// nothing for this long is cut and its slot freed (default 30 s: a
	// reader stalled by a Wi-Fi roam or a mobile handover, or TCP's
	// retransmissions backing off six times, resumes well within it, and a
	// slot held by a reader that stopped is back within half a minute).
	WriteTimeout time.Duration
	// MinSendRate (bytes per second) is what a client must read on average,
	// counted over the time the gateway waits on it, once its first
	// WriteTimeout is spent (default 1 KiB/s, below a GPRS link; negative:
	// no rate rule). It cuts trickling readers that finish each write just
	// within WriteTimeout.
	MinSendRate float64
	// MaxListingEntries bounds the entries of a directory's HTML listing;
	// a larger directory answers 501 and is fetched as a CAR (default
	// 10,000, some 8 MiB of HTML; boxo would list any number).
	MaxListingEntries int
	// CPUPermits bounds the requests for wholly local DAGs that boxo's
	// handler serves at once (see permitWriter; default: the cores but
	// one, at least one).
	CPUPermits   int
	HeatHalfLife time.Duration // (default 10 min)
	// Domains are the hostnames served as subdomain gateways (the
	// subdomain gateway spec): on such a host, /ipfs/{cid}[/path] is
	// redirected (301) to {cid}.ipfs.{host}[/path] with the CID in
	// base32 CIDv1 (one origin per CID: a site's pages cannot read another
	// site's storage), and {cid}.ipfs.{host}/path is served. Any other host
	// (an IP address, a name not listed) is a path gateway. nil means
	// "localhost", as browsers resolve *.localhost to loopback; an empty
	// non-nil slice means none. An IP address cannot be one (no
	// subdomains): New fails.
	Domains []string
	// Denylist is content the gateway answers 410 Gone for (nil: none).
	Denylist *Denylist
	// Meter counts the body bytes of every response against the box's
	// budget (its monthly data cap; nil: none).
	Meter           Meter
	NoLocalFastPath bool // serve wholly local files through boxo's handler too
	Registry        prometheus.Registerer
	// Gatherer is served at /metrics when PublicMetrics is set. By default
	// the gateway does not publish its metrics (the daemon serves them on
	// its loopback API address): they tell an attacker which limits bite.
	Gatherer      prometheus.Gatherer
	PublicMetrics bool
	Logger        *slog.Logger
}

func (c *Config) defaults() {
	if c.NotFoundTimeout <= 0 {
		c.NotFoundTimeout = 30 * time.Second
	}
	if c.RetrievalTimeout <= 0 {
		c.RetrievalTimeout = 60 * time.Second
	}
	if c.MaxRequestDuration <= 0 {
		c.MaxRequestDuration = time.Hour
	}
	if c.MaxConcurrentFetches <= 0 {
		c.MaxConcurrentFetches = 512
	}
	if c.RatePerClient <= 0 {
		c.RatePerClient = 100
	}
	if c.BurstPerClient <= 0 {
		c.BurstPerClient = 200
	}
	if c.MaxPerClient <= 0 {
		c.MaxPerClient = 16
	}
	if c.ClientEntries <= 0 {
		c.ClientEntries = 1 << 16
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MinSendRate == 0 {
		c.MinSendRate = 1 << 10
	}
	if c.MaxListingEntries <= 0 {
		c.MaxListingEntries = 10_000
	}
	if c.CPUPermits <= 0 {
		c.CPUPermits = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if c.Domains == nil {
		c.Domains = []string{"localhost"}
	}
	if c.HeatHalfLife <= 0 {
		c.HeatHalfLife = 10 * time.Minute
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Gateway is an http.Handler.
type Gateway struct {
	cfg     Config
	backend Backend
	inner   http.Handler  // boxo's handler
	front   http.Handler  // CORS headers, then subdomains, then mux
	cpu     chan struct{} // CPU permits of requests for wholly local DAGs
	heat    *Heat
	slots   chan struct{}
	mux     *http.ServeMux

	clients *clients

	ctypes *lru.Cache[cid.Cid, string] // sniffed types of roots served on the fast path

	responses     *prometheus.CounterVec
	bytes         prometheus.Counter
	local         prometheus.Counter
	fileBytes     prometheus.Counter
	refused       *prometheus.CounterVec // by reason: rate, client_cap, slots
	writeTimeouts prometheus.Counter
}

// Reasons a request is refused before it is served (the "reason" label of
// ore_gateway_refused_total).
const (
	refusedRate  = "rate"       // the client's token bucket is empty (429)
	refusedCap   = "client_cap" // the client has MaxPerClient requests in flight (429)
	refusedSlots = "slots"      // every slot is taken (503)
	// refusedBudget: the box's data budget (Meter) is spent (503).
	refusedBudget = "budget"
)

// New builds a gateway over backend.
func New(cfg Config, backend Backend) (*Gateway, error) {
	cfg.defaults()
	public := map[string]*boxogw.PublicGateway{}
	for _, d := range cfg.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || strings.ContainsAny(d, "/:*") || net.ParseIP(d) != nil {
			return nil, fmt.Errorf("gateway: domain %q: want a hostname without port (an IP address has no subdomains)", d)
		}
		public[d] = &boxogw.PublicGateway{UseSubdomains: true, NoDNSLink: true, DeserializedResponses: true}
	}
	// Identity CIDs carry their block: it is read from the CID itself,
	// never from the store or the network, whatever the backend does.
	bsvc := backend.BlockService()
	var bstore blockstore.Blockstore = blockstore.NewIdStore(bsvc.Blockstore())
	exch := bsvc.Exchange()
	if cfg.Denylist != nil {
		// A listed block is refused wherever it is met: as a root, through
		// a path, inside a DAG.
		bstore = deniedBlocks{Blockstore: bstore, d: cfg.Denylist}
		if exch != nil {
			exch = deniedExchange{Interface: exch, d: cfg.Denylist}
		}
	}
	bsvc = blockservice.New(bstore, exch)
	bopts := []boxogw.BackendOption{boxogw.WithPrometheusRegistry(cfg.Registry)}
	paths := []string{"/ipfs"}
	names, hasNames := backend.(Names)
	if hasNames {
		bopts = append(bopts, boxogw.WithValueStore(names.ValueStore()), boxogw.WithNameSystem(names.NameSystem()))
		paths = append(paths, "/ipns")
	}
	for _, pg := range public {
		pg.Paths = paths
	}
	bb, err := boxogw.NewBlocksBackend(bsvc, bopts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: backend: %w", err)
	}
	ctypes, err := lru.New[cid.Cid, string](1 << 16)
	if err != nil {
		return nil, err
	}
	cl, err := newClients(cfg.RatePerClient, cfg.BurstPerClient, cfg.MaxPerClient, cfg.ClientEntries)
	if err != nil {
		return nil, fmt.Errorf("gateway: client limiters: %w", err)
	}
	g := &Gateway{
		ctypes: ctypes, clients: cl,
		cfg: cfg, backend: backend, heat: NewHeat(cfg.HeatHalfLife, maxHeatRoots),
		slots: make(chan struct{}, cfg.MaxConcurrentFetches), cpu: make(chan struct{}, cfg.CPUPermits),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_gateway_responses_total", Help: "Gateway responses by status code."}, []string{"code"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_gateway_sent_bytes_total", Help: "Body bytes the gateway sent."}),
		local: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_gateway_local_responses_total", Help: "Responses served on the local fast path (a wholly local UnixFS file)."}),
		fileBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_gateway_local_file_bytes_total", Help: "Body bytes of the local fast path sent from files on disk (sendfile on a TCP connection)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_gateway_refused_total", Help: "Requests refused before being served: rate (429), client_cap (429), slots (503), budget (503)."}, []string{"reason"}),
		writeTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_gateway_write_timeouts_total", Help: "Responses cut because the client did not read within the write deadline or below the minimum rate."}),
	}
	for _, r := range []string{refusedRate, refusedCap, refusedSlots, refusedBudget} {
		g.refused.WithLabelValues(r) // every reason shows, at zero
	}
	slotsInUse := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ore_gateway_slots_in_use", Help: "Requests being served now (of MaxConcurrentFetches)."},
		func() float64 { return float64(len(g.slots)) })
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ore_gateway_client_limiters", Help: "Per-client rate limiters held (of ClientEntries)."},
		func() float64 { return float64(g.clients.entries()) })
	heatRoots := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_gateway_heat_roots",
		Help: fmt.Sprintf("Roots in the gateway's request heat counter (at most %d).", maxHeatRoots)},
		func() float64 { return float64(g.heat.Len()) })
	for _, c := range []prometheus.Collector{g.responses, g.bytes, g.local, g.fileBytes, g.refused, g.writeTimeouts, slotsInUse, entries, heatRoots} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	bcfg := boxogw.Config{
		DeserializedResponses: true,
		NoDNSLink:             true,
		DisableHTMLErrors:     true,
		// Clients (and the gateway conformance tests) still read it.
		DeprecatedXIpfsPath: true,
		PublicGateways:      public,
		RetrievalTimeout:    cfg.RetrievalTimeout,
		MaxRequestDuration:  cfg.MaxRequestDuration,
		MetricsRegistry:     cfg.Registry,
	}
	ll := listingLimit{BlocksBackend: bb, dag: merkledag.NewDAGService(bsvc), max: cfg.MaxListingEntries}
	g.inner = boxogw.NewHandler(bcfg, ll)
	content := http.NewServeMux()
	content.HandleFunc("/ipfs/", g.serveContent)
	content.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.fail(w, http.StatusNotFound, "ore serves /ipfs/{cid}[/path]")
	})
	hosts := boxogw.NewHostnameHandler(bcfg, ll, content)
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	served := "ore serves /ipfs/{cid}[/path] and /healthz"
	if cfg.PublicMetrics && cfg.Gatherer != nil {
		g.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
		served += " and /metrics"
	}
	g.mux.Handle("/ipfs/", hosts)
	if hasNames {
		content.HandleFunc("/ipns/", g.serveName)
		g.mux.Handle("/ipns/", hosts)
		served = strings.Replace(served, "/ipfs/{cid}[/path]", "/ipfs/{cid}[/path], /ipns/{name}[/path]", 1)
	}
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.fail(w, http.StatusNotFound, served)
	})
	// Every response carries the CORS headers (the specs' and boxo's set,
	// any origin): a page on another origin can read content, errors
	// included. A request to {cid}.ipfs.{domain} is content whatever its
	// path (a site's own /healthz is a file).
	g.front = boxogw.NewHeaders(nil).WithDeprecatedXIpfsPath().ApplyCors().Wrap(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS != nil && r.URL.Scheme == "" {
				// boxo's redirects keep the request's scheme, which a
				// server's request URL lacks.
				r.URL.Scheme = "https"
			}
			if g.subdomainHost(r) {
				hosts.ServeHTTP(w, r)
				return
			}
			g.mux.ServeHTTP(w, r)
		}))
	return g, nil
}

// SlotsInUse is the number of requests being served now.
func (g *Gateway) SlotsInUse() int { return len(g.slots) }

// Heat is the request heat per root CID.
func (g *Gateway) Heat() *Heat { return g.heat }

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dw := newDeadlineWriter(w, g.cfg.WriteTimeout, g.cfg.MinSendRate, time.Now, func() {
		g.writeTimeouts.Inc()
		g.cfg.Logger.Debug("client cut: it did not read in time", "client", clientKey(r.RemoteAddr), "path", r.URL.Path)
	})
	defer dw.finish()
	cw := &countingWriter{ResponseWriter: dw, meter: g.cfg.Meter}
	g.front.ServeHTTP(cw, r)
	if cw.code == 0 {
		cw.code = http.StatusOK
	}
	g.responses.WithLabelValues(fmt.Sprint(cw.code)).Inc()
	g.bytes.Add(float64(cw.n))
	g.fileBytes.Add(float64(cw.fileN))
}

// fail writes an error the client can read.
func (g *Gateway) fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), msg)
}

// subdomainHost reports whether r asks for {id}.{ns}.{domain} of one of
// the configured domains.
func (g *Gateway) subdomainHost(r *http.Request) bool {
	host := cmp.Or(r.Header.Get("X-Forwarded-Host"), r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, d := range g.cfg.Domains {
		if rest, ok := strings.CutSuffix(host, "."+d); ok && strings.Contains(rest, ".") {
			return true
		}
	}
	return false
}

// formats are the values of ?format= the gateway answers (the path and
// trustless gateway specs' list, as boxo maps them to media types).
var formats = []string{"raw", "car", "tar", "json", "cbor", "dag-json", "dag-cbor", "ipns-record"}

// admit applies what every content request goes through before any
// lookup: read-only methods, a known ?format=, the data budget, the client's rate limit and its cap on
// requests in flight, and the answer to a CORS preflight. ok false: the
// response is written. Call leave when the request ends.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request) (leave func(), ok bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		g.fail(w, http.StatusMethodNotAllowed, "the gateway is read-only")
		return nil, false
	}
	if f := r.URL.Query().Get("format"); f != "" && !slices.Contains(formats, f) {
		// boxo ignores an unknown ?format= and answers the default
		// response, which a client that asked for a format it cannot get
		// would take for the one it asked for.
		g.fail(w, http.StatusBadRequest, fmt.Sprintf("unsupported ?format=%s: the gateway answers %s", f, strings.Join(formats, ", ")))
		return nil, false
	}
	if m := g.cfg.Meter; m != nil {
		if err := m.Refusal(); err != nil {
			g.refused.WithLabelValues(refusedBudget).Inc()
			// The refusal itself is a few hundred bytes the budget cannot
			// pay: it leaves unmetered, or the client would read nothing.
			if cw, ok := w.(*countingWriter); ok {
				cw.unmetered = true
			}
			g.fail(w, http.StatusServiceUnavailable, err.Error())
			return nil, false
		}
	}
	client := clientKey(r.RemoteAddr)
	if !g.clients.allow(client) {
		g.refused.WithLabelValues(refusedRate).Inc()
		w.Header().Set("Retry-After", "1")
		g.fail(w, http.StatusTooManyRequests, fmt.Sprintf("more than %v requests per second from %s", g.cfg.RatePerClient, client))
		return nil, false
	}
	// The per-client cap before the slots: a client over its cap must not
	// take a slot even for an instant.
	if !g.clients.enter(client) {
		g.refused.WithLabelValues(refusedCap).Inc()
		w.Header().Set("Retry-After", "1")
		g.fail(w, http.StatusTooManyRequests, fmt.Sprintf("%s has %d requests in flight, its limit", client, g.cfg.MaxPerClient))
		return nil, false
	}
	if r.Method == http.MethodOptions {
		// A CORS preflight: 200 with Allow and the CORS headers, before
		// any lookup (boxo's handler means to answer the same, but its
		// retrieval-timeout writer drops headers of a response with no
		// body).
		g.clients.leave(client)
		w.Header()["Allow"] = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
		w.WriteHeader(http.StatusOK)
		return nil, false
	}
	return func() { g.clients.leave(client) }, true
}

// slot takes one of the gateway's slots, or answers 503. Call free when
// the request ends.
func (g *Gateway) slot(w http.ResponseWriter) (free func(), ok bool) {
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots }, true
	default:
		g.refused.WithLabelValues(refusedSlots).Inc()
		w.Header().Set("Retry-After", "1")
		g.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("the gateway is serving %d requests, its limit; retry shortly", g.cfg.MaxConcurrentFetches))
		return nil, false
	}
}

func (g *Gateway) serveContent(w http.ResponseWriter, r *http.Request) {
	leave, ok := g.admit(w, r)
	if !ok {
		return
	}
	defer leave()
	rest := strings.TrimPrefix(r.URL.Path, "/ipfs/")
	seg, _, _ := strings.Cut(rest, "/")
	root, err := cid.Decode(seg)
	if err != nil {
		g.fail(w, http.StatusBadRequest, fmt.Sprintf("%q is not a CID: %v", seg, err))
		return
	}
	if _, sub, _ := strings.Cut(rest, "/"); g.cfg.Denylist.DeniedPath(root, sub) {
		g.fail(w, http.StatusGone, fmt.Sprintf("/ipfs/%s is blocked by this gateway's denylist", rest))
		return
	}
	identity := root.Prefix().MhType == mh.IDENTITY
	if identity && root.Prefix().MhLength > verifcid.DefaultMaxIdentityDigestSize {
		g.fail(w, http.StatusBadRequest, fmt.Sprintf("identity CID of %d bytes: at most %d", root.Prefix().MhLength, verifcid.DefaultMaxIdentityDigestSize))
		return
	}
	// only-if-cached (the path gateway spec): answer from local blocks or
	// 412 at once, never wait on the network.
	offline := r.Header.Get("Cache-Control") == "only-if-cached"
	free, ok := g.slot(w)
	if !ok {
		return
	}
	defer free()
	if r.URL.Query().Has(FnParam) {
		g.serveJob(w, r, root, rest)
		return
	}
	if v := cmp.Or(r.URL.Query().Get(TicketParam), r.Header.Get(TicketHeader)); v != "" {
		tk, err := pod.ParseTicket(v)
		if err != nil {
			g.fail(w, http.StatusBadRequest, fmt.Sprintf("%s: %v", TicketParam, err))
			return
		}
		r = r.WithContext(WithTicket(r.Context(), tk))
	}
	cw := w.(*countingWriter)
	start := cw.n
	if lf, ok := g.backend.(LocalFiles); ok && !g.cfg.NoLocalFastPath && !identity && localEligible(r, rest) {
		if f, err := lf.OpenLocal(r.Context(), root); err == nil {
			served := g.serveLocal(w, r, root, f)
			if c, ok := f.(io.Closer); ok {
				_ = c.Close()
			}
			if served {
				g.heat.Record(root, cw.n-start, time.Now())
				return
			}
		}
	}
	r = r.WithContext(withRequest(r.Context()))
	if offline {
		r = r.WithContext(withOffline(r.Context()))
	} else if !identity {
		lctx, cancel := context.WithTimeout(r.Context(), g.cfg.NotFoundTimeout)
		err = g.backend.Locate(lctx, root)
		cancel()
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		g.fail(w, http.StatusNotFound, fmt.Sprintf("no box provides %s within %s: check the CID, or publish the content", root, g.cfg.NotFoundTimeout))
		return
	case errors.Is(err, ErrOutOfResources):
		w.Header().Set("Retry-After", "5")
		g.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	case errors.Is(err, ErrBadTicket):
		g.fail(w, http.StatusForbidden, err.Error())
		return
	case r.Context().Err() != nil:
		return // the client left
	case errors.Is(err, context.DeadlineExceeded):
		g.fail(w, http.StatusGatewayTimeout, fmt.Sprintf("could not retrieve %s within %s", root, g.cfg.NotFoundTimeout))
		return
	default:
		g.fail(w, http.StatusBadGateway, err.Error())
		return
	}
	defer g.backend.Done(root)
	ctx, cancel := context.WithCancel(WithRoot(r.Context(), root))
	defer cancel()
	if wantsWholeDAG(r, rest) && !offline && !identity {
		go g.backend.Prefetch(ctx, root)
	}
	if ld, ok := g.backend.(LocalDAGs); ok && ld.Complete(ctx, root) {
		pw := &permitWriter{ResponseWriter: w, permits: g.cpu, ctx: ctx}
		if err := pw.acquire(); err != nil {
			return // the client left while it waited
		}
		defer pw.release()
		w = pw
	}
	g.inner.ServeHTTP(w, r.WithContext(ctx))
	g.heat.Record(root, cw.n-start, time.Now())
}

// IsDNSLinkName reports whether s (a name without /ipns/) is a domain
// resolved through DNSLink (the TXT record of _dnslink.s) rather than an
// IPNS key: a DNS name of two labels or more.
func IsDNSLinkName(s string) bool {
	if _, err := ipns.NameFromString(s); err == nil {
		return false
	}
	_, ok := dns.IsDomainName(s)
	return ok && strings.Contains(strings.Trim(s, "."), ".")
}

// serveName answers /ipns/{name}[/path] through boxo's handler, which
// resolves the name's record from the backend's ValueStore (validating its
// signature and expiry) and sets the caching headers from its TTL. The same
// client limits and slots apply as to /ipfs/.
func (g *Gateway) serveName(w http.ResponseWriter, r *http.Request) {
	leave, ok := g.admit(w, r)
	if !ok {
		return
	}
	defer leave()
	seg, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/ipns/"), "/")
	if _, err := ipns.NameFromString(seg); err != nil && !IsDNSLinkName(seg) {
		g.fail(w, http.StatusBadRequest, fmt.Sprintf("%q is not an IPNS name (a k51... key or a peer ID) nor a DNSLink domain: %v", seg, err))
		return
	}
	if g.cfg.Denylist.DeniedNamePath(seg, sub) {
		g.fail(w, http.StatusGone, fmt.Sprintf("/ipns/%s is blocked by this gateway's denylist", strings.TrimPrefix(r.URL.Path, "/ipns/")))
		return
	}
	free, ok := g.slot(w)
	if !ok {
		return
	}
	defer free()
	if r.Header.Get("Cache-Control") == "only-if-cached" {
		r = r.WithContext(withOffline(r.Context()))
	}
	g.inner.ServeHTTP(w, r)
}

// wantsWholeDAG reports whether the response will read root's whole DAG:
// the root itself (no subpath), not a single raw block. Like a CDN edge's
// cache fill, a Range request fills the whole object for the seeks to come.
func wantsWholeDAG(r *http.Request, rest string) bool {
	if strings.Contains(strings.Trim(rest, "/"), "/") {
		return false
	}
	if r.URL.Query().Get("format") == "raw" || strings.Contains(r.Header.Get("Accept"), "application/vnd.ipld.raw") {
		return false
	}
	return r.Method == http.MethodGet
}

// maxHeatRoots bounds the roots in the heat counter, fed by any HTTP
// client: it forgets the coldest tenth when full.
const maxHeatRoots = 100_000

// countingWriter records the status and body bytes of a response, and
// reserves each write with the gateway's Meter, if any.
type countingWriter struct {
	http.ResponseWriter
	code      int
	n         int64
	fileN     int64 // of n, sent from a file (sendFile)
	meter     Meter // nil: none
	unmetered bool  // the response is the budget's own refusal
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	metered := c.meter != nil && !c.unmetered && len(p) > 0
	if metered && !c.meter.Reserve(len(p)) {
		return 0, ErrBudget
	}
	k, err := c.ResponseWriter.Write(p)
	if metered && k < len(p) {
		c.meter.Unreserve(len(p) - k)
	}
	c.n += int64(k)
	return k, err
}

// sendFile is Write's metering and counting around a fileSender beneath.
func (c *countingWriter) sendFile(f *os.File, n int64) (int64, error) {
	fs, ok := c.ResponseWriter.(fileSender)
	if !ok {
		return 0, errNoSendFile
	}
	if c.code == 0 {
		c.code = http.StatusOK
	}
	metered := c.meter != nil && !c.unmetered && n > 0
	if metered && !c.meter.Reserve(int(n)) {
		return 0, ErrBudget
	}
	k, err := fs.sendFile(f, n)
	if metered && k < n {
		c.meter.Unreserve(int(n - k))
	}
	c.n += k
	c.fileN += k
	return k, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
