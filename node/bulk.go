package node

import (
	"context"
	"errors"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/bitswap"
	"github.com/orecdn/ore/dagstream"
)

// bulkTries is how many sources a fetch asks for a bulk stream before it
// leaves the DAG to bitswap: a refusal costs one round trip.
const bulkTries = 2

// bulk is the box's bulk DAG path (package dagstream) wired to the store,
// the send gate and bitswap's hooks, so receipts, the credit window, the
// data cap and traffic counters work on it as on bitswap.
type bulk struct {
	srv      *dagstream.Server // nil: the box does not serve bulk streams (see startBulk)
	cli      *dagstream.Client
	received func(peer.ID, blocks.Block) // bitswap's BlockReceived hook
}

// newBulk builds the bulk path before bitswap starts (so the meter's
// Release finds it); serve registers its handler once bitswap runs. A box that spreads its
// blocks (a seed in a crowd, WithSpread or an upload limit) serves no
// bulk streams: a crowd's boxes should trade pieces, not each pull the
// whole DAG from the seed; their fetches fall back to bitswap at once.
func (n *Node) newBulk(gate bitswap.Gate, filter bitswap.RequestFilter, hooks bitswap.Hooks) (*bulk, error) {
	cli, err := dagstream.NewClient(n.host, dagstream.WithMaxBlocks(n.cfg.MaxFetchBlocks))
	if err != nil {
		return nil, err
	}
	b := &bulk{cli: cli, received: hooks.BlockReceived}
	if n.cfg.spreads() {
		return b, nil
	}
	// Bulk sends count in the exchange's traffic (ore status, the
	// dashboard, metrics) as bitswap's do; n.ex exists by the first send.
	sent := func(p peer.ID, b blocks.Block) {
		n.ex.CountSent(b)
		if hooks.BlockSent != nil {
			hooks.BlockSent(p, b)
		}
	}
	opts := []dagstream.ServerOption{dagstream.WithGate(gate), dagstream.WithFilter(filter),
		dagstream.WithSent(sent), dagstream.WithServerLogger(n.log.With("part", "bulk"))}
	if n.cfg.UploadLimit > 0 {
		opts = append(opts, dagstream.WithUplink(func(ctx context.Context, k int) error { return n.ex.WaitUplink(ctx, k) }))
	}
	if b.srv, err = dagstream.NewServer(n.store, n.isComplete, opts...); err != nil {
		return nil, err
	}
	return b, nil
}

// serve registers the bulk handler on h (when the box serves).
func (b *bulk) serve(h host.Host) {
	if b.srv != nil {
		h.SetStreamHandler(dagstream.ProtocolID, b.srv.HandleStream)
	}
}

func (b *bulk) close() error {
	if b.srv == nil {
		return nil
	}
	return b.srv.Close()
}

// release has bitswap and the bulk streams send what the gate held back
// for p: the gate's verdict for p may have changed.
func (n *Node) release(p peer.ID) {
	n.ex.Release(p)
	if n.bulk != nil && n.bulk.srv != nil {
		n.bulk.srv.Release(p)
	}
}

// fetchSink stores a bulk stream's verified blocks as bitswap's are.
type fetchSink struct{ f *fetch }

func (s fetchSink) Put(_ context.Context, bs []blocks.Block) error { return s.f.storeBatch(bs) }

// tryBulk waits for the fetch's first direct source (at most until
// firstSourceWait after the fetch started) and asks for req over a bulk
// stream; true: all of it is local.
func (f *fetch) tryBulk(req dagstream.Request) bool {
	t := time.NewTimer(time.Until(f.start.Add(firstSourceWait)))
	defer t.Stop()
	select {
	case <-f.firstSource:
	case <-f.sourced: // the first look-up's dials ended
	case <-t.C:
	case <-f.ctx.Done():
	}
	ok := f.bulk(req)
	// The level walk that follows counts every block as it finds it local.
	f.blocks.Store(0)
	f.bytes.Store(0)
	return ok
}

// bulk asks the fetch's first directly connected sources, one at a time,
// to stream req, and says whether one did. A source that lied
// is dropped; after a refusal before any block the next is asked; after
// anything else bitswap fetches what is missing.
func (f *fetch) bulk(req dagstream.Request) bool {
	tried := 0
	for _, p := range f.directSourcesNow() {
		if tried == bulkTries || f.ctx.Err() != nil {
			return false
		}
		tried++
		// Blocks received count against the month's data cap: past it the
		// stream stops at once (and the fetch fails where bitswap would
		// ask for more), not after the blocks queued for the store.
		gctx, stop := context.WithCancel(f.ctx)
		res, err := f.n.bulk.cli.Get(gctx, p, req, fetchSink{f}, func(b blocks.Block, leaf bool) {
			f.bulkBlock(p, b, leaf)
			if f.n.datacap.refusal() != nil {
				stop()
			}
		})
		stop()
		if err == nil {
			f.n.log.Debug("fetched over a bulk stream", "root", f.root, "from", p, "blocks", res.Blocks, "bytes", res.Bytes)
			return true
		}
		var refused *dagstream.RefusedError
		switch {
		case errors.Is(err, dagstream.ErrLied):
			f.n.log.Warn("a source broke the bulk protocol: dropped", "root", f.root, "peer", p, "err", err)
			f.release(p)
			_ = f.n.host.Network().ClosePeer(p)
		case errors.As(err, &refused) && refused.Blocks == 0:
			f.n.log.Debug("bulk stream refused", "root", f.root, "peer", p, "code", refused.Code)
			continue
		default:
			f.n.log.Debug("bulk stream ended early: bitswap fetches the rest", "root", f.root, "peer", p, "blocks", res.Blocks, "err", err)
		}
		return false
	}
	return false
}

// bulkBlock counts a block a bulk stream verified, and reports it where
// bitswap reports its blocks (traffic, reach, receipts: the meter pays
// for it as for a block bitswap brought).
func (f *fetch) bulkBlock(from peer.ID, b blocks.Block, leaf bool) {
	f.n.pod.want(f.root, []cid.Cid{b.Cid()})
	f.n.ex.CountReceived(b)
	f.n.bulk.received(from, b)
	size := int64(len(b.RawData()))
	if b.Cid().Equals(f.root) {
		var links []*format.Link
		if b.Cid().Prefix().Codec == cid.DagProtobuf {
			links, _ = nodeLinks(b)
		}
		f.noteTotal(b, links)
	}
	f.blocks.Add(1)
	f.bytes.Add(size)
	f.fetched.Add(size)
	f.netBlocks.Add(1)
	since := max(int64(time.Since(f.start)), 1)
	f.firstByte.CompareAndSwap(0, since)
	if leaf {
		f.firstLeaf.CompareAndSwap(0, since)
	}
	f.n.metrics.fetchBlocks.Inc()
	f.n.metrics.fetchBytes.Add(float64(size))
	f.touch()
}

// directSourcesNow are the fetch's sources connected directly now (a
// relay carries no bulk stream, as it carries no blocks), in the order
// they connected.
func (f *fetch) directSourcesNow() []peer.ID {
	f.mu.Lock()
	ps := append([]peer.ID(nil), f.protected...)
	f.mu.Unlock()
	out := ps[:0]
	for _, p := range ps {
		if f.n.host.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	return out
}
