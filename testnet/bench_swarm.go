package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

// SwarmConfig is a flash-crowd benchmark.
type SwarmConfig struct {
	Boxes       int           // the crowd (default 50)
	Size        int64         // bytes of the published file (default 64 MiB)
	UploadLimit int64         // bytes/s every box serves at most (default 2 MiB/s, a home uplink; negative: none)
	Epoch       time.Duration // ledger epoch: scheduling acts once per epoch (default 1 s)
	SpreadHold  time.Duration // every box's node.WithSpread (default node.DefaultSpreadHold; negative: none)
	Ramp        time.Duration // the crowd's requests arrive evenly over this (default 5 s)
	Scheduling  bool
	ReceiptsOff bool // no proof of delivery (to measure what it costs)
	// Prewarm, with scheduling on, has the publisher order this many
	// replicas on the ledger before the release (a pre-warm), and the crowd
	// comes once they hold it; the pre-warm's traffic from the origin
	// counts. 0: no pre-warm, the crowd meets cold content.
	Prewarm int
	// QUIC lets the boxes listen on QUIC besides TCP. Off by default: dozens
	// of QUIC hosts in one process overflow loopback's UDP buffers and
	// congestion control throttles them (measured: the crowd's bytes took
	// twice as long), which would measure the test rig, not ore.
	QUIC bool
	// Mocknet runs the boxes on go-libp2p's in-memory mocknet instead of
	// loopback TCP: no sockets (hundreds of boxes fit in one process's file
	// descriptors), no kernel TCP and no encryption to pay for on the
	// machine's cores. Latency is every link's one-way delay there.
	Mocknet bool
	Latency time.Duration
	// SmallMemory gives every box the small-memory profile (badger's
	// memtables and caches sized for 1 GiB boxes), so that hundreds of
	// boxes fit in one machine's memory.
	SmallMemory bool
	Params      heat.Params // the committee's planner (default heat.DefaultParams)
	// CPUProfile, if set, receives a CPU profile of the crowd's fetches
	// (from the first request to the last completion).
	CPUProfile io.Writer
	Progress   func(string)
	Logger     *slog.Logger
}

// SwarmResult is what one flash crowd measured.
type SwarmResult struct {
	Scheduling     bool    `json:"scheduling"`
	Boxes          int     `json:"boxes"`
	Size           int64   `json:"size"`
	OriginBytes    uint64  `json:"origin_bytes"` // block bytes the origin served to the crowd
	OriginRatio    float64 `json:"origin_ratio"` // origin bytes / content size
	Offload        float64 `json:"offload"`      // share of the crowd's bytes not served by the origin
	SingleSeconds  float64 `json:"single_seconds"`
	CrowdSeconds   float64 `json:"crowd_seconds"` // first request to last completion
	CrowdOverOne   float64 `json:"crowd_over_single"`
	ReplicasBefore int     `json:"replicas_before"`
	ReplicasAfter  int     `json:"replicas_after"`
	Ordered        int     `json:"replicas_ordered"` // boxes that hold it under a committee order
	Prewarmed      int     `json:"prewarmed"`        // replicas the pre-warm placed before the crowd
	PrewarmSeconds float64 `json:"prewarm_seconds"`  // from the pre-warm order to its replicas held
	Failed         int     `json:"failed"`
	// Received is the block bytes the crowd received over the bytes it
	// needed (1: no block came twice).
	Received float64 `json:"received_over_needed"`
	// Rewants is how often the crowd's fetches asked again for blocks
	// that did not come (node.FetchResult.Rewants), failed fetches aside.
	Rewants int64 `json:"rewants"`
	// CPUShare is the CPU time this process used during the crowd over
	// the crowd's time × the machine's cores: near 1, the machine, not
	// the boxes' uplinks, bound the crowd (its figures then measure the
	// rig). The process holds every box, so this is the whole crowd's.
	CPUShare float64 `json:"cpu_share"`
}

// DefaultSwarmUpload is every box's upload cap in the swarm bench: the
// upstream of a home line (2-5 MiB/s is typical), so that the crowd is
// bound by its uplinks as a real one is, not by the test machine's cores.
const DefaultSwarmUpload = 2 << 20

// mocknetHubConns is the connection manager's high-water mark of the
// origin and the coordinators on a mocknet: every crowd box dials them.
const mocknetHubConns = 512

// mocknetCrowdConns is the connection manager's high-water mark of a crowd
// box on a mocknet: above the connections a box of a few hundred holds
// without fetching (see BenchSwarm).
const mocknetCrowdConns = 256

// minSwarmFDs is the file descriptors a crowd box needs at least.
const minSwarmFDs = 80

// Roles of the boxes in a swarm network.
const (
	swarmOrigin = 3 // after the three coordinators
	swarmProbe  = 4 // measures one fetch alone, then leaves
	swarmFirst  = 5 // the crowd starts here
)

// BenchSwarm publishes a file on an origin box and lets a crowd of boxes
// request it at once; it measures the origin's upload against the content
// size, the crowd's completion time against one box alone, and the
// replicas before and after.
func BenchSwarm(ctx context.Context, cfg SwarmConfig) (res SwarmResult, err error) {
	if cfg.Boxes <= 0 {
		cfg.Boxes = 50
	}
	if cfg.Size <= 0 {
		cfg.Size = 64 << 20
	}
	if cfg.UploadLimit == 0 {
		cfg.UploadLimit = DefaultSwarmUpload
	}
	if cfg.Epoch <= 0 {
		cfg.Epoch = time.Second
	}
	if cfg.SpreadHold == 0 {
		cfg.SpreadHold = node.DefaultSpreadHold
	}
	if cfg.Ramp <= 0 {
		cfg.Ramp = 5 * time.Second
	}
	if cfg.Params == (heat.Params{}) {
		cfg.Params = heat.DefaultParams()
	}
	say := func(format string, a ...any) {
		if cfg.Progress != nil {
			cfg.Progress(fmt.Sprintf(format, a...))
		}
	}
	res = SwarmResult{Scheduling: cfg.Scheduling, Boxes: cfg.Boxes, Size: cfg.Size}
	total := swarmFirst + cfg.Boxes
	say("starting %d boxes (3 coordinators, an origin, a probe, a crowd of %d; upload limit %d KiB/s each; scheduling %v)",
		total, cfg.Boxes, cfg.UploadLimit>>10, cfg.Scheduling)
	opts := []Option{
		WithNodeOptions(node.WithUploadLimit(max(cfg.UploadLimit, 0)), node.WithScheduling(cfg.Scheduling),
			node.WithSchedule(cfg.Params), node.WithStallTimeout(60*time.Second),
			node.WithSpread(max(cfg.SpreadHold, 0))),
		WithLedger(LedgerSpec{Coordinators: []int{0, 1, 2}, EpochLength: cfg.Epoch, Network: "ore-swarm",
			Balances: map[int]uint64{swarmOrigin: 1_000_000 * 1_000_000_000}}),
	}
	switch {
	case cfg.Mocknet:
		opts = append(opts, WithMocknet(mocknet.LinkOptions{Latency: cfg.Latency}))
	case !cfg.QUIC:
		opts = append(opts, WithTCPOnly())
	}
	if cfg.ReceiptsOff {
		opts = append(opts, WithNodeOptions(node.WithReceipts(false)))
	}
	if cfg.SmallMemory {
		// Small boxes are home boxes, behind NATs and DHT clients in the
		// auto mode: the coordinators and the origin serve the DHT. With
		// every box a server, each held ~125 connections before the crowd
		// (its routing table of the 205-box network), each connection with
		// its gossipsub and DHT streams: ~230,000 goroutines in the one
		// process 30 s into the crowd.
		opts = append(opts, WithNodeOptions(node.WithSmallMemory(true)), WithDHTServers(swarmProbe))
	}
	// Every box's sockets and files come out of this one process's file
	// descriptors: share them out. A box keeps ~8 files (badger, packs)
	// and ~20-60 sockets (DHT, bitswap peers, its own sources); under ~100
	// each, boxes start failing to dial or accept and the crowd stalls
	// (measured: 205 boxes in 20,000 descriptors, 174 of 200 stalled).
	// The origin and the coordinators, which every box dials, get a hub's
	// share: with a crowd's share the origin's connection manager trimmed
	// all but ~20 of 150 fetchers, which then stalled.
	if fds := fileLimit(); fds > 0 && !cfg.Mocknet {
		hub := min(1024, fds/(4*swarmFirst))
		per := (int(float64(fds)*0.9) - swarmFirst*hub) / cfg.Boxes
		if per < minSwarmFDs {
			return res, fmt.Errorf("testnet: %d boxes in one process need about %d file descriptors, this process may open %d (ulimit -n): run fewer boxes, or raise the limit",
				total, (swarmFirst*hub+cfg.Boxes*minSwarmFDs)*10/9, fds)
		}
		per = min(per, 1024)
		opts = append(opts, WithNodeOptions(node.WithResourceLimits(256<<20, per), node.WithConnLimits(max(per/6, 8), max(per/3, 16))))
		for i := 0; i < swarmFirst; i++ {
			opts = append(opts, WithBoxOptions(i, node.WithResourceLimits(512<<20, hub), node.WithConnLimits(hub/4, hub/2)))
		}
	} else if cfg.Mocknet {
		// No descriptors to share out on a mocknet, but the hubs still
		// need a hub's connections, and the crowd boxes enough not to trim:
		// before the crowd each already holds ~125 (its DHT's routing
		// table of a 205-box network), over the small-memory profile's
		// high-water mark (96); trimmed to its low-water mark (32) a
		// minute in, every box dropped ~90 connections at once and dialled
		// them again. On a mocknet that churn takes every host's lock
		// (thousands of goroutines queued on Connectedness, addConnPair
		// and removeConn in one dump) and the whole process stopped: no
		// box got a block for minutes and 130-160 of 200 fetches failed.
		// Boxes on separate machines pay the churn each on its own cores.
		for i := 0; i < swarmFirst; i++ {
			opts = append(opts, WithBoxOptions(i, node.WithConnLimits(mocknetHubConns/2, mocknetHubConns)))
		}
		if cfg.SmallMemory {
			for i := swarmFirst; i < total; i++ {
				opts = append(opts, WithBoxOptions(i, node.WithConnLimits(mocknetCrowdConns/2, mocknetCrowdConns)))
			}
		}
	}
	if cfg.Logger != nil {
		opts = append(opts, WithLogger(cfg.Logger))
	}
	nw, err := New(ctx, total, opts...)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, nw.Close()) }()
	origin := nw.Nodes[swarmOrigin]

	path := filepath.Join(nw.root, "swarm.bin")
	if err := WriteRandomFile(path, cfg.Size, uint64(time.Now().UnixNano())); err != nil {
		return res, fmt.Errorf("testnet: write swarm file: %w", err)
	}
	added, err := origin.AddPath(ctx, path)
	if err != nil {
		return res, err
	}
	os.Remove(path)
	root := added.Root
	say("origin (box %d) published %s", swarmOrigin, root)

	// One box alone, then it leaves (its copy must not help the crowd).
	probe := nw.Nodes[swarmProbe]
	start := time.Now()
	if _, err := probe.Fetch(ctx, root, nil); err != nil {
		return res, fmt.Errorf("testnet: single fetch: %w", err)
	}
	res.SingleSeconds = time.Since(start).Seconds()
	if _, err := probe.Evict(ctx, 1<<62); err != nil {
		return res, err
	}
	if err := nw.Leave(swarmProbe); err != nil {
		return res, err
	}
	say("one box alone fetched it in %.2f s", res.SingleSeconds)
	res.ReplicasBefore = replicas(ctx, nw, root)

	before, err := origin.Exchange().Stats()
	if err != nil {
		return res, err
	}
	if cfg.Scheduling && cfg.Prewarm > 0 {
		t0 := time.Now()
		if err := prewarm(ctx, nw, root, cfg.Prewarm, cfg.Epoch); err != nil {
			return res, err
		}
		res.PrewarmSeconds = time.Since(t0).Seconds()
		_, res.Prewarmed = holders(ctx, nw, root)
		say("the pre-warm placed %d replicas in %.1f s", res.Prewarmed, res.PrewarmSeconds)
	}
	crowd := nw.Nodes[swarmFirst:]
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
		done   int
	)
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return res, fmt.Errorf("testnet: cpu profile: %w", err)
		}
	}
	progress := make([]boxProgress, len(crowd))
	cpu0 := processCPU()
	start = time.Now()
	for i, n := range crowd {
		wg.Add(1)
		go func(i int, n *node.Node) {
			defer wg.Done()
			delay := time.Duration(int64(cfg.Ramp) * int64(i) / int64(len(crowd)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			fr, err := n.Fetch(ctx, root, progress[i].update)
			progress[i].end()
			mu.Lock()
			defer mu.Unlock()
			res.Rewants += fr.Rewants
			if err != nil {
				err = fmt.Errorf("box %d: %w", swarmFirst+i, err)
				failed = append(failed, err)
				say("%v (after %.1f s)", err, time.Since(start).Seconds())
				return
			}
			if done++; done%10 == 0 || done == len(crowd) {
				say("%d/%d boxes done after %.1f s", done, len(crowd), time.Since(start).Seconds())
			}
		}(i, n)
	}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchCrowd(stop, start, origin, crowd, progress, before.DataSent, cfg.Size, say)
	}()
	wg.Wait()
	close(stop)
	<-watched
	res.CrowdSeconds = time.Since(start).Seconds()
	if cpu := processCPU() - cpu0; cpu > 0 && res.CrowdSeconds > 0 {
		res.CPUShare = cpu.Seconds() / (res.CrowdSeconds * float64(runtime.NumCPU()))
	}
	say("the crowd's fetches asked again %d times; the process used %.0f%% of %d cores", res.Rewants, 100*res.CPUShare, runtime.NumCPU())
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	res.Failed = len(failed)
	after, err := origin.Exchange().Stats()
	if err != nil {
		return res, err
	}
	res.OriginBytes = after.DataSent - before.DataSent
	var received uint64
	for _, n := range crowd {
		if st, err := n.Exchange().Stats(); err == nil {
			received += st.DataReceived
		}
	}
	res.OriginRatio = float64(res.OriginBytes) / float64(cfg.Size)
	if served := float64(cfg.Size) * float64(len(crowd)-len(failed)); served > 0 {
		res.Offload = 1 - float64(res.OriginBytes)/served
		res.Received = float64(received) / served
	}
	if res.SingleSeconds > 0 {
		res.CrowdOverOne = res.CrowdSeconds / res.SingleSeconds
	}
	// Orders land within an epoch or two of the last report.
	if cfg.Scheduling {
		select {
		case <-ctx.Done():
		case <-time.After(2 * cfg.Epoch):
		}
	}
	res.ReplicasAfter, res.Ordered = holders(ctx, nw, root)
	if len(failed) > 0 {
		return res, fmt.Errorf("testnet: %d of %d crowd fetches failed: %w", len(failed), len(crowd), errors.Join(failed...))
	}
	return res, nil
}

// swarmWatchInterval is how often the bench reports the crowd's progress.
const swarmWatchInterval = 10 * time.Second

// watchCrowd reports, every swarmWatchInterval until stop closes, the share
// of the crowd's bytes that arrived (duplicates included) and what the
// origin sent since originBefore; once swarmShowLeft boxes or fewer are
// still fetching, where each of them is and how long it got no block.
func watchCrowd(stop <-chan struct{}, start time.Time, origin *node.Node, crowd []*node.Node, progress []boxProgress, originBefore uint64, size int64, say func(string, ...any)) {
	t := time.NewTicker(swarmWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var got, dups, late uint64
		for _, n := range crowd {
			if st, err := n.Exchange().Stats(); err == nil {
				got += st.DataReceived
				dups += st.DupBlocks
				late += st.LateCancelled
			}
		}
		sent := uint64(0)
		if st, err := origin.Exchange().Stats(); err == nil {
			sent = st.DataSent - originBefore
			late += st.LateCancelled
		}
		conns := 0
		for _, n := range crowd {
			conns += len(n.Host().Network().Peers())
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		say("after %.0f s: the crowd received %.0f%% of its bytes (%d duplicate blocks; %d blocks cancelled before they left), the origin sent %.2f× the size; %.0f connections per box; %d goroutines, heap %d MiB, %d GCs",
			time.Since(start).Seconds(), 100*float64(got)/float64(size*int64(len(crowd))), dups, late, float64(sent)/float64(size), float64(conns)/float64(len(crowd)),
			runtime.NumGoroutine(), ms.HeapAlloc>>20, ms.NumGC)
		var left []int
		for i := range progress {
			if !progress[i].done.Load() {
				left = append(left, i)
			}
		}
		if len(left) == 0 || len(left) > swarmShowLeft {
			continue
		}
		for _, i := range left {
			p := progress[i].last.Load()
			idle := time.Since(time.Unix(0, progress[i].changed.Load()))
			st, _ := crowd[i].Exchange().Stats()
			if p == nil {
				say("  box %d: not started", swarmFirst+i)
				continue
			}
			say("  box %d: %d of %d bytes, %d blocks, %d providers, %d bitswap peers, %d wants, no new block for %.0f s",
				swarmFirst+i, p.Bytes, p.Total, p.Blocks, p.Providers, st.Peers, st.WantlistLen, idle.Seconds())
		}
	}
}

// holders counts the open boxes that hold root whole, and those of them
// that hold it under a committee order.
func holders(ctx context.Context, nw *Network, root cid.Cid) (whole, ordered int) {
	for i, nd := range nw.Nodes {
		if i == swarmProbe {
			continue
		}
		roots, err := nd.Roots(ctx)
		if err != nil {
			continue
		}
		for _, r := range roots {
			if r.Root != root {
				continue
			}
			if r.Size > 0 {
				whole++
			}
			if r.Order == heat.OrderHeld.String() {
				ordered++
			}
		}
	}
	return whole, ordered
}

func replicas(ctx context.Context, nw *Network, root cid.Cid) int {
	n, _ := holders(ctx, nw, root)
	return n
}

// prewarm has the origin deposit, register root and order a pre-warm of
// n replicas, and waits until n boxes hold it.
func prewarm(ctx context.Context, nw *Network, root cid.Cid, n int, epoch time.Duration) error {
	pub := nw.Nodes[swarmOrigin]
	key, err := node.LoadIdentity(nw.Dirs[swarmOrigin])
	if err != nil {
		return err
	}
	until := pub.Network().EpochAt(time.Now()) + 3600
	for i, tx := range []ledger.Tx{
		ledger.NewDeposit(pub.ID(), 1, 1000*1_000_000_000),
		ledger.NewRegister(pub.ID(), 2, root, 0),
		ledger.NewPrewarm(pub.ID(), 3, root, uint32(n), until),
	} {
		if err := tx.Sign(nw.Genesis.Network, key); err != nil {
			return err
		}
		if err := pub.SubmitTx(ctx, tx); err != nil {
			return fmt.Errorf("testnet: pre-warm transaction %d: %w", i+1, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*epoch+2*time.Minute)
	defer cancel()
	for replicas(wctx, nw, root) < n {
		select {
		case <-wctx.Done():
			return fmt.Errorf("testnet: the pre-warm placed %d of %d replicas in time", replicas(ctx, nw, root), n)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// fileLimit is this process's limit on open files (0: unknown).
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(l.Cur, 1<<30))
}

// swarmShowLeft is the most unfinished boxes the bench describes one by
// one in its progress reports (a crowd's tail).
const swarmShowLeft = 12

// boxProgress is one crowd box's last fetch progress.
type boxProgress struct {
	last    atomic.Pointer[node.FetchProgress]
	changed atomic.Int64 // unix nanos of the last change of Blocks
	done    atomic.Bool
}

func (b *boxProgress) update(p node.FetchProgress) {
	if old := b.last.Load(); old == nil || old.Blocks != p.Blocks {
		b.changed.Store(time.Now().UnixNano())
	}
	b.last.Store(&p)
}

func (b *boxProgress) end() { b.done.Store(true) }
