package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/node"
)

// SwarmConfig is a flash-crowd benchmark.
type SwarmConfig struct {
	Boxes       int           // the crowd (default 50)
	Size        int64         // bytes of the published file (default 64 MiB)
	UploadLimit int64         // bytes/s every box serves at most (default 16 MiB/s)
	Epoch       time.Duration // ledger epoch: scheduling acts once per epoch (default 1 s)
	Ramp        time.Duration // the crowd's requests arrive evenly over this (default 5 s)
	Scheduling  bool
	Params      heat.Params // the committee's planner (default heat.DefaultParams)
	Progress    func(string)
	Logger      *slog.Logger
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
	Failed         int     `json:"failed"`
}

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
		cfg.UploadLimit = 16 << 20
	}
	if cfg.Epoch <= 0 {
		cfg.Epoch = time.Second
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
	say("starting %d boxes (3 coordinators, an origin, a probe, a crowd of %d; upload limit %d MiB/s each; scheduling %v)",
		total, cfg.Boxes, cfg.UploadLimit>>20, cfg.Scheduling)
	opts := []Option{
		WithNodeOptions(node.WithUploadLimit(cfg.UploadLimit), node.WithScheduling(cfg.Scheduling),
			node.WithSchedule(cfg.Params), node.WithSmallMemory(true), node.WithStallTimeout(60*time.Second),
			node.WithConnLimits(256, 512)),
		WithLedger(LedgerSpec{Coordinators: []int{0, 1, 2}, EpochLength: cfg.Epoch, Network: "ore-swarm"}),
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
	if err := probe.Close(); err != nil {
		return res, err
	}
	say("one box alone fetched it in %.2f s", res.SingleSeconds)
	res.ReplicasBefore = replicas(ctx, nw, root)

	before, err := origin.Exchange().Stats()
	if err != nil {
		return res, err
	}
	crowd := nw.Nodes[swarmFirst:]
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
		done   int
	)
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
			_, err := n.Fetch(ctx, root, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Errorf("box %d: %w", swarmFirst+i, err))
				return
			}
			if done++; done%10 == 0 || done == len(crowd) {
				say("%d/%d boxes done after %.1f s", done, len(crowd), time.Since(start).Seconds())
			}
		}(i, n)
	}
	wg.Wait()
	res.CrowdSeconds = time.Since(start).Seconds()
	res.Failed = len(failed)
	after, err := origin.Exchange().Stats()
	if err != nil {
		return res, err
	}
	res.OriginBytes = after.DataSent - before.DataSent
	res.OriginRatio = float64(res.OriginBytes) / float64(cfg.Size)
	if served := float64(cfg.Size) * float64(len(crowd)-len(failed)); served > 0 {
		res.Offload = 1 - float64(res.OriginBytes)/served
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
	res.ReplicasAfter = replicas(ctx, nw, root)
	res.Ordered = ordered(ctx, nw, root)
	if len(failed) > 0 {
		return res, fmt.Errorf("testnet: %d of %d crowd fetches failed: %w", len(failed), len(crowd), errors.Join(failed...))
	}
	return res, nil
}

// replicas counts the open boxes that announce root in the DHT and hold
// it whole.
func replicas(ctx context.Context, nw *Network, root cid.Cid) int {
	n := 0
	for i, nd := range nw.Nodes {
		if i == swarmProbe {
			continue
		}
		roots, err := nd.Roots(ctx)
		if err != nil {
			continue
		}
		for _, r := range roots {
			if r.Root == root && r.Size > 0 {
				n++
			}
		}
	}
	return n
}

func ordered(ctx context.Context, nw *Network, root cid.Cid) int {
	n := 0
	for i, nd := range nw.Nodes {
		if i == swarmProbe {
			continue
		}
		roots, err := nd.Roots(ctx)
		if err != nil {
			continue
		}
		for _, r := range roots {
			if r.Root == root && r.Order == heat.OrderHeld.String() {
				n++
			}
		}
	}
	return n
}
