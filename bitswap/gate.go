package bitswap

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	"github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gate meters the blocks the server sends. Allow is asked for every block
// just before it leaves for peer p, with the block's CID (the proof of
// delivery counts a block against the content it belongs to) and size:
// true lets it go (and the gate counts it against p), false holds it
// back. Held blocks are sent when the gate is asked again after
// Exchange.Release(p), without the peer re-asking. Allow runs on the send
// path: it must be fast and must not block.
type Gate interface {
	Allow(p peer.ID, c cid.Cid, size int) bool
}

// GateRefunder is a Gate that takes back what Allow counted for a block
// that then did not leave (its asker cancelled it while it waited for the
// uplink); a Gate without it keeps such blocks counted.
type GateRefunder interface {
	Refund(p peer.ID, c cid.Cid, size int)
}

// Verdict is a GateDecider's answer for one block.
type Verdict int

const (
	// Send lets the block go (the gate counted it).
	Send Verdict = iota
	// Hold keeps it until Exchange.Release(p) and the gate allows it.
	Hold
	// DontHave drops it and tells the peer DONT_HAVE for its CID, so the
	// peer asks elsewhere or later rather than waiting on silence.
	DontHave
)

// GateDecider is a Gate that may also refuse a block outright (a peer
// served from a free budget it has spent). A gate without it holds what
// Allow refuses.
type GateDecider interface {
	Decide(p peer.ID, c cid.Cid, size int) Verdict
}

// Decide asks gate g about one block for peer p: a GateDecider's verdict,
// else Send when Allow lets it go and Hold when not. Every sender of
// blocks asks the gate through it: bitswap's network layer here, and the
// bulk DAG stream (dagstream).
func Decide(g Gate, p peer.ID, c cid.Cid, size int) Verdict {
	if d, ok := g.(GateDecider); ok {
		return d.Decide(p, c, size)
	}
	if g.Allow(p, c, size) {
		return Send
	}
	return Hold
}

// decide asks the gate about one block.
func (g *gatedNetwork) decide(p peer.ID, c cid.Cid, size int) Verdict {
	return Decide(g.gate, p, c, size)
}

// WithGate sets the server's send gate (the proof-of-delivery credit window).
func WithGate(g Gate) Option {
	return func(c *config) error {
		c.gate = g
		return nil
	}
}

// maxHeldPerPeer bounds the blocks held back for one peer; older ones are
// dropped (the peer asks again after its rebroadcast interval).
const maxHeldPerPeer = 8192

// maxHeldBytesPerPeer bounds the bytes of held blocks kept in memory for one
// peer; beyond it only CIDs are kept and the bytes are read again on
// release. The bitswap server queues at most DefaultMaxOutstandingBytesPerPeer
// for a peer, so an honest client's held blocks stay in memory and are not
// read twice.
const maxHeldBytesPerPeer = 4 * DefaultMaxOutstandingBytesPerPeer

// releaseMessageSize is the size of the messages that carry released blocks.
const releaseMessageSize = 1 << 20

// gatedNetwork sits under the bitswap server: the server sends blocks only
// through SendMessage, so this is the one place every outgoing block passes.
// It applies the gate, reports blocks actually sent, and keeps what the gate
// held back (by CID, the bytes stay in the store).
type gatedNetwork struct {
	network.BitSwapNetwork
	gate   Gate
	sent   func(peer.ID, blocks.Block)
	store  blockstore.Blockstore
	up     *uplink   // nil: no upload limit
	spread *spreader // nil: no spreading
	late   *lateCancels

	// Blocks and bytes that left (boxo counts those it handed to the
	// network, including the ones the gate or the spreader held back),
	// and blocks dropped because the peer cancelled them before they left.
	blocksSent, dataSent, lateDropped atomic.Uint64

	mu   sync.Mutex
	held map[peer.ID]*heldBlocks
}

type heldBlocks struct {
	release sync.Mutex // one release at a time per peer keeps order
	items   []held
	bytes   int // of the blocks kept in memory
}

// held is a block held back: its bytes while they fit the per-peer budget,
// its CID only otherwise.
type held struct {
	c cid.Cid
	b blocks.Block
}

func newGatedNetwork(n network.BitSwapNetwork, g Gate, sent func(peer.ID, blocks.Block), bs blockstore.Blockstore) *gatedNetwork {
	return &gatedNetwork{BitSwapNetwork: n, gate: g, sent: sent, store: bs, late: newLateCancels(), held: make(map[peer.ID]*heldBlocks)}
}

func (g *gatedNetwork) SendMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) error {
	if g.spread != nil {
		blks := msg.Blocks()
		now := g.spread.filter(p, blks)
		quiet := false
		for _, bp := range msg.BlockPresences() {
			if bp.Type == pb.Message_Have && g.spread.sentRecently(bp.Cid, p) {
				quiet = true
				break
			}
		}
		if len(now) < len(blks) || quiet {
			msg = rebuildWith(msg, now, func(c cid.Cid) bool { return g.spread.sentRecently(c, p) })
			if msg.Empty() {
				return nil
			}
		}
	}
	return g.gated(ctx, p, msg)
}

// rebuild is msg with only the blocks blks (and all its block presences).
func rebuild(msg bsmsg.BitSwapMessage, blks []blocks.Block) bsmsg.BitSwapMessage {
	return rebuildWith(msg, blks, nil)
}

// rebuildWith is msg with only the blocks blks, and its block presences but
// the HAVEs for which quiet returns true.
func rebuildWith(msg bsmsg.BitSwapMessage, blks []blocks.Block, quiet func(cid.Cid) bool) bsmsg.BitSwapMessage {
	out := bsmsg.New(false)
	for _, b := range blks {
		out.AddBlock(b)
	}
	for _, bp := range msg.BlockPresences() {
		if bp.Type == pb.Message_Have && quiet != nil && quiet(bp.Cid) {
			continue
		}
		out.AddBlockPresence(bp.Cid, bp.Type)
	}
	out.SetPendingBytes(msg.PendingBytes())
	return out
}

// gated sends msg through the gate: the blocks it holds back wait for
// Release.
func (g *gatedNetwork) gated(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) error {
	blks := msg.Blocks()
	if g.gate == nil || len(blks) == 0 {
		return g.send(ctx, p, msg, blks)
	}
	var allowed, hold []blocks.Block
	var refused []cid.Cid
	for _, b := range blks {
		switch g.decide(p, b.Cid(), len(b.RawData())) {
		case Send:
			allowed = append(allowed, b)
		case Hold:
			hold = append(hold, b)
		default:
			refused = append(refused, b.Cid())
		}
	}
	if len(hold) == 0 && len(refused) == 0 {
		return g.send(ctx, p, msg, blks)
	}
	if len(hold) > 0 {
		g.hold(p, hold)
	}
	out := rebuild(msg, allowed)
	for _, c := range refused {
		out.AddBlockPresence(c, pb.Message_DontHave)
	}
	if out.Empty() {
		return nil
	}
	return g.send(ctx, p, out, allowed)
}

func (g *gatedNetwork) send(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage, blks []blocks.Block) error {
	// A block leaves for good when its turn at the uplink comes (with an
	// upload limit, seconds after boxo packed it): one the peer cancelled
	// by then (it got it elsewhere) is dropped, and the time it waited for
	// goes to the next block.
	kept := make([]blocks.Block, 0, len(blks))
	for _, b := range blks {
		if g.late.cancelled(p, b.Cid()) {
			g.unsent(p, b)
			continue
		}
		if err := g.up.wait(ctx, len(b.RawData())); err != nil {
			return err
		}
		if g.up != nil && g.late.cancelled(p, b.Cid()) {
			g.up.refund(len(b.RawData()))
			g.unsent(p, b)
			continue
		}
		kept = append(kept, b)
	}
	if len(kept) < len(blks) {
		if msg = rebuild(msg, kept); msg.Empty() {
			return nil
		}
	}
	if err := g.BitSwapNetwork.SendMessage(ctx, p, msg); err != nil {
		return err
	}
	for _, b := range kept {
		g.blocksSent.Add(1)
		g.dataSent.Add(uint64(len(b.RawData())))
	}
	if g.sent != nil {
		for _, b := range kept {
			g.sent(p, b)
		}
	}
	return nil
}

// unsent counts a block dropped in send, and gives the gate back what it
// counted for it (every path to send asked the gate first).
func (g *gatedNetwork) unsent(p peer.ID, b blocks.Block) {
	g.lateDropped.Add(1)
	if r, ok := g.gate.(GateRefunder); ok {
		r.Refund(p, b.Cid(), len(b.RawData()))
	}
}

func (g *gatedNetwork) hold(p peer.ID, blks []blocks.Block) {
	items := make([]held, len(blks))
	for i, b := range blks {
		items[i] = held{c: b.Cid(), b: b}
	}
	g.holdItems(p, items)
}

func (g *gatedNetwork) holdItems(p peer.ID, items []held) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.held[p]
	if h == nil {
		h = &heldBlocks{}
		g.held[p] = h
	}
	for _, it := range items {
		if it.b != nil {
			if h.bytes+len(it.b.RawData()) > maxHeldBytesPerPeer {
				it.b = nil // keep the CID, read the bytes again on release
			} else {
				h.bytes += len(it.b.RawData())
			}
		}
		h.items = append(h.items, it)
	}
	if over := len(h.items) - maxHeldPerPeer; over > 0 {
		for _, it := range h.items[:over] {
			if it.b != nil {
				h.bytes -= len(it.b.RawData())
			}
		}
		h.items = append(h.items[:0], h.items[over:]...)
	}
}

// load returns a held block: b when its bytes were kept, else c read
// again from the store (false: it was deleted meanwhile).
func (g *gatedNetwork) load(ctx context.Context, c cid.Cid, b blocks.Block) (blocks.Block, bool) {
	if b != nil {
		return b, true
	}
	b, err := g.store.Get(ctx, c)
	return b, err == nil
}

// release sends the blocks held for p that the gate now allows.
func (g *gatedNetwork) release(ctx context.Context, p peer.ID) {
	g.mu.Lock()
	h := g.held[p]
	g.mu.Unlock()
	if h == nil {
		return
	}
	h.release.Lock()
	defer h.release.Unlock()
	g.mu.Lock()
	items := h.items
	h.items, h.bytes = nil, 0
	g.mu.Unlock()

	msg := bsmsg.New(false)
	var batch []blocks.Block
	size := 0
	flush := func() bool {
		if len(batch) == 0 {
			if !msg.Empty() { // DONT_HAVEs alone
				err := g.BitSwapNetwork.SendMessage(ctx, p, msg)
				msg = bsmsg.New(false)
				return err == nil
			}
			return true
		}
		err := g.send(ctx, p, msg, batch)
		msg, batch, size = bsmsg.New(false), nil, 0
		return err == nil
	}
	for i, it := range items {
		b, ok := g.load(ctx, it.c, it.b)
		if !ok {
			continue // deleted meanwhile: the peer asks again
		}
		v := g.decide(p, b.Cid(), len(b.RawData()))
		if v == Hold {
			items[i].b = b
			g.holdItems(p, items[i:])
			break
		}
		if v == DontHave {
			msg.AddBlockPresence(b.Cid(), pb.Message_DontHave)
			continue
		}
		msg.AddBlock(b)
		batch = append(batch, b)
		if size += len(b.RawData()); size >= releaseMessageSize && !flush() {
			return // peer gone
		}
	}
	flush()
}

// cancel drops the blocks held for p that p no longer wants: it got them
// from another box meanwhile, and sending them on release would only
// spend the upload on duplicates.
func (g *gatedNetwork) cancel(p peer.ID, msg bsmsg.BitSwapMessage) {
	if g.gate == nil {
		return
	}
	var gone map[cid.Cid]bool
	for _, e := range msg.Wantlist() {
		if e.Cancel {
			if gone == nil {
				gone = make(map[cid.Cid]bool)
			}
			gone[e.Cid] = true
		}
	}
	if gone == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.held[p]
	if h == nil {
		return
	}
	kept := h.items[:0]
	for _, it := range h.items {
		if gone[it.c] {
			if it.b != nil {
				h.bytes -= len(it.b.RawData())
			}
			continue
		}
		kept = append(kept, it)
	}
	clear(h.items[len(kept):])
	h.items = kept
}

// forget drops what was held for a peer that left.
func (g *gatedNetwork) forget(p peer.ID) {
	g.mu.Lock()
	delete(g.held, p)
	g.mu.Unlock()
}

// Start wraps the receivers so the gate learns when a peer disconnects.
func (g *gatedNetwork) Start(rs ...network.Receiver) {
	wrapped := make([]network.Receiver, len(rs))
	for i, r := range rs {
		wrapped[i] = disconnectWatcher{Receiver: r, g: g, first: i == 0}
	}
	g.BitSwapNetwork.Start(wrapped...)
}

type disconnectWatcher struct {
	network.Receiver
	g     *gatedNetwork
	first bool // the one receiver that reports to the spreader
}

func (d disconnectWatcher) PeerDisconnected(p peer.ID) {
	d.g.forget(p)
	if d.first {
		d.g.spread.forget(p)
		d.g.late.forget(p)
	}
	d.Receiver.PeerDisconnected(p)
}

func (d disconnectWatcher) ReceiveMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) {
	if d.first {
		d.g.spread.received(p, msg)
		d.g.cancel(p, msg)
		d.g.late.received(p, msg)
	}
	d.Receiver.ReceiveMessage(ctx, p, msg)
}

// releaseSpread sends, every tick until ctx ends, the held-back wants whose
// hold has passed.
func (g *gatedNetwork) releaseSpread(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for p, ws := range g.spread.due() {
			msg := bsmsg.New(false)
			size := 0
			for _, w := range ws {
				b, ok := g.load(ctx, w.c, w.b)
				if !ok {
					continue // deleted meanwhile: the peer asks again
				}
				msg.AddBlock(b)
				if size += len(b.RawData()); size >= releaseMessageSize {
					if err := g.gated(ctx, p, msg); err != nil {
						break // peer gone
					}
					msg, size = bsmsg.New(false), 0
				}
			}
			if !msg.Empty() {
				_ = g.gated(ctx, p, msg)
			}
		}
	}
}
