package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/orecdn/ore/store"
)

// ErrQuotaFull says the box's storage quota cannot take the content.
var ErrQuotaFull = store.ErrQuotaExceeded

// cidBuilder makes CIDv1 dag-pb nodes hashed with SHA2-256.
var cidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}

// AddOption tunes one Add.
type AddOption func(*addConfig) error

type addConfig struct {
	chunkSize int64
	progress  func(bytes int64)
	provide   bool
}

// AddChunkSize sets the leaf size (default 256 KiB, at most 1 MiB so every
// block fits a bitswap message).
func AddChunkSize(n int64) AddOption {
	return func(c *addConfig) error {
		if n < 1024 || n > 1<<20 {
			return fmt.Errorf("node: chunk size %d out of range [1 KiB, 1 MiB]", n)
		}
		c.chunkSize = n
		return nil
	}
}

// AddProgress is called with the file bytes read so far.
func AddProgress(f func(bytes int64)) AddOption {
	return func(c *addConfig) error { c.progress = f; return nil }
}

// AddNoProvide stores and pins but does not announce the root in the DHT.
func AddNoProvide() AddOption {
	return func(c *addConfig) error { c.provide = false; return nil }
}

// addProvideWait bounds how long Add waits for the root's announcement.
const addProvideWait = 5 * time.Second

// AddResult says what Add stored.
type AddResult struct {
	Root       cid.Cid `json:"root"`
	Bytes      int64   `json:"bytes"`       // file bytes read
	Provided   bool    `json:"provided"`    // announced in the DHT
	ProvideErr string  `json:"provide_err"` // why not, when not
}

// Add turns a file or directory into a UnixFS DAG (CIDv1, raw leaves,
// balanced layout), stores and pins it, and announces its root in the DHT.
// The pin is written only after every block is stored and synced, so an
// interrupted add leaves no pin to a missing block. A failed announcement
// does not fail the add: the root is announced again by the reprovider.
func (n *Node) Add(ctx context.Context, f files.Node, opts ...AddOption) (AddResult, error) {
	cfg := addConfig{chunkSize: DefaultChunkSize, provide: true}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return AddResult{}, err
		}
	}
	a := &adder{ctx: ctx, cfg: cfg, batch: ipld.NewBatch(ctx, n.dag, ipld.MaxSizeBatchOption(8<<20))}
	a.dag = batchDAG{DAGService: n.dag, b: a.batch}
	nd, err := a.add(f)
	if err == nil {
		err = a.batch.Commit()
	}
	if err != nil {
		return AddResult{}, fmt.Errorf("node: add: %w", err)
	}
	root := nd.Cid()
	if err := n.store.Pin(ctx, root); err != nil {
		return AddResult{}, fmt.Errorf("node: add: pin %s: %w", root, err)
	}
	n.metrics.addBytes.Add(float64(a.read.Load()))
	res := AddResult{Root: root, Bytes: a.read.Load()}
	n.recordRoot(ctx, root, res.Bytes)
	if cfg.provide {
		// The announcement runs for the box, not for the caller: Add waits
		// for it at most addProvideWait (a DHT lookup that meets a dead
		// peer waits out its dial), then it goes on in the background.
		done := make(chan error, 1)
		n.spawn(func(ctx context.Context) {
			pctx, cancel := context.WithTimeout(ctx, DefaultProvideTimeout)
			defer cancel()
			err := n.router.Provide(pctx, root)
			if err != nil {
				n.log.Warn("announce failed; the reprovider will retry", "root", root, "err", err)
			} else {
				n.log.Debug("announced", "root", root)
			}
			done <- err
		})
		wait := time.NewTimer(addProvideWait)
		defer wait.Stop()
		select {
		case err := <-done:
			if err != nil {
				res.ProvideErr = err.Error()
			} else {
				res.Provided = true
			}
		case <-wait.C:
			res.ProvideErr = fmt.Sprintf("still announcing after %s; it goes on in the background", addProvideWait)
		case <-ctx.Done():
			res.ProvideErr = "still announcing; it goes on in the background"
		}
	}
	n.log.Info("added", "root", root, "bytes", res.Bytes, "provided", res.Provided)
	return res, nil
}

// AddPath adds the file or directory at path (hidden files included).
func (n *Node) AddPath(ctx context.Context, path string, opts ...AddOption) (AddResult, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return AddResult{}, fmt.Errorf("node: add %s: %w", path, err)
	}
	f, err := files.NewSerialFile(path, true, st)
	if err != nil {
		return AddResult{}, fmt.Errorf("node: add %s: %w", path, err)
	}
	defer f.Close()
	return n.Add(ctx, f, opts...)
}

type adder struct {
	ctx   context.Context
	cfg   addConfig
	batch *ipld.Batch
	dag   ipld.DAGService // reads from the store, writes into batch
	read  atomic.Int64
	last  time.Time
}

func (a *adder) add(f files.Node) (ipld.Node, error) {
	if err := a.ctx.Err(); err != nil {
		return nil, err
	}
	switch f := f.(type) {
	case *files.Symlink:
		data, err := ft.SymlinkData(f.Target)
		if err != nil {
			return nil, err
		}
		nd := merkledag.NodeWithData(data)
		if err := nd.SetCidBuilder(cidBuilder); err != nil {
			return nil, err
		}
		return nd, a.batch.Add(a.ctx, nd)
	case files.File: // after *files.Symlink, which is a files.File too
		return a.addFile(f)
	case files.Directory:
		return a.addDir(f)
	default:
		return nil, fmt.Errorf("unsupported file type %T", f)
	}
}

func (a *adder) addFile(f files.File) (ipld.Node, error) {
	params := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cidBuilder,
		Dagserv:    a.dag,
	}
	db, err := params.New(chunker.NewSizeSplitter(&countingReader{r: f, a: a}, a.cfg.chunkSize))
	if err != nil {
		return nil, err
	}
	return balanced.Layout(db)
}

func (a *adder) addDir(d files.Directory) (ipld.Node, error) {
	dir, err := uio.NewDirectory(a.dag, uio.WithCidBuilder(cidBuilder))
	if err != nil {
		return nil, err
	}
	it := d.Entries()
	for it.Next() {
		child, err := a.add(it.Node())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Name(), err)
		}
		if err := dir.AddChild(a.ctx, it.Name(), child); err != nil {
			return nil, fmt.Errorf("%s: %w", it.Name(), err)
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	nd, err := dir.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, a.batch.Add(a.ctx, nd)
}

// batchDAG writes through a batch (one store transaction per 8 MiB) and
// reads from the store.
type batchDAG struct {
	ipld.DAGService
	b *ipld.Batch
}

func (d batchDAG) Add(ctx context.Context, nd ipld.Node) error { return d.b.Add(ctx, nd) }

func (d batchDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	return d.b.AddMany(ctx, nds)
}

type countingReader struct {
	r io.Reader
	a *adder
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	total := c.a.read.Add(int64(k))
	if c.a.cfg.progress != nil {
		if now := time.Now(); now.Sub(c.a.last) > 100*time.Millisecond || err == io.EOF {
			c.a.last = now
			c.a.cfg.progress(total)
		}
	}
	return k, err
}
