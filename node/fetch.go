package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/files"
	unixfile "github.com/ipfs/boxo/ipld/unixfs/file"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/orecdn/ore/dagstream"
	"github.com/orecdn/ore/pod"
)

// Errors of Fetch and Get.
var (
	ErrNotFound = errors.New("node: no box provides this content")
	// ErrNoDirectPath: the providers found are reached only through
	// relays, which carry no blocks, and hole punching opened no direct
	// connection to any of them. It comes wrapped with ErrNotFound.
	ErrNoDirectPath = errors.New("node: no direct path to the boxes that provide this content")
	ErrStalled      = errors.New("node: transfer stalled")
	ErrUnsupported  = errors.New("node: unsupported content")
	// ErrDenied: the content is on one of the box's denylists.
	ErrDenied      = errors.New("node: blocked content")
	ErrDAGTooLarge = errors.New("node: DAG exceeds a fetch limit")
)

// Fetch tuning: a level of the DAG is requested in chunks, several chunks
// at a time, so bitswap always has wants outstanding across the level while
// memory stays bounded by the chunks in flight.
const (
	fetchChunk       = 256
	fetchParallel    = 4
	fetchBatchBytes  = 8 << 20
	fetchProviders   = 64
	fetchSources     = 24              // providers a fetch dials and keeps at once
	firstSources     = 4               // sources a fetch waits for before it asks (fewer if the first look-up finds fewer)
	firstSourceWait  = 2 * time.Second // the most a fetch waits for them
	flushInterval    = 100 * time.Millisecond
	announceAfter    = 1 << 20
	providerRefresh  = 2 * time.Second
	progressInterval = 100 * time.Millisecond
	rewantSettle     = 2 * time.Second       // the most a chunk that asks again waits for its old wants to be cancelled
	rewantPoll       = 10 * time.Millisecond // how often it looks
	endgameBytes     = 1 << 20               // a fetch with this little left is in its end game (see rewantAfter)
	endgameRewant    = 5 * time.Second       // the most a chunk in the end game waits for a block before it asks again
)

// FetchProgress reports a fetch underway.
type FetchProgress struct {
	// Blocks and Bytes count the DAG's blocks now local (fetched or already
	// there); a leaf linked from two chunks of a level counts once in each,
	// as Total counts it once a link. (A fetch does not remember every leaf
	// it met, to keep its memory bounded; see levelSource.)
	Blocks    int64 `json:"blocks"`
	Bytes     int64 `json:"bytes"`
	Total     int64 `json:"total"`     // bytes of the whole DAG, once the root is known
	Fetched   int64 `json:"fetched"`   // bytes that came from the network
	Providers int   `json:"providers"` // boxes found through the DHT
}

// FetchResult says what a fetch did.
type FetchResult struct {
	Root      cid.Cid       `json:"root"`
	Blocks    int64         `json:"blocks"`
	Bytes     int64         `json:"bytes"`
	Fetched   int64         `json:"fetched"`
	Providers []peer.ID     `json:"providers"`
	Duration  time.Duration `json:"duration"`
	// FirstByte is how long the first block from the network took to
	// arrive, from the fetch's start (0 when nothing came from the
	// network): the DHT look-up, the dials and the first round trip.
	FirstByte time.Duration `json:"first_byte"`
	// FirstLeaf is how long the first leaf (a block without links: file
	// data) from the network took to arrive, from the fetch's start: the
	// least a streaming reader of the file waits (0 when none came).
	FirstLeaf time.Duration `json:"first_leaf"`
	// Rewants is how often a chunk of the fetch got none of its blocks for
	// a quarter of the stall timeout and asked for the rest again.
	Rewants int64 `json:"rewants"`
	// Receipts are the countersigned receipts this box holds for root: who
	// delivered how much, signed by both sides.
	Receipts []*pod.Receipt `json:"-"`
}

// Fetch makes the whole DAG under root local: blocks already in the store
// are not fetched again (so an interrupted fetch resumes), the rest come from
// the providers found in the DHT, many boxes at once, through one bitswap
// session. It fails with ErrNotFound when no block arrives within the stall
// timeout, ErrStalled when a started transfer stops for that long, and an
// error wrapping ErrQuotaFull when the store is full. progress may be nil.
func (n *Node) Fetch(ctx context.Context, root cid.Cid, progress func(FetchProgress)) (FetchResult, error) {
	res, err := n.fetch(ctx, root, progress, fetchWhole)
	if err == nil {
		n.sched.requested(root, res.Bytes)
	}
	return res, err
}

// fetchMode says what a fetch makes local, and in which order.
type fetchMode int

const (
	// fetchWhole: the whole DAG, each chunk of a level in the box's own
	// random order (see chunk).
	fetchWhole fetchMode = iota
	// fetchRoot: the root's own block only; receipts and announcing are
	// left to the caller.
	fetchRoot
	// fetchStream: the whole DAG in the order a reader of the file reads
	// it, for a gateway response streaming while it fills: in a random
	// order the blocks the reader waits for queue behind others at the
	// source (bitswap sends a block wanted twice once, at the first want's
	// place), and a reader of a cold 256 MiB file waited 3 s (bitswap's
	// DONT_HAVE timeout) for its first byte in 1 request of 3.
	fetchStream
)

// fetch is Fetch, in the given mode.
func (n *Node) fetch(ctx context.Context, root cid.Cid, progress func(FetchProgress), mode fetchMode) (FetchResult, error) {
	rootOnly := mode == fetchRoot
	if !root.Defined() {
		return FetchResult{}, fmt.Errorf("%w: empty CID", ErrUnsupported)
	}
	if err := checkCodec(root); err != nil {
		return FetchResult{}, err
	}
	if n.deny.Denied(root) {
		return FetchResult{}, fmt.Errorf("%w: %s is blocked by the box's denylist", ErrDenied, root)
	}
	if err := n.datacap.refusal(); err != nil {
		return FetchResult{}, fmt.Errorf("node: fetch %s: %w", root, err)
	}
	if tk := ticketFrom(ctx); tk != nil {
		if err := n.useTicket(ctx, root, tk); err != nil {
			return FetchResult{}, err
		}
	}
	start := time.Now()
	n.fetchStarted(root)
	defer n.fetchEnded(root)
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ses := n.ex.NewSession(ctx)
	if rootOnly {
		// A gateway's look-up of a request's root: the request's reads use
		// this session too (see gatewaySession).
		ses = n.gatewaySession(ctx)
	}
	f := &fetch{n: n, root: root, ctx: ctx, cancel: cancel, ses: ses, inOrder: mode == fetchStream, expanded: map[cid.Cid]struct{}{}, start: start}
	f.touch()

	var wg sync.WaitGroup
	defer f.unprotect()
	defer wg.Wait()
	defer cancel(nil)
	if has, _ := n.store.Has(ctx, root); !has {
		f.sourced, f.firstSource = make(chan struct{}), make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); f.findProviders(root, !rootOnly) }()
		// With the whole DAG over a bulk stream, bitswap has nothing to
		// ask for and waits for no more sources. A fetch of the root
		// alone (the gateway's Locate) asks for the path to the first
		// byte: the root, the nodes above the first leaf and the leaf,
		// so the response's first bytes are local when it starts.
		req := dagstream.Request{Root: root}
		if rootOnly {
			req.Length = 1
		}
		if n.bulk == nil || !f.tryBulk(req) {
			f.waitSources()
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); f.watch(cancel, progress) }()

	src := &levelSource{f: f, links: []cid.Cid{root}}
	for depth := 1; ; depth++ {
		parents, err := f.level(src)
		if err == nil && len(parents) > 0 && depth == maxDAGDepth {
			err = fmt.Errorf("%w: %s is deeper than the %d levels a fetch follows (UnixFS DAGs are a few levels deep, plus one a directory)", ErrDAGTooLarge, root, maxDAGDepth)
		}
		if err != nil {
			n.metrics.fetchErrors.WithLabelValues(reason(err)).Inc()
			return FetchResult{}, fmt.Errorf("node: fetch %s: %w", root, err)
		}
		if len(parents) == 0 || rootOnly {
			break
		}
		src = &levelSource{f: f, parents: parents}
	}
	cancel(nil)
	wg.Wait()
	if progress != nil {
		progress(f.progress())
	}
	res := FetchResult{Root: root, Blocks: f.blocks.Load(), Bytes: f.bytes.Load(), Fetched: f.fetched.Load(),
		Providers: f.providerIDs(), Duration: time.Since(start), Rewants: f.rewants.Load(),
		FirstByte: time.Duration(f.firstByte.Load()), FirstLeaf: time.Duration(f.firstLeaf.Load())}
	if rootOnly {
		return res, nil
	}
	if res.Fetched > 0 {
		res.Receipts = n.pod.flush(parent, root)
	}
	n.metrics.fetchSeconds.Observe(res.Duration.Seconds())
	n.markComplete(root)
	// The record outlives the caller's context (a gateway request that
	// ended as the fill completed).
	if !n.hasRootRecord(n.ctx, root) {
		n.recordRoot(n.ctx, root, res.Bytes)
	}
	if !f.announced.Load() {
		n.provideAsync(root)
	}
	n.log.Info("fetched", "root", root, "blocks", res.Blocks, "bytes", res.Bytes, "from_network", res.Fetched, "took", res.Duration, "first_byte", res.FirstByte)
	return res, nil
}

func reason(err error) string {
	switch {
	case errors.Is(err, ErrNoDirectPath):
		return "no_direct_path"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrStalled):
		return "stalled"
	case errors.Is(err, ErrQuotaFull):
		return "quota"
	case errors.Is(err, ErrDAGTooLarge):
		return "too_large"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "other"
}

type fetch struct {
	n      *Node
	root   cid.Cid
	ctx    context.Context
	cancel context.CancelCauseFunc
	ses    exchange.Fetcher
	start  time.Time

	mu sync.Mutex
	// expanded: the nodes with links met so far, so that a node linked
	// many times has its links fetched once (a DAG of nodes each linking
	// the next one twice would otherwise double at every level). Leaves
	// are not kept: one linked again is found local.
	expanded  map[cid.Cid]struct{}
	inOrder   bool            // ask for each chunk's blocks in the DAG's order (fetchStream)
	lastTurn  <-chan struct{} // the last chunk's turn handed out (inOrder; level's goroutine only)
	visited   int64           // blocks the level sources yielded, repeats counted (the fetch's goroutine only)
	providers []peer.ID

	blocks, bytes, fetched, total atomic.Int64
	rewants                       atomic.Int64  // times a chunk asked again for blocks that did not come
	netBlocks                     atomic.Int64  // blocks that came from the network (bitswap or a bulk stream)
	lastActive                    atomic.Int64  // unix nanos of the last block
	firstByte                     atomic.Int64  // nanoseconds from start to the first block from the network (0: none yet)
	firstLeaf                     atomic.Int64  // nanoseconds from start to the first leaf from the network (0: none yet)
	directSources                 atomic.Int64  // sources the fetch holds a direct connection to
	lateDirect                    atomic.Int64  // unix nanos when a source reached through a relay last turned direct (0: never)
	announced                     atomic.Bool   // root announced before the fetch ended
	protected                     []peer.ID     // provider connections kept open while the fetch runs (guarded by mu)
	sourced                       chan struct{} // closed once firstSources sources are held, or the first look-up's dials ended
	sourcedOnce                   sync.Once
	firstSource                   chan struct{} // closed once a source is connected directly (the bulk path asks it)
	firstSourceOnce               sync.Once
}

// waitSources waits until the fetch has sources enough for bitswap to ask
// for the root.
//
// The root's want is the session's first broadcast, and bitswap
// broadcasts a want once: to the sources it goes to only if they are
// sources by then (a box the box was already connected to gets no
// new-connection broadcast when it becomes one). One source is not
// enough: the origin holds back a root it sent recently (WithSpread), and
// in a 200-box crowd 2 boxes whose first source was the origin never got
// the root within a minute.
func (f *fetch) waitSources() {
	t := time.NewTimer(time.Until(f.start.Add(firstSourceWait)))
	defer t.Stop()
	select {
	case <-f.sourced:
	case <-t.C:
	case <-f.ctx.Done():
	}
}

// markSourced closes f.sourced, once: the fetch asks for the root.
func (f *fetch) markSourced() {
	if f.sourced != nil {
		f.sourcedOnce.Do(func() { close(f.sourced) })
	}
}

func (f *fetch) touch() { f.lastActive.Store(time.Now().UnixNano()) }

func (f *fetch) progress() FetchProgress {
	f.mu.Lock()
	np := len(f.providers)
	f.mu.Unlock()
	return FetchProgress{Blocks: f.blocks.Load(), Bytes: f.bytes.Load(), Total: f.total.Load(),
		Fetched: f.fetched.Load(), Providers: np}
}

func (f *fetch) providerIDs() []peer.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]peer.ID(nil), f.providers...)
}

// findProviders asks the DHT for boxes holding root and connects to
// some of them, so the session's wants reach them at once. With again, it
// asks again every providerRefresh while the fetch runs: boxes fetching
// the same root announce themselves as they start.
//
// A fetch keeps at most fetchSources providers of its own (dialled and
// protected under sourceTag), picked at random among those found, and
// picks another in place of one whose connection closed (a source over its
// connection limit trims some of its askers; the one lost may be picked
// again); with that many, it does not walk the DHT again. Bitswap sends
// its broadcast wants to these sources and to the boxes that sent it
// blocks, not to every connection (see bitswap.New): every box that gets a
// want keeps it, says HAVE when the block arrives and then gets the
// session's want-haves for every later block, so a box that broadcast to
// all its connections (150-165 of 204 in a 200-box crowd) paid, with the
// whole crowd, a share of control traffic that grew with the square of the
// crowd. A fetch that dialled every provider the DHT ever returned (~190
// in that crowd) would make every box a broadcast target again. The random
// pick also spreads a crowd over its sources, where the DHT's order would
// send every box to the same first few.
func (f *fetch) findProviders(root cid.Cid, again bool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var (
		known   = map[peer.ID]bool{f.n.ID(): true}
		sources = map[peer.ID]*atomic.Bool{} // this fetch's sources: true while a dial of it runs
		net     = f.n.host.Network()
	)
	var firstDials sync.WaitGroup // the first look-up's dials
	dial := func(p peer.AddrInfo, first bool) {
		busy := new(atomic.Bool)
		busy.Store(true)
		sources[p.ID] = busy
		wg.Add(1)
		if first {
			firstDials.Add(1)
		}
		go func() {
			defer wg.Done()
			defer busy.Store(false)
			var once sync.Once
			dialed := func() {
				if first {
					once.Do(firstDials.Done)
				}
			}
			defer dialed()
			f.connect(p, dialed)
		}()
	}
	// lookUp asks the DHT and dials sources until the fetch has
	// fetchSources of them: the first look-up's as they come (a fetch must
	// not wait for the whole look-up), a later one's at random.
	lookUp := func(first bool) {
		var (
			found  []peer.AddrInfo
			direct int // providers with a direct address dialled as they came
		)
		for p := range f.n.router.FindProvidersAsync(f.ctx, root, fetchProviders) {
			if p.ID == f.n.ID() {
				continue
			}
			if !known[p.ID] {
				known[p.ID] = true
				f.mu.Lock()
				f.providers = append(f.providers, p.ID)
				f.mu.Unlock()
			}
			if sources[p.ID] != nil {
				continue
			}
			// Direct sources first: one reached only through a relay
			// serves once hole punching connected it directly, if ever,
			// so it waits while firstSources others may serve.
			if first && len(sources) < fetchSources && (!relayOnly(p) || direct < firstSources) {
				if !relayOnly(p) {
					direct++
				}
				dial(p, true)
				continue
			}
			found = append(found, p)
		}
		if first {
			// The look-up found what it found: the fetch waits for
			// those dials at most.
			wg.Add(1)
			go func() { defer wg.Done(); firstDials.Wait(); f.markSourced() }()
		}
		rand.Shuffle(len(found), func(i, j int) { found[i], found[j] = found[j], found[i] })
		preferDirect(found, net)
		for _, p := range found[:min(len(found), max(fetchSources-len(sources), 0))] {
			dial(p, false)
		}
	}
	for round := 0; ; round++ {
		for p, busy := range sources {
			if !busy.Load() && net.Connectedness(p) != network.Connected {
				delete(sources, p)
				f.release(p)
			}
		}
		// With enough sources, no look-up: each one walks the DHT and
		// leaves connections to the boxes it asked.
		if round == 0 || len(sources) < fetchSources {
			lookUp(round == 0)
		}
		if !again {
			return
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(providerRefresh):
		}
	}
}

// connect dials a provider and protects the connection while the fetch
// runs, and calls dialed once the dial is over. A provider reached only
// through a relay counts as a source once
// a direct connection to it opens: the box behind the NAT dials this one
// back, or a hole is punched, usually within a round trip or two of the
// relayed connection, and the fetch learns of it at once (the bulk path
// and the count of direct sources wait for it) instead of leaving the
// source to bitswap's next rebroadcast.
func (f *fetch) connect(p peer.AddrInfo, dialed func()) {
	if err := f.n.host.Connect(f.ctx, p); err != nil {
		f.n.log.Debug("provider unreachable", "peer", p.ID, "err", err)
		return
	}
	limited := f.n.host.Network().Connectedness(p.ID) == network.Limited
	if limited {
		// Reached through a relay alone: bitswap sends it nothing until
		// hole punching opens a direct connection (relays carry
		// signalling, not blocks), so the direct sources serve first.
		f.n.log.Debug("provider reached through a relay; it serves once hole punching connects it directly", "peer", p.ID)
		f.n.repunch(f.ctx, p)
	}
	// The connection manager must not trim a source while the fetch
	// needs it.
	f.mu.Lock()
	if slices.Contains(f.protected, p.ID) {
		f.mu.Unlock()
		return
	}
	f.protected = append(f.protected, p.ID)
	f.n.holdSource(p.ID)
	f.mu.Unlock()
	if limited {
		// The dial is over: the first look-up's wait for its dials ends
		// here, not with the hole punch.
		dialed()
		if limited = !f.waitDirect(p.ID); !limited {
			f.lateDirect.Store(time.Now().UnixNano())
		}
	}
	// The fetch asks once firstSources sources can serve: a source
	// reached only through a relay cannot yet.
	if limited {
		return
	}
	if f.directSources.Add(1) >= firstSources {
		f.markSourced()
	}
	if f.firstSource != nil {
		f.firstSourceOnce.Do(func() { close(f.firstSource) })
	}
}

// waitDirect waits, at most repunchAfter (DCUtR's three attempts), for a
// direct connection to p, reached through a relay so far, and says
// whether one is open. Its subscription is read without pause while it
// lives: the event bus blocks the network's emitter on a full subscriber.
func (f *fetch) waitDirect(p peer.ID) bool {
	sub, err := f.n.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return f.n.host.Network().Connectedness(p) == network.Connected
	}
	defer sub.Close()
	t := time.NewTimer(repunchAfter)
	defer t.Stop()
	for f.n.host.Network().Connectedness(p) != network.Connected {
		select {
		case e, ok := <-sub.Out():
			if !ok {
				return false
			}
			if ev, _ := e.(event.EvtPeerConnectednessChanged); ev.Peer == p && ev.Connectedness == network.Connected {
				f.n.log.Debug("provider reached through a relay is connected directly", "peer", p, "after", time.Since(f.start))
				return true
			}
		case <-t.C:
			return false
		case <-f.ctx.Done():
			return false
		}
	}
	return true
}

// relayOnly says whether a provider is reached only through relays: it
// announces relayed addresses (AutoRelay found it behind a NAT) and no
// public one besides (the LAN addresses it announces too reach it only
// from its own LAN). A provider without relayed addresses is dialled
// directly on whatever it announces (boxes on one LAN, tests on
// loopback).
func relayOnly(p peer.AddrInfo) bool {
	relayed := false
	for _, a := range p.Addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			relayed = true
		} else if manet.IsPublicAddr(a) {
			return false
		}
	}
	return relayed
}

// preferDirect orders providers, keeping their order otherwise: first
// those the box is connected to directly, then those it can dial
// directly, then those reached only through a relay.
func preferDirect(ps []peer.AddrInfo, net network.Network) {
	rank := func(p peer.AddrInfo) int {
		switch {
		case net != nil && net.Connectedness(p.ID) == network.Connected:
			return 0
		case !relayOnly(p):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(ps, func(a, b peer.AddrInfo) int { return rank(a) - rank(b) })
}

// release stops protecting the connection to p, a source the fetch gave up.
func (f *fetch) release(p peer.ID) {
	f.mu.Lock()
	i := slices.Index(f.protected, p)
	if i >= 0 {
		f.protected = slices.Delete(f.protected, i, i+1)
	}
	f.mu.Unlock()
	if i >= 0 {
		f.n.dropSource(p)
	}
}

// unprotect releases the provider connections this fetch protected.
func (f *fetch) unprotect() {
	f.mu.Lock()
	ps := f.protected
	f.protected = nil
	f.mu.Unlock()
	for _, p := range ps {
		f.n.dropSource(p)
	}
}

// watch cancels the fetch when it gives up (see givesUp) and reports
// progress.
func (f *fetch) watch(cancel context.CancelCauseFunc, progress func(FetchProgress)) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		if progress != nil {
			progress(f.progress())
		}
		idle := time.Since(time.Unix(0, f.lastActive.Load()))
		if idle < f.n.cfg.StallTimeout {
			continue
		}
		live := f.liveSources()
		if !givesUp(idle, f.n.cfg.StallTimeout, live) {
			continue
		}
		if f.blocks.Load() == 0 {
			cancel(f.notFound(idle.Round(time.Second)))
		} else if live == 0 {
			cancel(fmt.Errorf("%w: no block for %s after %d blocks: the providers left or are unreachable; run the same get again to resume", ErrStalled, idle.Round(time.Second), f.blocks.Load()))
		} else {
			cancel(fmt.Errorf("%w: no block for %s after %d blocks from %d connected providers; run the same get again to resume", ErrStalled, idle.Round(time.Second), f.blocks.Load(), live))
		}
		return
	}
}

// stallPatience is how many stall timeouts a fetch waits without a block
// while some of its providers are still connected (see givesUp).
const stallPatience = 3

// givesUp says whether a fetch that got no block for idle gives up, with
// live of its providers connected now: after the stall timeout when none
// is (they left: nobody would answer the wants it asks again), and after
// stallPatience stall timeouts when some are. A connected provider that
// is slow (its uplink queued for a crowd, its seed holding a repeat for
// its spread hold, its credit window holding blocks back) answers later
// than the stall timeout, and the fetch keeps asking it and others again
// meanwhile (rewantAfter); one that never answers costs at most
// stallPatience timeouts. Measured with `ore bench swarm --boxes 200
// --mocknet` beside other jobs: with the stall timeout alone, 130-160 of
// 200 fetches failed while connected to providers holding every block
// (the process got 38 % of the cores, and no box got a block for a
// minute or more).
func givesUp(idle, timeout time.Duration, live int) bool {
	if idle < timeout {
		return false
	}
	return live == 0 || idle >= stallPatience*timeout
}

// liveSources is how many of the providers the fetch found are connected
// directly now.
func (f *fetch) liveSources() int {
	f.mu.Lock()
	ps := append([]peer.ID(nil), f.providers...)
	f.mu.Unlock()
	live := 0
	for _, p := range ps {
		if f.n.host.Network().Connectedness(p) == network.Connected {
			live++
		}
	}
	return live
}

// notFound says why a fetch got no block within timeout, from
// the providers it found and how the box is connected to them now: none
// found (the record is not in the DHT), found but reached only through
// relays (no direct path: relays carry no blocks and hole punching
// failed, as it does through a NAT that picks a new port for every
// destination), or found and not serving.
func (f *fetch) notFound(timeout time.Duration) error {
	f.mu.Lock()
	ps := append([]peer.ID(nil), f.providers...)
	f.mu.Unlock()
	if len(ps) == 0 {
		return fmt.Errorf("%w within %s: no provider record found in the DHT: check the CID, that the publishing box runs and announced it, and this box's bootstrap peers", ErrNotFound, timeout)
	}
	var direct, relayed int
	for _, p := range ps {
		switch f.n.host.Network().Connectedness(p) {
		case network.Connected:
			direct++
		case network.Limited:
			relayed++
		}
	}
	if direct == 0 && relayed > 0 {
		return fmt.Errorf("%w within %s: %w: %d providers found in the DHT, none connected directly, %d through a relay only, which carries no blocks, and hole punching opened no direct connection (it fails through a NAT that picks a new port for every destination, a symmetric one, on either side); boxes with a public address, a mapped port (UPnP, NAT-PMP) or IPv6 reach them directly", ErrNotFound, timeout, ErrNoDirectPath, len(ps), relayed)
	}
	return fmt.Errorf("%w within %s (%d providers found in the DHT, %d of them connected directly, %d only through a relay): check the CID, that the publishing box runs, and this box's bootstrap peers", ErrNotFound, timeout, len(ps), direct, relayed)
}

// level makes one level of the DAG local, a chunk at a time as src yields
// them, and returns the level's nodes with links: the next level's parents.
func (f *fetch) level(src *levelSource) ([]cid.Cid, error) {
	var (
		mu sync.Mutex
		// byChunk are each chunk's parents, by the chunk's place in the
		// level: chunks end in any order, and a fetch that keeps the DAG's
		// order asks for the next level in its parents' order.
		byChunk = map[int][]cid.Cid{}
		count   int // the parents in byChunk
		chunks  int
		errs    = make(chan error, fetchParallel)
		sem     = make(chan struct{}, fetchParallel)
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		f.cancel(err)
		select {
		case errs <- err:
		default:
		}
	}
	for {
		chunk, err := src.next(fetchChunk)
		if err != nil {
			fail(err)
			break
		}
		if len(chunk) == 0 {
			break
		}
		select {
		case sem <- struct{}{}:
		case err := <-errs:
			wg.Wait()
			return nil, err
		case <-f.ctx.Done():
			wg.Wait()
			return nil, f.cause(f.ctx.Err())
		}
		wg.Add(1)
		no := chunks
		chunks++
		t := f.nextTurn()
		go func() {
			defer func() { <-sem; wg.Done() }()
			ps, err := f.chunk(chunk, t)
			if err != nil {
				if f.ctx.Err() != nil {
					err = f.cause(err)
				}
				fail(err)
				return
			}
			mu.Lock()
			byChunk[no] = ps
			count += len(ps)
			over := count > f.n.cfg.levelParents
			mu.Unlock()
			if over {
				fail(fmt.Errorf("%w: a level of %s has more than %d nodes with links; UnixFS builders make far fewer (a 2 TiB file has ~50,000)", ErrDAGTooLarge, f.root, f.n.cfg.levelParents))
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	parents := make([]cid.Cid, 0, count)
	for i := range chunks {
		parents = append(parents, byChunk[i]...)
	}
	return parents, nil
}

// turn orders the chunks' first wants when a fetch keeps the DAG's order:
// bitswap gives a peer's wants falling priorities in the order they are
// asked, and asks a block wanted twice (the gateway's reader wants it
// too) once, at the first want's place, so chunks asked in the order
// their goroutines happen to run put the reader's next block behind up to
// fetchParallel-1 chunks of others. Measured with a probe of 12 cold
// 256 MiB requests: the reader's first leaf arrived after 2.45 s of a
// 2.79 s transfer. The zero turn waits for nothing.
type turn struct {
	prev <-chan struct{} // closed once the chunk before asked (nil: no order)
	mine chan struct{}   // closed once this chunk asked, or ended
	once *sync.Once
}

// nextTurn is the next chunk's turn: after the chunk before it, when the
// fetch keeps the DAG's order (level hands them out in order).
func (f *fetch) nextTurn() turn {
	if !f.inOrder {
		return turn{}
	}
	t := turn{prev: f.lastTurn, mine: make(chan struct{}), once: new(sync.Once)}
	f.lastTurn = t.mine
	return t
}

// wait returns once the chunk before asked (or ended), or ctx ended.
func (t turn) wait(ctx context.Context) error {
	if t.prev == nil {
		return nil
	}
	select {
	case <-t.prev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pass lets the next chunk ask.
func (t turn) pass() {
	if t.mine != nil {
		t.once.Do(func() { close(t.mine) })
	}
}

// chunk makes a few hundred blocks local and returns those with links
// met for the first time: in the order of cids when the fetch keeps the
// DAG's order (the next level is asked for in its parents' order), else in
// the order they arrived.
func (f *fetch) chunk(cids []cid.Cid, t turn) ([]cid.Cid, error) {
	defer t.pass()
	parents, err := f.fill(cids, t)
	if err != nil || !f.inOrder || len(parents) < 2 {
		return parents, err
	}
	at := make(map[cid.Cid]int, len(cids))
	for i, c := range cids {
		at[c] = i
	}
	slices.SortFunc(parents, func(a, b cid.Cid) int { return at[a] - at[b] })
	return parents, nil
}

// fill is chunk, with the parents in the order they came.
func (f *fetch) fill(cids []cid.Cid, t turn) ([]cid.Cid, error) {
	var parents, missing []cid.Cid
	for _, c := range cids {
		if err := checkCodec(c); err != nil {
			return nil, err
		}
		has, err := f.n.store.Has(f.ctx, c)
		if err != nil {
			return nil, err
		}
		if !has && isEmptyBlock(c) {
			// boxo's bitswap server treats a zero-length block as absent, so
			// nobody would ever send it; its bytes are known from its hash.
			if err := f.n.store.Put(f.ctx, mustBlock(nil, c)); err != nil {
				return nil, err
			}
			has = true
		}
		if !has {
			missing = append(missing, c)
			continue
		}
		size, err := f.n.store.GetSize(f.ctx, c)
		if err != nil {
			return nil, err
		}
		if hasLinks(c) {
			b, err := f.n.store.Get(f.ctx, c)
			if err != nil {
				return nil, err
			}
			if parents, err = f.visit(b, parents); err != nil {
				return nil, err
			}
		}
		f.blocks.Add(1)
		f.bytes.Add(int64(size))
		f.touch()
	}
	if len(missing) == 0 {
		return parents, nil
	}
	// Each box asks in its own random order: a crowd fetching the same
	// content at once then holds different blocks at any moment and can
	// trade them, instead of all waiting on the origin for the same next
	// block (BitTorrent's random first piece, for every piece).
	if !f.inOrder {
		rand.Shuffle(len(missing), func(i, j int) { missing[i], missing[j] = missing[j], missing[i] })
	}
	// Blocks received count against the month's data cap: a fetch asks
	// for no more once it is reached.
	if err := f.n.datacap.refusal(); err != nil {
		return nil, err
	}
	f.n.pod.want(f.root, missing)
	left := missing
	for ask := 0; ; ask++ {
		var (
			stalled bool
			err     error
		)
		parents, left, stalled, err = f.ask(left, parents, ask > 0, t)
		if err != nil {
			return nil, err
		}
		if len(left) == 0 {
			return parents, nil
		}
		if !stalled {
			return nil, f.cause(fmt.Errorf("%d of %d blocks did not arrive", len(left), len(missing)))
		}
		f.forget(left)
		f.rewants.Add(1)
		f.n.metrics.fetchRewants.Inc()
		f.n.log.Debug("fetch asks again", "root", f.root, "blocks", len(left), "of", len(missing), "idle", f.rewantAfter())
	}
}

// forget waits, at most rewantSettle, until bitswap no longer asks for
// cids, the wants of a request cancelled for asking again. Bitswap
// broadcasts a want it already broadcasts to nobody, and cancels a want
// only once no session wants it: a fresh session that asked while the
// old request's cancel was still on its way (it leaves after the request's
// channel closed) neither got the old want cancelled nor sent its own.
func (f *fetch) forget(cids []cid.Cid) {
	deadline := time.Now().Add(rewantSettle)
	for f.n.ex.Wanting(cids) > 0 && time.Now().Before(deadline) {
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(rewantPoll):
		}
	}
}

// rewantAfter is how long a chunk waits without any of its blocks before
// it asks for the rest again: a quarter of the stall timeout, and at most
// endgameRewant once the fetch has endgameBytes or less to go.
//
// The end game: in a 200-box crowd (`ore bench swarm --boxes 200
// --mocknet`), 190 boxes finished within 0.3-5 s of each other and, in 15
// of 16 runs, the last 10 took 11-19 s more, each waiting for its last
// 1-34 blocks while connected to 90-150 boxes that held all of them, of
// which 0-8 held one of its wants (bitswap had sent the want-block to a
// box busy serving others, and the want-haves to few). With the end game
// those last 10 took 2.6-8.7 s (6 runs; 13.2-18.7 s without it, by turns).
// Asking again sooner for every chunk cost more than it saved: with 5 s
// throughout, the crowd asked again 1,323-2,129 times a run instead of
// 12-106, the origin sent 3.4-4.1× the size, and 10 of 200 boxes stalled.
// In the end game a box asks again only for its last few blocks, when most
// of the crowd is done and idle.
//
// At slow uplinks a block takes seconds to come even from a box that is
// sending it, and an end game that asked again after 5 s asked boxes
// already sending, which then sent the same blocks twice: with 256 KiB/s
// uplinks (`--upload 256KiB`) the crowd asked again 870 times, received
// 2.0× the bytes it needed, and its boxes finished all at once 60 s after
// 98 % of the bytes had arrived. So the end game waits at least
// endgamePace times the fetch's mean time per block (see endgameWait).
func (f *fetch) rewantAfter() time.Duration {
	d := f.n.cfg.StallTimeout / 4
	if t := f.total.Load(); t > 0 && t-f.bytes.Load() <= endgameBytes {
		var since time.Duration
		if fb := f.firstByte.Load(); fb > 0 {
			since = time.Since(f.start) - time.Duration(fb)
		}
		d = endgameWait(since, f.netBlocks.Load(), d)
	}
	return d
}

// endgamePace is how many of its mean times per block a fetch in its end
// game waits for a block before it asks again (see rewantAfter).
const endgamePace = 4

// endgameWait is how long a chunk in the end game waits for a block before
// it asks again, for a fetch that received blocks from the network in
// elapsed since its first one: endgameRewant, or endgamePace times its
// mean time per block when that is longer, and at most limit.
func endgameWait(elapsed time.Duration, blocks int64, limit time.Duration) time.Duration {
	d := endgameRewant
	if blocks > 1 && elapsed > 0 {
		d = max(d, endgamePace*elapsed/time.Duration(blocks-1))
	}
	return min(d, limit)
}

// ask requests cids (through the fetch's session, or with fresh through a
// session of its own), stores what arrives and returns parents with the
// new nodes with links among them, and the blocks still missing. It gives up on the rest (stalled) when
// none of them arrived for rewantAfter, so that the chunk asks again.
//
// Bitswap sends a want once: to the peers it broadcasts to or the session's
// peers at the time, and to a peer that connects later only if it is a
// broadcast want. A box that keeps the want (none says DONT_HAVE, see
// bitswap.New) says HAVE when the block arrives; but one that closed the
// connection (a source over its connection limit trims its askers)
// forgot it, and a box already connected that became a source later, or
// got the block later, was never asked. In a 200-box crowd (`ore bench
// swarm --boxes 200 --mocknet`), 5 of 200 fetches failed after a minute
// without a block, 2 of them without the root; boxes of its tail waiting
// 8-20 s for their last blocks were connected to 70-110 boxes holding the
// whole file, of which 0-9 had one of their wants in their bitswap
// ledger. A fresh session cancels the old wants and broadcasts the rest
// again, to the boxes that sent this box blocks and to its current
// sources, and looks the first one up in the DHT.
func (f *fetch) ask(cids, parents []cid.Cid, fresh bool, t turn) (_, left []cid.Cid, stalled bool, _ error) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	ses := f.ses
	if fresh {
		ses = f.n.ex.NewSession(ctx)
	}
	if err := t.wait(ctx); err != nil {
		return nil, nil, false, f.cause(err)
	}
	ch, err := ses.GetBlocks(ctx, cids)
	t.pass()
	if err != nil {
		return nil, nil, false, f.cause(err)
	}
	pending := make(map[cid.Cid]struct{}, len(cids))
	for _, c := range cids {
		pending[c] = struct{}{}
	}
	var (
		batch      []blocks.Block
		batchBytes int
		last       = time.Now()
		asked      = last
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := f.storeBatch(batch); err != nil {
			return err
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	// A batch is stored (and announced to bitswap, which tells the peers
	// that asked for its blocks) when it is big enough or flushInterval
	// old, whichever comes first: in a crowd, where each box receives
	// slowly from many, a box that held its blocks back until 8 MiB
	// arrived would keep them from the crowd for minutes.
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		var (
			b  blocks.Block
			ok bool
		)
		select {
		case b, ok = <-ch:
		case <-tick.C:
			if err := flush(); err != nil {
				return nil, nil, false, err
			}
			// A source reached through a relay that turned direct after
			// these wants went out never got them (bitswap sent them
			// to the session's peers and broadcast targets of the
			// time): with no block since, the chunk asks again at once
			// rather than after rewantAfter.
			late := last.Equal(asked) && f.lateDirect.Load() > asked.UnixNano()
			if !stalled && (late || time.Since(last) >= f.rewantAfter()) {
				// The channel closes once the cancelled wants are
				// gone; blocks already on their way still count.
				stalled = true
				cancel()
			}
			continue
		}
		if !ok {
			break
		}
		if _, want := pending[b.Cid()]; !want {
			continue
		}
		delete(pending, b.Cid())
		last = time.Now()
		size := len(b.RawData())
		f.blocks.Add(1)
		f.bytes.Add(int64(size))
		f.fetched.Add(int64(size))
		f.netBlocks.Add(1)
		f.firstByte.CompareAndSwap(0, max(int64(time.Since(f.start)), 1))
		f.n.metrics.fetchBlocks.Inc()
		f.n.metrics.fetchBytes.Add(float64(size))
		f.touch()
		before := len(parents)
		if parents, err = f.visit(b, parents); err != nil {
			return nil, nil, false, err
		}
		if len(parents) == before {
			f.firstLeaf.CompareAndSwap(0, max(int64(time.Since(f.start)), 1))
		}
		batch = append(batch, b)
		if batchBytes += size; batchBytes >= fetchBatchBytes {
			if err := flush(); err != nil {
				return nil, nil, false, err
			}
		}
		if cerr := f.n.datacap.refusal(); cerr != nil {
			// The month's data cap is used up: keep what arrived (its bytes
			// are spent), ask for nothing more.
			if err := flush(); err != nil {
				return nil, nil, false, err
			}
			return nil, nil, false, cerr
		}
	}
	if err := flush(); err != nil {
		return nil, nil, false, err
	}
	for _, c := range cids {
		if _, ok := pending[c]; ok {
			left = append(left, c)
		}
	}
	return parents, left, stalled && f.ctx.Err() == nil, nil
}

// storeBatch stores blocks that arrived (making room from cold content,
// once, when the store is full), tells bitswap (which answers the peers
// that asked for them, and this box's own waiting wants) and announces the
// root after its first MiB.
func (f *fetch) storeBatch(batch []blocks.Block) error {
	if err := f.n.store.PutMany(f.ctx, batch); err != nil {
		if !errors.Is(err, ErrQuotaFull) {
			return err
		}
		size := 0
		for _, b := range batch {
			size += len(b.RawData())
		}
		if res, eerr := f.n.Evict(f.ctx, int64(size)); eerr != nil || res.Freed < int64(size) {
			return err
		}
		if err := f.n.store.PutMany(f.ctx, batch); err != nil {
			return err
		}
	}
	if err := f.n.ex.NotifyNewBlocks(f.ctx, batch...); err != nil {
		f.n.log.Debug("notify bitswap of new blocks", "err", err)
	}
	f.maybeAnnounce()
	return nil
}

// maybeAnnounce announces the root once the box stored announceAfter bytes
// of it from the network: a box serves the blocks it has while it fetches the
// rest, so a crowd fetching the same root finds its peers in the DHT, not
// just the origin. A peer found that way that lacks a block keeps the
// want and says HAVE once the block arrives, so a crowd's boxes trade from
// their first blocks on. (Provider look-ups
// ask for fetchProviders boxes, enough for a crowd's partial holders not
// to crowd out the boxes that hold all of it.)
func (f *fetch) maybeAnnounce() {
	if f.fetched.Load() >= announceAfter && f.announced.CompareAndSwap(false, true) {
		f.n.provideAsync(f.root)
	}
}

// isEmptyBlock reports whether c addresses zero bytes.
func isEmptyBlock(c cid.Cid) bool {
	e, err := c.Prefix().Sum(nil)
	return err == nil && e.Equals(c)
}

func mustBlock(data []byte, c cid.Cid) blocks.Block {
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		panic(err) // only called with data that hashes to c
	}
	return b
}

// cause prefers the reason the fetch was cancelled over the symptom.
func (f *fetch) cause(err error) error {
	if c := context.Cause(f.ctx); c != nil {
		return c
	}
	return err
}

// visit records the root's size, checks b's links against maxNodeLinks
// and appends b to parents if it has links and was not met before.
func (f *fetch) visit(b blocks.Block, parents []cid.Cid) ([]cid.Cid, error) {
	nlinks := 0
	switch {
	case b.Cid().Prefix().Codec == cid.DagProtobuf:
		links, err := nodeLinks(b)
		if err != nil {
			return nil, err
		}
		f.noteTotal(b, links)
		nlinks = len(links)
	case hasLinks(b.Cid()):
		links, err := linkCIDs(b)
		if err != nil {
			return nil, err
		}
		nlinks = len(links)
	}
	f.noteTotal(b, nil)
	if nlinks == 0 {
		return parents, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.expanded[b.Cid()]; ok {
		return parents, nil
	}
	f.expanded[b.Cid()] = struct{}{}
	return append(parents, b.Cid()), nil
}

// noteTotal records the DAG's size from the first block visited, the
// root: a dag-pb node's links carry the sizes below them; another block
// gives its own.
func (f *fetch) noteTotal(b blocks.Block, links []*format.Link) {
	if f.total.Load() != 0 {
		return
	}
	total := int64(len(b.RawData()))
	for _, l := range links {
		total += int64(l.Size)
	}
	f.total.CompareAndSwap(0, total)
}

// provideAsync announces a root this box now holds, so later fetches can
// use it as a source. Failures are logged: the content stays usable.
func (n *Node) provideAsync(root cid.Cid) {
	n.spawn(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, DefaultProvideTimeout)
		defer cancel()
		if err := n.router.Provide(ctx, root); err != nil && ctx.Err() == nil {
			n.log.Debug("announce fetched root", "root", root, "err", err)
		}
	})
}

// Open returns the UnixFS file or directory at root from local blocks
// (Fetch it first). Reading a block that is not local fails. A dag-cbor,
// dag-json, json or cbor root opens as a file of its own block's bytes:
// the document, as the gateway serves it with ?format= (a fetch gets and
// keeps the blocks it links too).
func (n *Node) Open(ctx context.Context, root cid.Cid) (files.Node, error) {
	if err := checkCodec(root); err != nil {
		return nil, err
	}
	if !isUnixFS(root) {
		b, err := n.store.Get(ctx, root)
		if err != nil {
			return nil, fmt.Errorf("node: open %s: %w", root, err)
		}
		return files.NewBytesFile(b.RawData()), nil
	}
	nd, err := n.dag.Get(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("node: open %s: %w", root, err)
	}
	f, err := unixfile.NewUnixfsFile(ctx, n.dag, nd)
	if err != nil {
		return nil, fmt.Errorf("node: open %s: %w", root, err)
	}
	return f, nil
}

// Get fetches root and writes it to path (a file or a directory tree),
// byte-identical to what was added. path must not exist.
func (n *Node) Get(ctx context.Context, root cid.Cid, path string, progress func(FetchProgress)) (FetchResult, error) {
	res, err := n.Fetch(ctx, root, progress)
	if err != nil {
		return res, err
	}
	f, err := n.Open(ctx, root)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if err := files.WriteTo(f, path); err != nil {
		return res, fmt.Errorf("node: write %s to %s: %w", root, path, err)
	}
	return res, nil
}

// maxComplete bounds the roots remembered as wholly local.
const maxComplete = 4096

// markComplete remembers that root's whole DAG is local.
func (n *Node) markComplete(root cid.Cid) {
	n.completeMu.Lock()
	defer n.completeMu.Unlock()
	if n.complete == nil || len(n.complete) >= maxComplete {
		n.complete = make(map[cid.Cid]struct{})
	}
	n.complete[root] = struct{}{}
}

// isComplete reports whether root's whole DAG is known to be local: it was
// fetched or added (pinned) by this box.
func (n *Node) isComplete(ctx context.Context, root cid.Cid) bool {
	n.completeMu.Lock()
	_, ok := n.complete[root]
	n.completeMu.Unlock()
	if ok {
		return true
	}
	if pinned, err := n.store.IsPinned(ctx, root); err == nil && pinned {
		return true
	}
	return n.hasRootRecord(ctx, root)
}

// forgetComplete drops root from the roots known to be whole (evicted).
func (n *Node) forgetComplete(root cid.Cid) {
	n.completeMu.Lock()
	delete(n.complete, root)
	n.completeMu.Unlock()
}

func (n *Node) fetchStarted(root cid.Cid) {
	n.completeMu.Lock()
	if n.fetches == nil {
		n.fetches = make(map[cid.Cid]int)
	}
	n.fetches[root]++
	n.completeMu.Unlock()
}

func (n *Node) fetchEnded(root cid.Cid) {
	n.completeMu.Lock()
	if n.fetches[root]--; n.fetches[root] <= 0 {
		delete(n.fetches, root)
	}
	n.completeMu.Unlock()
}

// fetching reports whether a fetch of root runs now.
func (n *Node) fetching(root cid.Cid) bool {
	n.completeMu.Lock()
	defer n.completeMu.Unlock()
	return n.fetches[root] > 0
}

// ParseCID reads a CID as a user typed it, with an error that says what is
// wrong with it.
func ParseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("node: %q is not a CID (expected something like bafy...): %w", s, err)
	}
	if err := checkCodec(c); err != nil {
		return cid.Undef, err
	}
	return c, nil
}
