package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/ledger"
)

// computeState holds the box's job engine, started on first use: a box
// that never runs a job spends nothing on it.
type computeState struct {
	once   sync.Once
	engine *compute.Engine
	err    error
}

// ComputeCacheDir is where, under the repo, wazero keeps compiled
// functions, so a box compiles a function once, not once per start.
const ComputeCacheDir = "wasm-cache"

// DefaultComputeConcurrency is how many jobs a box runs at once: half its
// cores (at least one), so jobs never take every core from delivery.
func DefaultComputeConcurrency() int { return max(1, runtime.NumCPU()/2) }

// Job memory: the linear memory a box's jobs may hold at once
// (compute.EngineConfig.Memory), a share of the machine's RAM so that
// jobs never push the box's store and connections into swap. A small box
// (a 1 GiB ARM board: ~300 MiB for the node, the rest for the OS and the
// page cache its pack files are served from) lends at most
// smallJobMemory, enough for one job of a function at the default limit
// (compute.DefaultLimits: 256 MiB); a bigger one a quarter of its RAM.
const (
	jobMemoryShare = 4
	smallJobMemory = 256 << 20
)

// computeMemory is the job memory of a box with total bytes of RAM (0:
// unknown, no bound beyond each function's own limit).
func computeMemory(small bool, total int64) int64 {
	if total <= 0 {
		return 0
	}
	m := total / jobMemoryShare
	if small {
		m = min(m, smallJobMemory)
	}
	return m
}

// Compute returns the box's job engine (package compute): it runs
// functions over content into this box's store and signs the claims.
func (n *Node) Compute() (*compute.Engine, error) {
	n.compute.once.Do(func() {
		dir := ""
		if n.cfg.RepoDir != "" {
			dir = filepath.Join(n.cfg.RepoDir, ComputeCacheDir)
		}
		rt, err := compute.New(n.ctx, compute.Config{CacheDir: dir})
		if err != nil {
			n.compute.err = err
			return
		}
		e, err := compute.NewEngine(compute.EngineConfig{
			Runtime: rt, Content: computeContent{n}, Index: n.store, Key: n.key,
			Network: n.cfg.Network, Concurrency: DefaultComputeConcurrency(),
			Memory:   n.cfg.jobMemory(),
			Registry: n.reg, Logger: n.log,
		})
		if err != nil {
			rt.Close(context.Background())
			n.compute.err = err
			return
		}
		n.compute.engine = e
		n.spawn(func(ctx context.Context) {
			<-ctx.Done()
			rt.Close(context.Background())
		})
	})
	return n.compute.engine, n.compute.err
}

// computeContent is the engine's view of the box's content.
type computeContent struct{ n *Node }

// Open fetches c (from this box's store or the network, paying receipts
// like any fetch) and opens it as a file.
func (c computeContent) Open(ctx context.Context, root cid.Cid) (io.ReadCloser, error) {
	if _, err := c.n.Fetch(ctx, root, nil); err != nil {
		return nil, err
	}
	nd, err := c.n.Open(ctx, root)
	if err != nil {
		return nil, err
	}
	f, ok := nd.(files.File)
	if !ok {
		nd.Close()
		return nil, fmt.Errorf("node: %s is a directory, not a file", root)
	}
	return f, nil
}

// Add stores r as a UnixFS file and pins it, like ore add; it announces
// it in the background, not on the job's path.
func (c computeContent) Add(ctx context.Context, r io.Reader) (cid.Cid, error) {
	res, err := c.n.Add(ctx, files.NewReaderFile(r), AddNoProvide())
	if err != nil {
		return cid.Undef, err
	}
	c.n.provideAsync(res.Root)
	return res.Root, nil
}

// FunctionInfo says what RegisterFunction published.
type FunctionInfo struct {
	Fn     cid.Cid        `json:"fn"`     // the descriptor: the function's name
	Module cid.Cid        `json:"module"` // the WASI module's bytes
	Limits compute.Limits `json:"limits"`
	Size   int            `json:"metered_size"` // bytes of the module once metered
	// Registered: a KindFunction transaction at Price (base units per
	// GiWork) was submitted to the ledger.
	Registered bool   `json:"registered,omitempty"`
	Price      uint64 `json:"price,omitempty"`
}

// PublishFunction publishes a WASI command module and its descriptor
// (package compute) as content on this box, after checking that the
// runtime loads it under lim: the descriptor's CID is the function. With
// a price, it also registers the function on the ledger (rules 4): jobs
// are then paid at price base units per 2^30 work units, up to lim.Work.
func (n *Node) PublishFunction(ctx context.Context, module []byte, lim compute.Limits, price *uint64) (FunctionInfo, error) {
	e, err := n.Compute()
	if err != nil {
		return FunctionInfo{}, err
	}
	if len(module) > compute.MaxModuleSize {
		return FunctionInfo{}, fmt.Errorf("node: the module is %d bytes, the limit is %d", len(module), compute.MaxModuleSize)
	}
	if err := lim.Check(); err != nil {
		return FunctionInfo{}, err
	}
	mod, err := n.Add(ctx, files.NewBytesFile(module))
	if err != nil {
		return FunctionInfo{}, fmt.Errorf("node: add the module: %w", err)
	}
	d := compute.Descriptor{Version: compute.DescriptorVersion, Module: mod.Root, Limits: lim}
	fn, err := n.Add(ctx, files.NewBytesFile(d.Marshal()))
	if err != nil {
		return FunctionInfo{}, fmt.Errorf("node: add the descriptor: %w", err)
	}
	f, _, err := e.Load(ctx, fn.Root)
	if err != nil {
		return FunctionInfo{}, err
	}
	f.Release()
	info := FunctionInfo{Fn: fn.Root, Module: mod.Root, Limits: lim, Size: f.Size}
	if price != nil {
		if n.cfg.Genesis == nil || n.cfg.Genesis.Rules < ledger.RulesV4 {
			return info, fmt.Errorf("node: function %s published, not registered: registering needs a ledger network with rules %d", fn.Root, ledger.RulesV4)
		}
		if _, err := n.SignAndSubmit(ctx, ledger.NewRegisterFunction(n.ID(), 0, fn.Root, *price, lim.Work)); err != nil {
			return info, fmt.Errorf("node: function %s published, not registered: %w", fn.Root, err)
		}
		info.Registered, info.Price = true, *price
	}
	return info, nil
}

// RunJob runs the job (fn, input, args) on this box, or answers it from
// the box's index: the output is a UnixFS file in the box's store.
func (n *Node) RunJob(ctx context.Context, fn, input cid.Cid, args []string) (compute.Outcome, error) {
	e, err := n.Compute()
	if err != nil {
		return compute.Outcome{}, err
	}
	return e.Run(ctx, fn, input, args, n.ID())
}

var _ gateway.Jobs = (*gatewayBackend)(nil)

// RunJob answers a job for the gateway: from the box's index, on a box
// with idle CPU, or on this box (runJobAnywhere).
func (b *gatewayBackend) RunJob(ctx context.Context, fn, input cid.Cid, args []string) (compute.Outcome, error) {
	out, err := b.n.runJobAnywhere(ctx, fn, input, args)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnsupported) {
		err = fmt.Errorf("%w: %w", gateway.ErrNotFound, err)
	}
	return out, err
}

// jobMemory is the box's job memory: WithComputeMemory's, else its
// profile's share of the machine's RAM.
func (c *Config) jobMemory() int64 {
	if c.ComputeMemory != 0 {
		return c.ComputeMemory
	}
	total, err := SystemMemory()
	if err != nil {
		return 0
	}
	return computeMemory(c.SmallMemory, total)
}
