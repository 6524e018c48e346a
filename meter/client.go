package meter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/pod"
)

// Client is the fetching side of proof of delivery. It folds every
// verified block it wanted into a cumulative receipt per (server, root,
// epoch) and sends it, signed, to the server after every ReceiptEvery
// bytes, at every Tick and at the end of a fetch; the server's
// countersigned copy is kept in the store.
type Client struct {
	params    pod.Params
	key       crypto.PrivKey
	self      peer.ID
	store     Store
	transport Transport
	log       *slog.Logger
	every     int64 // the first receipt interval (see receiptInterval)
	maxWindow int64 // MaxCreditWindow: bounds receiptInterval
	goFn      func(func(context.Context))

	signed prometheus.Counter

	mu         sync.Mutex
	now        func() time.Time
	wanted     map[cid.Cid]wantEntry
	deliveries map[pod.Key]*delivery
	senders    map[peer.ID]*sender
	finalRoots map[string]uint64     // roots whose fetch ended, by CID bytes: the epoch it ended
	tickets    map[string]usedTicket // by root CID bytes: the ticket a fetch of the root runs under
	settled    chan struct{}         // closed and replaced whenever a receipt exchange ends, countersigned or not
	flushWait  time.Duration         // the most Flush waits (FlushTimeout)
	lastGC     uint64
	lastEpoch  uint64 // of the last block received
}

type wantEntry struct {
	root  cid.Cid
	epoch uint64
}

// delivery is what the client received from one server for one root in
// one epoch.
type delivery struct {
	server peer.ID
	root   cid.Cid
	epoch  uint64
	bytes  uint64
	blocks uint64
	digest [32]byte
	seq    uint64
	unsent int64 // bytes received since the last receipt was queued
	// unsentBlocks: blocks received since the last receipt was queued.
	unsentBlocks int64
	acked        uint64   // bytes covered by the last countersigned receipt
	tried        uint64   // bytes covered by the last receipt whose exchange ended, countersigned or not
	final        bool     // the fetch ended: send every change at once
	failing      bool     // the server refused: stop asking
	ticket       [32]byte // the ticket its receipts are paid under (zero: none)
}

type sender struct {
	wake  chan struct{}
	quit  chan struct{} // closed when gcLocked forgets the sender: its goroutine ends
	dirty map[pod.Key]bool
}

// NewClient builds a client meter from cfg (Params, Key, Store, Transport,
// Go).
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Transport == nil || cfg.Go == nil {
		return nil, errors.New("meter: a client needs a Transport and a Go")
	}
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("meter: client key: %w", err)
	}
	c := &Client{
		params: cfg.Params, key: cfg.Key, self: self, store: cfg.Store, transport: cfg.Transport, log: cfg.Logger,
		every: cfg.ReceiptEvery, maxWindow: cfg.MaxCreditWindow, goFn: cfg.Go, now: cfg.Clock,
		wanted: make(map[cid.Cid]wantEntry), deliveries: make(map[pod.Key]*delivery), senders: make(map[peer.ID]*sender),
		finalRoots: make(map[string]uint64), tickets: make(map[string]usedTicket), settled: make(chan struct{}), flushWait: FlushTimeout,
		signed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_receipts_signed_total", Help: "Receipts this box signed as client."}),
	}
	size := func(f func() int) func() float64 {
		return func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(f())
		}
	}
	err = register(cfg.Registry, c.signed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_wanted_blocks",
			Help: "Blocks this box fetches and receipts on arrival (forgotten MaxSkew+1 epochs after the fetch asked)."},
			size(func() int { return len(c.wanted) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_deliveries",
			Help: "Deliveries (server, root, epoch) this box receipts as client (forgotten MaxSkew+1 epochs after their epoch)."},
			size(func() int { return len(c.deliveries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_senders",
			Help: "Servers this box sends receipts to, one goroutine each (forgotten with their last delivery)."},
			size(func() int { return len(c.senders) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_final_roots",
			Help: "Roots whose fetch ended lately, whose late blocks are receipted at once (forgotten after MaxSkew+1 epochs)."},
			size(func() int { return len(c.finalRoots) })))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) epochLocked() uint64 { return c.params.EpochAt(c.now()) }

// Want records that blocks are being fetched for root, so their arrival is
// receipted to whichever box sends them.
func (c *Client) Want(root cid.Cid, cids []cid.Cid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.epochLocked()
	delete(c.finalRoots, string(root.Bytes()))
	for _, k := range cids {
		c.wanted[k] = wantEntry{root: root, epoch: e}
	}
	c.gcLocked(e)
}

// Received is bitswap's BlockReceived hook: the block's CID was verified
// against its bytes when the message was decoded.
func (c *Client) Received(from peer.ID, b blocks.Block) {
	if from == c.self {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.wanted[b.Cid()]
	if !ok {
		return // not asked for: not paid for
	}
	e := c.epochLocked()
	if e != c.lastEpoch {
		// A new epoch: the receipts of earlier ones are final. Send them
		// now, not when (if ever) their server sends more: a receipt
		// more than MaxSkew epochs old is refused, and its bytes unpaid.
		c.lastEpoch = e
		for k, d := range c.deliveries {
			if k.Epoch < e && d.bytes > d.acked {
				c.markLocked(k, d)
			}
		}
	}
	k := pod.Key{Server: from, Client: c.self, Root: string(w.root.Bytes()), Epoch: e}
	d := c.deliveries[k]
	var prev *pod.Receipt
	if d == nil {
		// The store read runs outside the lock: received blocks of other
		// deliveries need not wait for it.
		c.mu.Unlock()
		prev = c.resumed(from, w.root, e)
		c.mu.Lock()
		d = c.deliveries[k]
	}
	if d == nil {
		d = &delivery{server: from, root: w.root, epoch: e, ticket: c.ticketLocked(k.Root, e)}
		if prev != nil {
			d.seq, d.bytes, d.blocks, d.digest, d.acked = prev.Seq, prev.Bytes, prev.Blocks, prev.Digest, prev.Bytes
		}
		// A block that arrives after its fetch ended (a duplicate from a
		// second server that also had the want) is receipted at once: no
		// later block would trigger its receipt, and Flush waits for it.
		_, d.final = c.finalRoots[k.Root]
		c.deliveries[k] = d
	}
	size := int64(len(b.RawData()))
	d.bytes += uint64(size)
	d.blocks++
	d.digest = pod.Chain(d.digest, b.Cid())
	d.unsent += size
	d.unsentBlocks++
	if d.unsent >= receiptInterval(c.every, c.maxWindow, d.acked) || d.unsentBlocks >= receiptBlocks || d.final {
		c.markLocked(k, d)
	}
}

// receiptBlocks is the most blocks a client receives from a server
// between two receipts of a delivery, whatever their bytes: a server
// keeps at most MaxSentPerClient unclaimed blocks of a client (those in
// flight too), and a receipt that claims blocks it dropped is refused.
// 1,024: what ReceiptEvery held a fetch of 1 KiB blocks to.
const receiptBlocks = MaxSentPerClient / 8

// receiptInterval is how many bytes a client receives from a server
// between two receipts of a delivery whose receipts paid acked bytes:
// every (ReceiptEvery) at first, then a quarter of the credit window that
// payment grew at the server (windowFor, counting nothing for a first
// window: the server's is at least what the client paid, up to
// MaxCreditWindow). A receipt then leaves while three quarters of the
// window are left for the bytes in flight, and a fast transfer sends one
// receipt per 8 MiB, not per MiB: each costs both sides a stream, two
// signatures, two verifications and a store write. The server's gate is
// not changed by it: a client that stops paying is held back at its
// window whatever its interval.
func receiptInterval(every, maxWindow int64, acked uint64) int64 {
	return max(every, windowFor(0, maxWindow, int64(min(acked, 1<<62)))/4)
}

// Tick (every TickEvery) sends the receipts of bytes received since the
// last receipt, whatever their amount.
func (c *Client) Tick(context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, d := range c.deliveries {
		if d.unsent > 0 {
			c.markLocked(k, d)
		}
	}
}

// resumed is the countersigned receipt this box kept, before it
// restarted, for a delivery it starts anew (nil if none): the delivery
// continues from it, so its next receipt supersedes the server's.
func (c *Client) resumed(server peer.ID, root cid.Cid, epoch uint64) *pod.Receipt {
	b, ok, err := c.store.GetMeta(context.Background(), receiptKey(receivedPrefix, epoch, server, root))
	if err != nil || !ok {
		return nil
	}
	r, err := pod.Unmarshal(b)
	if err != nil {
		return nil
	}
	return r
}

// markLocked queues a delivery's receipt for its server's sender.
func (c *Client) markLocked(k pod.Key, d *delivery) {
	if d.failing {
		return
	}
	d.unsent, d.unsentBlocks = 0, 0
	sd := c.senders[d.server]
	if sd == nil {
		sd = &sender{wake: make(chan struct{}, 1), quit: make(chan struct{}), dirty: make(map[pod.Key]bool)}
		c.senders[d.server] = sd
		server := d.server
		c.goFn(func(ctx context.Context) { c.runSender(ctx, server, sd) })
	}
	sd.dirty[k] = true
	select {
	case sd.wake <- struct{}{}:
	default:
	}
}

// runSender sends the receipts queued for one server, newest state only.
func (c *Client) runSender(ctx context.Context, server peer.ID, sd *sender) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sd.quit:
			return
		case <-sd.wake:
		}
		c.mu.Lock()
		var batch []*pod.Receipt
		for k := range sd.dirty {
			d := c.deliveries[k]
			delete(sd.dirty, k)
			if d == nil || d.bytes == d.acked {
				continue
			}
			d.seq++
			r := &pod.Receipt{Version: pod.Version, Network: c.params.Network, Epoch: d.epoch,
				Server: d.server, Client: c.self, Root: d.root, Seq: d.seq, Bytes: d.bytes, Blocks: d.blocks, Digest: d.digest}
			if d.ticket != ([32]byte{}) {
				r.Version, r.Ticket = pod.VersionTicket, d.ticket
			}
			batch = append(batch, r)
		}
		c.mu.Unlock()
		for _, r := range batch {
			err := c.exchange(ctx, r)
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoReceipts) {
				c.log.Warn("receipt not countersigned", "server", server, "root", r.Root, "epoch", r.Epoch, "err", err)
			}
			c.settle(r, err)
		}
	}
}

// exchange signs r, sends it to its server and keeps the countersigned copy.
func (c *Client) exchange(ctx context.Context, r *pod.Receipt) error {
	if t, ok := c.transport.(ReceiptTaker); ok && !t.TakesReceipts(r.Server) {
		return ErrNoReceipts // signed for no one: it would never be countersigned
	}
	if err := r.SignClient(c.key); err != nil {
		return err
	}
	c.signed.Inc()
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	got, err := c.transport.RoundTrip(ctx, r)
	if err != nil {
		return err
	}
	if string(got.ClientPayload()) != string(r.ClientPayload()) || string(got.ClientSig) != string(r.ClientSig) {
		return errors.New("meter: server countersigned a different receipt")
	}
	if err := got.VerifyServer(); err != nil {
		return err
	}
	if err := c.store.PutMeta(ctx, receiptKey(receivedPrefix, got.Epoch, got.Server, got.Root), got.Marshal()); err != nil {
		return fmt.Errorf("meter: keep receipt: %w", err)
	}
	return nil
}

// settle records how the exchange of r ended (err nil: countersigned) and
// wakes the flushes that wait on its delivery. A receipt that failed is
// not sent again until more bytes arrive from its server: a flush waits
// for an answer to the last receipt, not for a countersignature that may
// never come (the server left, or refused it).
func (c *Client) settle(r *pod.Receipt, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.deliveries[r.Key()]; d != nil {
		d.tried = max(d.tried, r.Bytes)
		switch {
		case err == nil:
			d.acked = max(d.acked, r.Bytes)
		case pod.ReasonOf(err) == pod.ReasonStaleSeq:
			// The server holds a newer receipt than this box remembers
			// (it restarted between the two writes): jump ahead; later
			// bytes make it supersede again.
			d.seq += 1 << 16
		case errors.Is(err, pod.ErrRefused):
			d.failing = true
		}
	}
	close(c.settled)
	c.settled = make(chan struct{})
}

// Flush sends the final receipts for root to every server and waits until
// each server answered the last one, countersigned or not (or until
// FlushTimeout passed). It returns the countersigned receipts this box
// holds for root.
func (c *Client) Flush(ctx context.Context, root cid.Cid) []*pod.Receipt {
	rk := string(root.Bytes())
	c.Finalize(root)
	c.mu.Lock()
	wait := c.flushWait
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		c.mu.Lock()
		pending := false
		for k, d := range c.deliveries {
			if k.Root == rk && d.bytes > d.acked && d.bytes > d.tried && !d.failing {
				pending = true
			}
		}
		ch := c.settled
		c.mu.Unlock()
		if !pending {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.log.Warn("receipts not all countersigned in time", "root", root)
			return c.Kept(root)
		}
	}
	return c.Kept(root)
}

// Finalize sends the final receipts for root without waiting for them.
func (c *Client) Finalize(root cid.Cid) {
	rk := string(root.Bytes())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finalRoots[rk] = c.epochLocked()
	for k, d := range c.deliveries {
		if k.Root == rk {
			d.final = true
			if d.bytes > d.acked {
				// Once more, also after a receipt that failed: Flush waits
				// for this attempt.
				d.tried = d.acked
				c.markLocked(k, d)
			}
		}
	}
}

// Kept returns the countersigned receipts this box holds as client for root.
func (c *Client) Kept(root cid.Cid) []*pod.Receipt {
	// Only the epochs this root was delivered in: the store holds every
	// receipt the box ever kept, keyed by epoch first.
	rk := string(root.Bytes())
	c.mu.Lock()
	since := c.epochLocked()
	for k := range c.deliveries {
		if k.Root == rk && k.Epoch < since {
			since = k.Epoch
		}
	}
	c.mu.Unlock()
	rs, err := Receipts(context.Background(), c.store, Received, since)
	if err != nil {
		c.log.Warn("read receipts", "err", err)
		return nil
	}
	out := rs[:0]
	for _, r := range rs {
		if r.Root.Equals(root) {
			out = append(out, r)
		}
	}
	return out
}

// gcLocked (when a fetch asks for blocks in a new epoch) forgets wanted
// blocks, deliveries and roots of epochs no receipt can name any more, and
// the senders of servers left with no delivery. The tables grow only as
// fetches ask, so it runs then, not on a timer: on a timer it forgot, a
// few seconds on, the wants of a chunk whose blocks a credit window held
// back, and those blocks arrived unreceipted (a want is forgotten by the
// epoch it was asked in, not by its arrival).
//
// A delivery is forgotten whether its receipt was countersigned or not: a
// server that refused it, or left, cannot take it any more, and every
// server that ever sent this box a block would otherwise keep a delivery
// and a sender goroutine for as long as the box runs.
func (c *Client) gcLocked(e uint64) {
	if e == c.lastGC {
		return
	}
	c.lastGC = e
	horizon := c.params.MaxSkew + 1
	if e < horizon {
		return
	}
	for k, w := range c.wanted {
		if w.epoch+horizon < e {
			delete(c.wanted, k)
		}
	}
	serving := make(map[peer.ID]bool, len(c.senders))
	for k, d := range c.deliveries {
		if k.Epoch+horizon < e {
			delete(c.deliveries, k)
			continue
		}
		serving[d.server] = true
	}
	for p, sd := range c.senders {
		for k := range sd.dirty {
			if c.deliveries[k] == nil {
				delete(sd.dirty, k) // runSender would skip it
			}
		}
		if !serving[p] && len(sd.dirty) == 0 {
			delete(c.senders, p)
			close(sd.quit)
		}
	}
	for r, fe := range c.finalRoots {
		if fe+horizon < e {
			delete(c.finalRoots, r)
		}
	}
	for r, tk := range c.tickets {
		if tk.expires < e {
			delete(c.tickets, r)
		}
	}
}
