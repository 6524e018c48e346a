package testnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	dto "github.com/prometheus/client_model/go"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

// AbuseConfig shapes BenchGatewayAbuse. Zero fields take the defaults.
type AbuseConfig struct {
	Duration     time.Duration  // how long the abuse lasts (default 60 s: twice the default write deadline)
	HonestRate   float64        // fetches of the cached 1 MiB object per second by the honest client (default 20)
	FloodRate    float64        // flood requests per second, all flood addresses together (default 2,000; negative: none)
	FloodClients int            // addresses the flood comes from (default: enough for 80/s each, under the rate limit)
	SlowClients  int            // addresses of slow readers (default 8; negative: none)
	SlowConns    int            // slow connections per address (default 64: 512 in all, the gateway's slots)
	HeavyClients int            // addresses asking for the huge directory and the deep DAG (default 2; negative: none)
	HeavyConns   int            // heavy requests in flight per address (default 2)
	DirEntries   int            // entries of the huge directory (default 100,000)
	ChainDepth   int            // dag-pb nodes in the deep chain (default 10,000)
	BigObject    int64          // the slow readers' cached object (default 64 MiB)
	Gateway      gateway.Config // the gateway's limits (zero: its defaults)
}

func (c *AbuseConfig) defaults() {
	if c.Duration <= 0 {
		c.Duration = time.Minute
	}
	if c.HonestRate <= 0 {
		c.HonestRate = 20
	}
	if c.FloodRate < 0 {
		c.FloodRate = 0
	} else if c.FloodRate == 0 {
		c.FloodRate = 2000
	}
	if c.FloodClients <= 0 {
		c.FloodClients = max(1, int(c.FloodRate/80+0.999))
	}
	orDefault(&c.SlowClients, 8)
	orDefault(&c.SlowConns, 64)
	orDefault(&c.HeavyClients, 2)
	orDefault(&c.HeavyConns, 2)
	if c.DirEntries <= 0 {
		c.DirEntries = 100_000
	}
	if c.ChainDepth <= 0 {
		c.ChainDepth = 10_000
	}
	if c.BigObject <= 0 {
		c.BigObject = 64 << 20
	}
}

// orDefault gives a zero count its default; a negative one means none.
func orDefault(v *int, d int) {
	switch {
	case *v == 0:
		*v = d
	case *v < 0:
		*v = 0
	}
}

// The abuse bench's goal: the honest client is answered (200, whole body,
// within its 5 s timeout) at least AbuseGoalAnswered of the time, its p99
// for the cached 1 MiB object is under AbuseGoalP99Ms, the process's peak
// RSS during the abuse stays under AbuseGoalRSSMiB, and the gateway still
// answers /healthz after it. The memory bound is the whole bench process
// (the attackers' and honest client's sockets and goroutines too, which
// are small): half of a 1 GiB VPS, with the gateway at its default 512
// slots.
const (
	AbuseGoalAnswered = 0.99
	AbuseGoalP99Ms    = 100.0
	AbuseGoalRSSMiB   = 512.0
)

// AbuseFigures are what BenchGatewayAbuse measured.
type AbuseFigures struct {
	Config  AbuseConfig `json:"-"`
	Seconds float64     `json:"seconds"`

	HonestRequests int            `json:"honest_requests"`
	HonestAnswered int            `json:"honest_answered"` // 200 with the whole body within 5 s
	HonestFraction float64        `json:"honest_answered_fraction"`
	HonestFailed   map[string]int `json:"honest_failed"` // by status code, "timeout" or "error"
	HonestP50Ms    float64        `json:"honest_p50_ms"` // whole 1 MiB response, answered requests
	HonestP99Ms    float64        `json:"honest_p99_ms"`
	HonestMaxMs    float64        `json:"honest_max_ms"`

	FloodSent     int            `json:"flood_sent"`
	FloodRate     float64        `json:"flood_rate_per_s"` // sent over the abuse's duration
	FloodClients  int            `json:"flood_clients"`
	FloodByStatus map[string]int `json:"flood_by_status"`

	SlowDials   int `json:"slow_dials"`   // connections the slow readers opened
	SlowHeld    int `json:"slow_held"`    // of them answered 200 (then read slowly or not at all)
	SlowRefused int `json:"slow_refused"` // answered at once with 429 or 503

	Heavy map[string]HeavyFigures `json:"heavy"` // by kind of request

	// The gateway's own counters over the run.
	RefusedRate   int `json:"refused_rate"`
	RefusedCap    int `json:"refused_client_cap"`
	RefusedSlots  int `json:"refused_slots"`
	WriteTimeouts int `json:"write_timeouts"`
	PeakSlots     int `json:"peak_slots_in_use"` // sampled every 100 ms
	Limiters      int `json:"client_limiters"`

	CPUCores   float64 `json:"cpu_cores"`     // process CPU time over wall time during the abuse
	PeakHeapMB float64 `json:"peak_heap_mib"` // Go heap objects, sampled every 100 ms during the abuse
	PeakRSSMB  float64 `json:"peak_rss_mib"`  // VmRSS, sampled every 100 ms during the abuse
	HWMMB      float64 `json:"vmhwm_mib"`     // VmHWM: the process's peak RSS since it started (set-up included)
	Alive      bool    `json:"alive"`         // /healthz answered 200 after the abuse
}

// HeavyFigures are one kind of heavy request's outcomes.
type HeavyFigures struct {
	Requests int            `json:"requests"`
	ByStatus map[string]int `json:"by_status"`
	P50Ms    float64        `json:"p50_ms"`
	MaxMs    float64        `json:"max_ms"`
	MiB      float64        `json:"mib_per_response"` // mean body size of the 200s
}

// Goal says whether the run meets the abuse goal, and why not.
func (f AbuseFigures) Goal() (met bool, why string) {
	var not []string
	if f.HonestFraction < AbuseGoalAnswered {
		not = append(not, fmt.Sprintf("honest answered %.2f%%", 100*f.HonestFraction))
	}
	if f.HonestP99Ms >= AbuseGoalP99Ms {
		not = append(not, fmt.Sprintf("honest p99 %.1f ms", f.HonestP99Ms))
	}
	if f.PeakRSSMB >= AbuseGoalRSSMiB {
		not = append(not, fmt.Sprintf("peak RSS %.0f MiB", f.PeakRSSMB))
	}
	if !f.Alive {
		not = append(not, "the gateway no longer answers /healthz")
	}
	if len(not) > 0 {
		return false, "not met: " + strings.Join(not, ", ")
	}
	return true, fmt.Sprintf("met: honest %.2f%% answered, p99 %.1f ms, peak RSS %.0f MiB, alive", 100*f.HonestFraction, f.HonestP99Ms, f.PeakRSSMB)
}

// Loopback addresses of the clients: Linux routes all of 127.0.0.0/8 to
// lo, so each attacker is a client of its own to the gateway's limits.
const honestAddr = "127.0.0.1"

func attackerAddr(group, i int) string { return fmt.Sprintf("127.0.%d.%d", group, i+1) }

// BenchGatewayAbuse runs a gateway on loopback under abuse while an honest
// client fetches a cached 1 MiB object at a steady rate: slow readers that
// request a large cached object and read a few bytes a second or nothing,
// a request flood of small cached objects at a fixed rate, and requests
// for a huge directory and a deep chain of dag-pb nodes (as HTML or JSON
// listing, file and CAR). Everything runs in this process.
func BenchGatewayAbuse(ctx context.Context, cfg AbuseConfig, opts ...Option) (AbuseFigures, error) {
	cfg.defaults()
	f := AbuseFigures{Config: cfg, FloodClients: cfg.FloodClients}
	nw, err := New(ctx, 1, append(opts, WithNodeOptions(node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"), node.WithGateway(cfg.Gateway)))...)
	if err != nil {
		return f, err
	}
	defer nw.Close()
	nd := nw.Nodes[0]
	c, err := abuseContent(ctx, nd, nw.root, cfg)
	if err != nil {
		return f, err
	}
	base := "http://" + nd.GatewayAddr()
	honestURL := base + "/ipfs/" + c.honest.String()
	// Warm: the honest object and the heavy ones once, as a cache would be
	// (a heavy request may be refused: the gateway limits them).
	warm := clientFrom(honestAddr, 4, 2*time.Minute)
	for i, u := range append([]string{honestURL}, c.heavyURLs(base)...) {
		if code, _, err := fetch(ctx, warm, u); err != nil && (i == 0 || code == 0) {
			return f, fmt.Errorf("testnet: warm %s: %w", u, err)
		}
	}
	warm.CloseIdleConnections()

	actx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	sample := startSampler(nd.Gateway())
	cpu0, start := processCPU(), time.Now()

	honest := &honestRun{failed: map[string]int{}}
	wg.Add(1)
	go func() { defer wg.Done(); honest.run(actx, honestURL, cfg.HonestRate) }()
	flood := &statusCount{m: map[string]int{}}
	if cfg.FloodRate > 0 {
		for i := range cfg.FloodClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				floodFrom(actx, attackerAddr(1, i), base, c.small, cfg.FloodRate/float64(cfg.FloodClients), flood)
			}()
		}
	}
	slow := &slowCount{}
	hold := cfg.Gateway.WriteTimeout
	if hold <= 0 {
		hold = 30 * time.Second
	}
	for i := range cfg.SlowClients {
		for k := range cfg.SlowConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slowReader(actx, attackerAddr(2, i), nd.GatewayAddr(), c.big, k%2 == 0, hold+10*time.Second, slow)
			}()
		}
	}
	heavy := &heavyRun{kinds: map[string]*heavyKind{}}
	for i := range cfg.HeavyClients {
		cl := clientFrom(attackerAddr(3, i), cfg.HeavyConns, time.Minute)
		for k := range cfg.HeavyConns {
			wg.Add(1)
			go func() { defer wg.Done(); heavy.run(actx, cl, c.heavyKinds(base), k) }()
		}
	}
	<-actx.Done()
	wall := time.Since(start)
	cpu := processCPU() - cpu0
	wg.Wait()
	peaks := sample.stop()

	f.Seconds = wall.Seconds()
	f.CPUCores = cpu.Seconds() / wall.Seconds()
	f.PeakHeapMB, f.PeakRSSMB, f.PeakSlots = peaks.heap/(1<<20), peaks.rss/(1<<20), peaks.slots
	if hwm, ok := procStatusKiB("VmHWM"); ok {
		f.HWMMB = float64(hwm) / 1024
	}
	honest.figures(&f)
	f.FloodSent, f.FloodByStatus = flood.total(), flood.snapshot()
	f.FloodRate = float64(f.FloodSent) / wall.Seconds()
	f.SlowDials, f.SlowHeld, f.SlowRefused = int(slow.dials.Load()), int(slow.held.Load()), int(slow.refused.Load())
	f.Heavy = heavy.figures()

	mfs, err := nd.Metrics().Gather()
	if err != nil {
		return f, fmt.Errorf("testnet: gather metrics: %w", err)
	}
	f.RefusedRate = int(metricValue(mfs, "ore_gateway_refused_total", "rate"))
	f.RefusedCap = int(metricValue(mfs, "ore_gateway_refused_total", "client_cap"))
	f.RefusedSlots = int(metricValue(mfs, "ore_gateway_refused_total", "slots"))
	f.WriteTimeouts = int(metricValue(mfs, "ore_gateway_write_timeouts_total", ""))
	f.Limiters = int(metricValue(mfs, "ore_gateway_client_limiters", ""))

	hc := clientFrom(honestAddr, 1, 5*time.Second)
	defer hc.CloseIdleConnections()
	if resp, err := hc.Get(base + "/healthz"); err == nil {
		f.Alive = resp.StatusCode == http.StatusOK
		resp.Body.Close()
	}
	return f, nil
}

// abuseObjects are the bench's cached content.
type abuseObjects struct {
	honest, big cid.Cid   // the 1 MiB object, the slow readers' object
	small       []cid.Cid // the flood's objects
	dir, chain  cid.Cid   // the huge directory, the deep chain
}

// heavyKinds are the heavy requests, by name.
func (c abuseObjects) heavyKinds(base string) [][2]string {
	return [][2]string{
		{"dir-listing", base + "/ipfs/" + c.dir.String() + "/"},
		{"dir-car", base + "/ipfs/" + c.dir.String() + "?format=car"},
		{"chain-file", base + "/ipfs/" + c.chain.String()},
		{"chain-car", base + "/ipfs/" + c.chain.String() + "?format=car"},
	}
}

func (c abuseObjects) heavyURLs(base string) []string {
	var out []string
	for _, k := range c.heavyKinds(base) {
		out = append(out, k[1])
	}
	return out
}

// abuseContent adds the bench's content to the gateway box: random files
// (1 MiB, the big object, 16 small ones) and, built block by block into its
// store and pinned, a directory of DirEntries entries (a HAMT, as any
// UnixFS writer shards one this large) and a chain of ChainDepth dag-pb
// file nodes over one 1 KiB raw leaf.
func abuseContent(ctx context.Context, nd *node.Node, root string, cfg AbuseConfig) (abuseObjects, error) {
	var c abuseObjects
	dir := filepath.Join(root, "abuse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, err
	}
	add := func(name string, size int64, seed uint64) (cid.Cid, error) {
		p := filepath.Join(dir, name)
		if err := WriteRandomFile(p, size, seed); err != nil {
			return cid.Undef, err
		}
		res, err := nd.AddPath(ctx, p, node.AddNoProvide())
		if err != nil {
			return cid.Undef, fmt.Errorf("testnet: add %s: %w", name, err)
		}
		return res.Root, os.Remove(p)
	}
	var err error
	if c.honest, err = add("honest.bin", 1<<20, 1); err != nil {
		return c, err
	}
	if c.big, err = add("big.bin", cfg.BigObject, 2); err != nil {
		return c, err
	}
	for i := range 16 {
		s, err := add(fmt.Sprintf("small%d.bin", i), 4<<10, uint64(10+i))
		if err != nil {
			return c, err
		}
		c.small = append(c.small, s)
	}
	dag := merkledag.NewDAGService(blockservice.New(nd.Store(), offline.Exchange(nd.Store())))
	if c.dir, err = hugeDirectory(ctx, dag, c.small[0], cfg.DirEntries); err != nil {
		return c, err
	}
	if c.chain, err = deepChain(ctx, dag, cfg.ChainDepth); err != nil {
		return c, err
	}
	for _, r := range []cid.Cid{c.dir, c.chain} {
		if err := nd.Store().Pin(ctx, r); err != nil {
			return c, fmt.Errorf("testnet: pin %s: %w", r, err)
		}
	}
	return c, nil
}

// hugeDirectory builds a directory of n entries, each the file entry.
func hugeDirectory(ctx context.Context, dag ipld.DAGService, entry cid.Cid, n int) (cid.Cid, error) {
	fileNode, err := dag.Get(ctx, entry)
	if err != nil {
		return cid.Undef, fmt.Errorf("testnet: directory entry: %w", err)
	}
	d, err := uio.NewDirectory(dag, uio.WithCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}))
	if err != nil {
		return cid.Undef, err
	}
	for i := range n {
		if err := d.AddChild(ctx, fmt.Sprintf("entry-%07d.bin", i), fileNode); err != nil {
			return cid.Undef, fmt.Errorf("testnet: directory entry %d: %w", i, err)
		}
	}
	root, err := d.GetNode()
	if err != nil {
		return cid.Undef, fmt.Errorf("testnet: directory node: %w", err)
	}
	if err := dag.Add(ctx, root); err != nil {
		return cid.Undef, fmt.Errorf("testnet: directory node: %w", err)
	}
	return root.Cid(), nil
}

// deepChain builds a UnixFS file of 1 KiB whose root is depth dag-pb nodes
// above its one raw leaf, each with a single link.
func deepChain(ctx context.Context, dag ipld.DAGService, depth int) (cid.Cid, error) {
	data := make([]byte, 1<<10)
	_, _ = rand.Read(data)
	leaf := merkledag.NewRawNode(data)
	if err := dag.Add(ctx, leaf); err != nil {
		return cid.Undef, fmt.Errorf("testnet: chain leaf: %w", err)
	}
	child, size := leaf.Cid(), uint64(len(data))
	for range depth {
		fsn := ft.NewFSNode(ft.TFile)
		fsn.AddBlockSize(uint64(len(data)))
		b, err := fsn.GetBytes()
		if err != nil {
			return cid.Undef, err
		}
		pn := merkledag.NodeWithData(b)
		if err := pn.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}); err != nil {
			return cid.Undef, err
		}
		if err := pn.AddRawLink("", &ipld.Link{Cid: child, Size: size}); err != nil {
			return cid.Undef, err
		}
		if err := dag.Add(ctx, pn); err != nil {
			return cid.Undef, fmt.Errorf("testnet: chain node: %w", err)
		}
		raw := pn.RawData()
		child, size = pn.Cid(), size+uint64(len(raw))
	}
	return child, nil
}

// clientFrom is an HTTP client whose connections leave from the loopback
// address ip.
func clientFrom(ip string, conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: d.DialContext,
		MaxIdleConnsPerHost: conns, DisableCompression: true}}
}

// fetch GETs url and reads the whole body: status, bytes, error.
func fetch(ctx context.Context, c *http.Client, url string) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("testnet: GET %s: %d", url, resp.StatusCode)
	}
	return resp.StatusCode, n, err
}

// honestRun is the honest client: the cached 1 MiB object at a steady
// rate, one request at a time, each with a 5 s timeout.
type honestRun struct {
	lat    []time.Duration
	n      int
	failed map[string]int
}

func (h *honestRun) run(ctx context.Context, url string, rate float64) {
	c := clientFrom(honestAddr, 2, 5*time.Second)
	defer c.CloseIdleConnections()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		code, n, err := fetch(context.Background(), c, url)
		d := time.Since(start)
		if ctx.Err() != nil && err != nil {
			return // the run ended under this request
		}
		h.n++
		switch {
		case err == nil && n == 1<<20:
			h.lat = append(h.lat, d)
		case code != 0 && code != http.StatusOK:
			h.failed[strconv.Itoa(code)]++
		default:
			h.failed[errorKind(err)]++
		}
	}
}

// errorKind names a failed request's cause for the counts.
func errorKind(err error) string {
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "no descriptors"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no ports"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return "refused or reset"
	}
	return "error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (h *honestRun) figures(f *AbuseFigures) {
	f.HonestRequests, f.HonestAnswered, f.HonestFailed = h.n, len(h.lat), h.failed
	if h.n > 0 {
		f.HonestFraction = float64(len(h.lat)) / float64(h.n)
	}
	if len(h.lat) > 0 {
		f.HonestP50Ms, f.HonestP99Ms, f.HonestMaxMs = pct(h.lat, 50), pct(h.lat, 99), pct(h.lat, 100)
	}
}

// statusCount counts outcomes by status code.
type statusCount struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *statusCount) add(code int, err error) {
	k := strconv.Itoa(code)
	if code == 0 {
		k = errorKind(err)
	}
	s.mu.Lock()
	s.m[k]++
	s.mu.Unlock()
}

func (s *statusCount) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

func (s *statusCount) total() int {
	n := 0
	for _, v := range s.snapshot() {
		n += v
	}
	return n
}

// floodFrom sends GETs of the small objects from one address at a fixed
// rate, each on its own goroutine (an open loop: a slow gateway does not
// slow the flood, and a flood goroutine scheduled late catches up).
func floodFrom(ctx context.Context, ip, base string, objs []cid.Cid, rate float64, out *statusCount) {
	c := clientFrom(ip, 64, 10*time.Second)
	defer c.CloseIdleConnections()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	start, sent := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if ctx.Err() != nil {
			return // a late tick and the end were both ready
		}
		for due := int(time.Since(start).Seconds() * rate); sent < due; sent++ {
			url := base + "/ipfs/" + objs[sent%len(objs)].String()
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, err := fetch(context.Background(), c, url)
				out.add(code, err)
			}()
		}
	}
}

// slowCount counts the slow readers' connections.
type slowCount struct{ dials, held, refused atomic.Int64 }

// slowReader opens connections from ip that request the big object and
// then read 8 bytes a second (trickle) or nothing; each is held for hold
// (longer than the gateway's write deadline), then replaced. A refused
// request (429, 503) is retried a second later.
func slowReader(ctx context.Context, ip, addr string, big cid.Cid, trickle bool, hold time.Duration, out *slowCount) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			pause(ctx, time.Second)
			continue
		}
		out.dials.Add(1)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10) // a small window: the gateway's writes block soon
		}
		code := slowRequest(conn, big)
		switch {
		case code == http.StatusOK:
			out.held.Add(1)
			holdSlow(ctx, conn, trickle, hold)
		case code != 0:
			out.refused.Add(1)
			pause(ctx, time.Second)
		default:
			pause(ctx, time.Second)
		}
		conn.Close()
	}
}

// slowRequest sends the GET and reads the status line's code (0: none).
func slowRequest(conn net.Conn, big cid.Cid) int {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(conn, "GET /ipfs/%s HTTP/1.1\r\nHost: gateway\r\n\r\n", big); err != nil {
		return 0
	}
	var line [len("HTTP/1.1 200")]byte
	if _, err := io.ReadFull(conn, line[:]); err != nil {
		return 0
	}
	proto, status, _ := strings.Cut(string(line[:]), " ")
	if proto != "HTTP/1.1" {
		return 0
	}
	code, _ := strconv.Atoi(status)
	return code
}

// holdSlow keeps a slow connection for hold: reading 8 bytes a second, or
// nothing.
func holdSlow(ctx context.Context, conn net.Conn, trickle bool, hold time.Duration) {
	end := time.After(hold)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	buf := make([]byte, 8)
	for {
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
		if trickle {
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadFull(conn, buf); err != nil && !isTimeout(err) {
				return // closed
			}
		}
	}
}

// pause waits d, or until ctx ends: pacing, not a wait for an event.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// heavyRun asks for the huge directory and the deep chain, one request
// after another on each connection, and times them by kind.
type heavyRun struct {
	mu    sync.Mutex
	kinds map[string]*heavyKind
}

type heavyKind struct {
	lat      []time.Duration
	byStatus map[string]int
	bytes    int64
	ok       int
}

func (h *heavyRun) run(ctx context.Context, c *http.Client, kinds [][2]string, first int) {
	for i := first; ctx.Err() == nil; i++ {
		k := kinds[i%len(kinds)]
		start := time.Now()
		code, n, err := fetch(ctx, c, k[1])
		if ctx.Err() != nil {
			return
		}
		d := time.Since(start)
		key := strconv.Itoa(code)
		if code == 0 {
			key = errorKind(err)
		}
		h.mu.Lock()
		hk := h.kinds[k[0]]
		if hk == nil {
			hk = &heavyKind{byStatus: map[string]int{}}
			h.kinds[k[0]] = hk
		}
		hk.byStatus[key]++
		hk.lat = append(hk.lat, d)
		if err == nil {
			hk.ok++
			hk.bytes += n
		}
		h.mu.Unlock()
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			pause(ctx, time.Second) // Retry-After
		}
	}
}

func (h *heavyRun) figures() map[string]HeavyFigures {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]HeavyFigures{}
	for name, k := range h.kinds {
		hf := HeavyFigures{Requests: len(k.lat), ByStatus: k.byStatus, P50Ms: pct(k.lat, 50), MaxMs: pct(k.lat, 100)}
		if k.ok > 0 {
			hf.MiB = float64(k.bytes) / float64(k.ok) / (1 << 20)
		}
		out[name] = hf
	}
	return out
}

// sampler records the peaks of the Go heap, the process's RSS and the
// gateway's slots in use, every 100 ms.
type sampler struct {
	stopc chan struct{}
	done  chan abusePeaks
}

type abusePeaks struct {
	heap, rss float64
	slots     int
}

func startSampler(gw *gateway.Gateway) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan abusePeaks, 1)}
	go func() {
		var p abusePeaks
		ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(ms)
			if ms[0].Value.Kind() == metrics.KindUint64 {
				p.heap = max(p.heap, float64(ms[0].Value.Uint64()))
			}
			if rss, ok := procStatusKiB("VmRSS"); ok {
				p.rss = max(p.rss, float64(rss)*1024)
			}
			p.slots = max(p.slots, gw.SlotsInUse())
			select {
			case <-s.stopc:
				s.done <- p
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() abusePeaks {
	close(s.stopc)
	return <-s.done
}

// procStatusKiB reads a "kB" field of /proc/self/status.
func procStatusKiB(field string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// metricValue reads a counter or gauge from gathered metrics: the series
// whose one label has the value label ("" for an unlabelled series).
func metricValue(mfs []*dto.MetricFamily, name, label string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
