package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/pod"
)

// Proof-of-delivery defaults.
const (
	DefaultCreditWindow = 4 << 20 // bytes a server sends a client ahead of its receipts
	DefaultReceiptEvery = 1 << 20 // bytes a client receives from a server between receipts
	// receiptAtLeastEvery bounds how long received bytes wait for their
	// receipt: a server whose credit window holds blocks back for bytes
	// this client got but has not receipted (under the interval, from a
	// server that sends no more) would otherwise wait forever, and so
	// would the client.
	receiptAtLeastEvery = time.Second
	DefaultNetwork      = "ore-devnet"
	podStreamTimeout    = 10 * time.Second
	podFlushTimeout     = 10 * time.Second
	// maxDebtors bounds the server's debt table (one entry a client). A
	// client that left is forgotten after the debt grace (see ageDebts);
	// this bound holds even for a peer that connects with a new identity
	// faster than the grace forgets the old ones. At the bound a new
	// client pushes out the entry idle the longest: that client gets a
	// fresh window if it comes back, as any new identity does.
	maxDebtors = 1 << 16
)

// Keys of receipts in the store's meta records:
// pod/s/ + epoch (8 bytes, big-endian) + client + root: receipts this box
// countersigned as server; pod/c/ + epoch + server + root: receipts it
// holds as client.
var (
	podServedPrefix   = []byte("pod/s/")
	podReceivedPrefix = []byte("pod/c/")
)

func podKey(prefix []byte, epoch uint64, other peer.ID, root cid.Cid) []byte {
	k := append([]byte(nil), prefix...)
	k = binary.BigEndian.AppendUint64(k, epoch)
	k = binary.AppendUvarint(k, uint64(len(other)))
	k = append(k, other...)
	return append(k, root.Bytes()...)
}

// podService runs both sides of proof of delivery on a box.
//
// As a client it folds every verified block it wanted into a cumulative
// receipt per (server, root, epoch) and sends it, signed, to the server after
// every ReceiptEvery bytes and at the end of a fetch; the server's
// countersigned copy is kept in the store.
//
// As a server it is bitswap's send gate: it counts the bytes sent to each
// client and not yet covered by receipts, holds blocks back once that debt
// reaches the credit window, and releases them when a receipt arrives. It
// countersigns valid receipts and keeps the latest per (client, root, epoch)
// in the store.
type podService struct {
	n      *Node
	params pod.Params
	key    crypto.PrivKey
	self   peer.ID
	log    *slog.Logger
	window int64
	every  int64
	noSign bool
	now    func() time.Time

	rejected  *prometheus.CounterVec
	signed    prometheus.Counter
	countered prometheus.Counter
	withheld  prometheus.Counter
	debtors   prometheus.GaugeFunc // the debt table's size (see maxDebtors)

	mu         sync.Mutex
	debt       map[peer.ID]*debt
	wanted     map[cid.Cid]wantEntry
	deliveries map[pod.Key]*delivery
	senders    map[peer.ID]*sender
	finalRoots map[string]uint64     // roots whose fetch ended, by CID bytes: the epoch it ended
	tickets    map[string]usedTicket // by root CID bytes: the ticket a fetch of the root runs under
	settled    chan struct{}         // closed and replaced whenever a receipt exchange ends, countersigned or not
	flushWait  time.Duration         // the most flush waits (podFlushTimeout)
	lastGC     uint64
	lastEpoch  uint64 // of the last block received
}

// debt is what a server sent a client and holds no receipt for, by the
// epoch it was sent in, oldest first.
type debt struct {
	bytes  int64 // the sum of epochs
	epochs []epochDebt
	// signs: the client sent a receipt it signed, countersigned or not.
	// Only then does debt no receipt can pay age out: a client that never
	// signs stays held back while it asks.
	signs bool
	// seen: when the client last asked, or was last found connected (by
	// the server's clock). A client that is gone for the debt grace is
	// forgotten, whether it signed or not (see ageDebts).
	seen time.Time
}

type epochDebt struct {
	epoch uint64
	bytes int64
}

// add counts size sent in epoch e.
func (d *debt) add(e uint64, size int64) {
	d.bytes += size
	if n := len(d.epochs); n > 0 && d.epochs[n-1].epoch == e {
		d.epochs[n-1].bytes += size
		return
	}
	d.epochs = append(d.epochs, epochDebt{epoch: e, bytes: size})
}

// pay takes bytes off, oldest epoch first (a receipt pays the oldest debt;
// a refund, fromNewest, the block just counted).
func (d *debt) pay(bytes int64, fromNewest bool) {
	for bytes > 0 && len(d.epochs) > 0 {
		i := 0
		if fromNewest {
			i = len(d.epochs) - 1
		}
		take := min(bytes, d.epochs[i].bytes)
		d.epochs[i].bytes -= take
		d.bytes -= take
		bytes -= take
		if d.epochs[i].bytes == 0 {
			d.epochs = slices.Delete(d.epochs, i, i+1)
		}
	}
}

// age forgives the bytes sent in epochs no receipt can name any more
// (Params.Check refuses a receipt more than MaxSkew epochs old): the client
// can no longer pay them, however it tries. It reports whether it forgave
// any.
func (d *debt) age(now, maxSkew uint64) bool {
	i := 0
	for i < len(d.epochs) && d.epochs[i].epoch+maxSkew < now {
		d.bytes -= d.epochs[i].bytes
		i++
	}
	d.epochs = d.epochs[i:]
	return i > 0
}

type wantEntry struct {
	root  cid.Cid
	epoch uint64
}

// delivery is what the client received from one server for one root in
// one epoch.
type delivery struct {
	server  peer.ID
	root    cid.Cid
	epoch   uint64
	bytes   uint64
	blocks  uint64
	digest  [32]byte
	seq     uint64
	unsent  int64
	acked   uint64   // bytes covered by the last countersigned receipt
	tried   uint64   // bytes covered by the last receipt whose exchange ended, countersigned or not
	final   bool     // the fetch ended: send every change at once
	failing bool     // the server refused: stop asking
	ticket  [32]byte // the ticket its receipts are paid under (zero: none)
}

type sender struct {
	wake  chan struct{}
	quit  chan struct{} // closed when gcLocked forgets the sender: its goroutine ends
	dirty map[pod.Key]bool
}

func newPodService(n *Node, key crypto.PrivKey) (*podService, error) {
	s := &podService{
		n: n, params: n.cfg.Network, key: key, self: n.host.ID(), log: n.log.With("part", "pod"),
		window: n.cfg.CreditWindow, every: n.cfg.ReceiptEvery, noSign: n.cfg.noReceipts || n.cfg.ReceiptsOff, now: time.Now,
		debt: make(map[peer.ID]*debt), wanted: make(map[cid.Cid]wantEntry),
		deliveries: make(map[pod.Key]*delivery), senders: make(map[peer.ID]*sender),
		finalRoots: make(map[string]uint64), settled: make(chan struct{}), flushWait: podFlushTimeout,
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_pod_receipts_rejected_total", Help: "Receipts refused, by the rule they broke."}, []string{"reason"}),
		signed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_receipts_signed_total", Help: "Receipts this box signed as client."}),
		countered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_receipts_countersigned_total", Help: "Receipts this box countersigned as server."}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_blocks_withheld_total", Help: "Blocks held back because a client's unreceipted bytes reached the credit window."}),
	}
	for _, r := range pod.Reasons {
		s.rejected.WithLabelValues(string(r))
	}
	size := func(f func() int) func() float64 {
		return func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(f())
		}
	}
	s.debtors = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ore_pod_debtors", Help: fmt.Sprintf("Clients in the server's debt table (at most %d; one gone for MaxSkew+1 epochs is forgotten).", maxDebtors)},
		size(func() int { return len(s.debt) }))
	tables := []prometheus.Collector{s.debtors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_wanted_blocks",
			Help: "Blocks this box fetches and receipts on arrival (forgotten MaxSkew+1 epochs after the fetch asked)."},
			size(func() int { return len(s.wanted) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_deliveries",
			Help: "Deliveries (server, root, epoch) this box receipts as client (forgotten MaxSkew+1 epochs after their epoch)."},
			size(func() int { return len(s.deliveries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_senders",
			Help: "Servers this box sends receipts to, one goroutine each (forgotten with their last delivery)."},
			size(func() int { return len(s.senders) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_pod_final_roots",
			Help: "Roots whose fetch ended lately, whose late blocks are receipted at once (forgotten after MaxSkew+1 epochs)."},
			size(func() int { return len(s.finalRoots) })),
	}
	for _, c := range append([]prometheus.Collector{s.rejected, s.signed, s.countered, s.withheld}, tables...) {
		if err := n.reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: register pod metrics: %w", err)
		}
	}
	if !n.cfg.ReceiptsOff {
		n.host.SetStreamHandler(protocol.ID(pod.ProtocolID), s.handleStream)
	}
	if !s.noSign {
		n.every(receiptAtLeastEvery, s.tick)
	}
	if !n.cfg.ReceiptsOff {
		n.every(receiptAtLeastEvery, s.ageDebts)
	}
	return s, nil
}

func (s *podService) epoch() uint64 { return s.params.EpochAt(s.now()) }

// ---- server side ----

// Allow is bitswap's send gate.
func (s *podService) Allow(p peer.ID, size int) bool {
	e := s.epoch()
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.debt[p]
	if d == nil {
		if len(s.debt) >= maxDebtors {
			s.evictIdlestLocked()
		}
		d = &debt{}
		s.debt[p] = d
	}
	d.seen = s.now()
	if d.signs {
		d.age(e, s.params.MaxSkew)
	}
	if d.bytes > 0 && d.bytes+int64(size) > s.window {
		s.withheld.Inc()
		return false
	}
	d.add(e, int64(size))
	return true
}

func (s *podService) credit(p peer.ID, bytes int64) {
	s.mu.Lock()
	if d := s.debt[p]; d != nil {
		d.pay(bytes, false)
	}
	s.mu.Unlock()
	s.n.ex.Release(p)
}

// unpaid is what the server sent client p that no receipt paid yet, in
// the epochs a receipt may still name.
func (s *podService) unpaid(p peer.ID) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.debt[p]
	if d == nil {
		return 0
	}
	d.age(s.epoch(), s.params.MaxSkew)
	return max(d.bytes, 0)
}

// signs notes that client p sent a receipt it signed (see debt.signs).
func (s *podService) signs(p peer.ID) {
	s.mu.Lock()
	if d := s.debt[p]; d != nil {
		d.signs = true
	}
	s.mu.Unlock()
}

// debtGrace is how long a client that left keeps its debt entry: MaxSkew+1
// epochs, when every byte it owes is beyond what a receipt may name, so a
// signing client's debt would have aged out anyway.
//
// The rule against a client that never signs: it is held back once its
// debt reaches the window, for as long as it stays connected. Leaving and
// coming back within the grace does not reset its window (the entry is
// still there); coming back later does, as a new identity would get one.
// So one identity gets at most one credit window per grace, and a peer
// that never signs and leaves costs the server memory for the grace only.
func (s *podService) debtGrace() time.Duration {
	return time.Duration(s.params.MaxSkew+1) * s.params.EpochLength
}

// ageDebts (every receiptAtLeastEvery) forgives the debts of signing
// clients that no receipt can pay any more, sends what the gate held back
// for those clients, and forgets the clients gone for the debt grace.
//
// A held-back client sends no receipt until its blocks come, so nothing else
// would release them: a receipt the server refused as too old (a client
// that fell behind, or whose receipt waited in a busy network) left its
// bytes unpaid for good, and the server held every later block back while
// the client kept asking. A 200-box mocknet crowd has thousands of such
// refusals (4,445-7,064 epoch_out_of_range a run), though few of them
// reach a window (39-43 blocks withheld a run).
func (s *podService) ageDebts(context.Context) {
	e, now := s.epoch(), s.now()
	grace := s.debtGrace()
	net := s.n.host.Network()
	var freed []peer.ID
	s.mu.Lock()
	for p, d := range s.debt {
		if d.signs && d.age(e, s.params.MaxSkew) {
			freed = append(freed, p)
		}
		if d.bytes == 0 {
			delete(s.debt, p)
			continue
		}
		// Only a client idle since the last round is looked up: one that
		// asks is connected.
		if now.Sub(d.seen) < receiptAtLeastEvery {
			continue
		}
		if net.Connectedness(p) == network.Connected {
			d.seen = now
		} else if now.Sub(d.seen) >= grace {
			delete(s.debt, p)
		}
	}
	s.mu.Unlock()
	for _, p := range freed {
		s.n.ex.Release(p)
	}
}

// evictIdlestLocked drops the debt entry idle the longest, to make room
// under maxDebtors.
func (s *podService) evictIdlestLocked() {
	var (
		idlest peer.ID
		oldest time.Time
	)
	for p, d := range s.debt {
		if idlest == "" || d.seen.Before(oldest) {
			idlest, oldest = p, d.seen
		}
	}
	delete(s.debt, idlest)
	s.log.Debug("debt table full: forgot the idlest client", "client", idlest, "entries", maxDebtors)
}

func (s *podService) handleStream(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(podStreamTimeout))
	r, err := pod.ReadRequest(st)
	if err == nil {
		err = s.countersign(st.Conn().RemotePeer(), r)
	} else {
		s.rejected.WithLabelValues(string(pod.ReasonOf(err))).Inc()
	}
	if err != nil {
		s.log.Debug("receipt refused", "client", st.Conn().RemotePeer(), "err", err)
	}
	if werr := pod.WriteResponse(st, r, err); werr != nil {
		_ = st.Reset()
	}
}

// countersign checks a client's receipt, signs it as server and keeps it.
func (s *podService) countersign(from peer.ID, r *pod.Receipt) error {
	reject := func(reason pod.Reason, err error) error {
		s.rejected.WithLabelValues(string(reason)).Inc()
		return &pod.RejectError{Reason: reason, Err: err}
	}
	if r.Server != s.self {
		return reject(pod.ReasonMalformed, fmt.Errorf("receipt names server %s, this is %s", r.Server, s.self))
	}
	if r.Client != from {
		return reject(pod.ReasonBadSig, fmt.Errorf("receipt for client %s sent by %s", r.Client, from))
	}
	if err := s.params.Check(r, s.epoch(), false); err != nil {
		s.rejected.WithLabelValues(string(pod.ReasonOf(err))).Inc()
		if r.VerifyClient() == nil {
			s.signs(from) // refused, but signed: it tries to pay
		}
		return err
	}
	s.signs(from)
	ctx := s.n.ctx
	key := podKey(podServedPrefix, r.Epoch, r.Client, r.Root)
	var prevBytes uint64
	first := true
	if b, ok, err := s.n.store.GetMeta(ctx, key); err != nil {
		return err
	} else if ok {
		prev, err := pod.Unmarshal(b)
		if err != nil {
			return fmt.Errorf("node: stored receipt is damaged: %w", err)
		}
		if !r.Supersedes(prev) {
			return reject(pod.ReasonStaleSeq, fmt.Errorf("sequence %d (%d bytes) does not supersede %d (%d bytes)", r.Seq, r.Bytes, prev.Seq, prev.Bytes))
		}
		prevBytes, first = prev.Bytes, false
	}
	// The meter: a server signs only for bytes it sent. The client's debt
	// is what the send gate let through to it and no receipt paid yet,
	// over every root, in the epochs a receipt may still name; a receipt
	// may claim that much more than the one before it, and no more. (It
	// does not say which root a byte was of: a client can move its own
	// bytes between roots, not make more of them.)
	if claimed := r.Bytes - prevBytes; claimed > uint64(s.unpaid(from)) {
		return reject(pod.ReasonUnsent, fmt.Errorf("receipt claims %d more bytes, this server sent %s %d not yet receipted", claimed, from, s.unpaid(from)))
	}
	if err := r.SignServer(s.key); err != nil {
		return err
	}
	if err := s.n.store.PutMeta(ctx, key, r.Marshal()); err != nil {
		return fmt.Errorf("node: keep receipt: %w", err)
	}
	s.countered.Inc()
	s.n.sched.delivered(r.Root, int64(r.Bytes-prevBytes), first)
	s.credit(from, int64(r.Bytes-prevBytes))
	s.n.publishReceipt(r)
	return nil
}

// ---- client side ----

// want records that blocks are being fetched for root, so their arrival is
// receipted to whichever box sends them.
func (s *podService) want(root cid.Cid, cids []cid.Cid) {
	if s.noSign {
		return
	}
	e := s.epoch()
	s.mu.Lock()
	delete(s.finalRoots, string(root.Bytes()))
	for _, c := range cids {
		s.wanted[c] = wantEntry{root: root, epoch: e}
	}
	s.gcLocked(e)
	s.mu.Unlock()
}

// received is bitswap's BlockReceived hook: the block's CID was verified
// against its bytes when the message was decoded.
func (s *podService) received(from peer.ID, b blocks.Block) {
	if s.noSign || from == s.self {
		return
	}
	e := s.epoch()
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.wanted[b.Cid()]
	if !ok {
		return // not asked for: not paid for
	}
	if e != s.lastEpoch {
		// A new epoch: the receipts of earlier ones are final. Send them
		// now, not when (if ever) their server sends more: a receipt
		// more than MaxSkew epochs old is refused, and its bytes unpaid.
		s.lastEpoch = e
		for k, d := range s.deliveries {
			if k.Epoch < e && d.bytes > d.acked {
				s.markLocked(k, d)
			}
		}
	}
	k := pod.Key{Server: from, Client: s.self, Root: string(w.root.Bytes()), Epoch: e}
	d := s.deliveries[k]
	var prev *pod.Receipt
	if d == nil {
		// The store read runs outside the lock: the send gate takes it
		// for every block this box serves.
		s.mu.Unlock()
		prev = s.resumed(from, w.root, e)
		s.mu.Lock()
		d = s.deliveries[k]
	}
	if d == nil {
		d = &delivery{server: from, root: w.root, epoch: e, ticket: s.ticketLocked(k.Root, e)}
		if prev != nil {
			d.seq, d.bytes, d.blocks, d.digest, d.acked = prev.Seq, prev.Bytes, prev.Blocks, prev.Digest, prev.Bytes
		}
		// A block that arrives after its fetch ended (a duplicate from a
		// second server that also had the want) is receipted at once: no
		// later block would trigger its receipt, and flush waits for it.
		_, d.final = s.finalRoots[k.Root]
		s.deliveries[k] = d
	}
	size := int64(len(b.RawData()))
	d.bytes += uint64(size)
	d.blocks++
	d.digest = pod.Chain(d.digest, b.Cid())
	d.unsent += size
	if d.unsent >= s.every || d.final {
		s.markLocked(k, d)
	}
}

// tick sends (every receiptAtLeastEvery) the receipts of bytes received
// since the last receipt, whatever their amount.
func (s *podService) tick(context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, d := range s.deliveries {
		if d.unsent > 0 {
			s.markLocked(k, d)
		}
	}
}

// resumed is the countersigned receipt this box kept, before it
// restarted, for a delivery it starts anew (nil if none): the delivery
// continues from it, so its next receipt supersedes the server's.
func (s *podService) resumed(server peer.ID, root cid.Cid, epoch uint64) *pod.Receipt {
	b, ok, err := s.n.store.GetMeta(s.n.ctx, podKey(podReceivedPrefix, epoch, server, root))
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
func (s *podService) markLocked(k pod.Key, d *delivery) {
	if d.failing {
		return
	}
	d.unsent = 0
	sd := s.senders[d.server]
	if sd == nil {
		sd = &sender{wake: make(chan struct{}, 1), quit: make(chan struct{}), dirty: make(map[pod.Key]bool)}
		s.senders[d.server] = sd
		server := d.server
		s.n.spawn(func(ctx context.Context) { s.runSender(ctx, server, sd) })
	}
	sd.dirty[k] = true
	select {
	case sd.wake <- struct{}{}:
	default:
	}
}

// runSender sends the receipts queued for one server, newest state only.
func (s *podService) runSender(ctx context.Context, server peer.ID, sd *sender) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sd.quit:
			return
		case <-sd.wake:
		}
		s.mu.Lock()
		var batch []*pod.Receipt
		for k := range sd.dirty {
			d := s.deliveries[k]
			delete(sd.dirty, k)
			if d == nil || d.bytes == d.acked {
				continue
			}
			d.seq++
			r := &pod.Receipt{Version: pod.Version, Network: s.params.Network, Epoch: d.epoch,
				Server: d.server, Client: s.self, Root: d.root, Seq: d.seq, Bytes: d.bytes, Blocks: d.blocks, Digest: d.digest}
			if d.ticket != ([32]byte{}) {
				r.Version, r.Ticket = pod.VersionTicket, d.ticket
			}
			batch = append(batch, r)
		}
		s.mu.Unlock()
		for _, r := range batch {
			// A server that does not speak the receipt protocol (Kubo)
			// never countersigns: its deliveries are not receipted.
			err := errNotOre
			if speaksPod(s.n.host, server) {
				err = s.exchange(ctx, r)
			}
			if err != nil && ctx.Err() == nil && !isNotOre(err) {
				s.log.Warn("receipt not countersigned", "server", server, "root", r.Root, "epoch", r.Epoch, "err", err)
			}
			s.settle(r, err)
		}
	}
}

// exchange signs r, sends it to its server and keeps the countersigned copy.
func (s *podService) exchange(ctx context.Context, r *pod.Receipt) error {
	if err := r.SignClient(s.key); err != nil {
		return err
	}
	s.signed.Inc()
	ctx, cancel := context.WithTimeout(ctx, podStreamTimeout)
	defer cancel()
	st, err := s.n.host.NewStream(ctx, r.Server, protocol.ID(pod.ProtocolID))
	if err != nil {
		return fmt.Errorf("open receipt stream: %w", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(podStreamTimeout))
	if err := pod.WriteRequest(st, r); err != nil {
		_ = st.Reset()
		return fmt.Errorf("send receipt: %w", err)
	}
	_ = st.CloseWrite()
	got, err := pod.ReadResponse(st)
	if err != nil {
		return err
	}
	if string(got.ClientPayload()) != string(r.ClientPayload()) || string(got.ClientSig) != string(r.ClientSig) {
		return errors.New("server countersigned a different receipt")
	}
	if err := got.VerifyServer(); err != nil {
		return err
	}
	if err := s.n.store.PutMeta(ctx, podKey(podReceivedPrefix, got.Epoch, got.Server, got.Root), got.Marshal()); err != nil {
		return fmt.Errorf("keep receipt: %w", err)
	}
	return nil
}

// settle records how the exchange of r ended (err nil: countersigned) and
// wakes the flushes that wait on its delivery. A receipt that failed is
// not sent again until more bytes arrive from its server: a flush waits
// for an answer to the last receipt, not for a countersignature that may
// never come (the server left, or refused it).
func (s *podService) settle(r *pod.Receipt, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deliveries[r.Key()]; d != nil {
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
	close(s.settled)
	s.settled = make(chan struct{})
}

// flush sends the final receipts for root to every server and waits until
// each server answered the last one, countersigned or not (or until
// flushWait passed). It returns the receipts.
func (s *podService) flush(ctx context.Context, root cid.Cid) []*pod.Receipt {
	if s.noSign {
		return nil
	}
	rk := string(root.Bytes())
	s.finalize(root)
	ctx, cancel := context.WithTimeout(ctx, s.flushWait)
	defer cancel()
	for {
		s.mu.Lock()
		pending := false
		for k, d := range s.deliveries {
			if k.Root == rk && d.bytes > d.acked && d.bytes > d.tried && !d.failing {
				pending = true
			}
		}
		ch := s.settled
		s.mu.Unlock()
		if !pending {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			s.log.Warn("receipts not all countersigned in time", "root", root)
			return s.kept(root)
		}
	}
	return s.kept(root)
}

// finalize sends the final receipts for root without waiting for them.
func (s *podService) finalize(root cid.Cid) {
	if s.noSign {
		return
	}
	rk := string(root.Bytes())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finalRoots[rk] = s.epoch()
	for k, d := range s.deliveries {
		if k.Root == rk {
			d.final = true
			if d.bytes > d.acked {
				// Once more, also after a receipt that failed: flush waits
				// for this attempt.
				d.tried = d.acked
				s.markLocked(k, d)
			}
		}
	}
}

// kept returns the countersigned receipts this box holds as client for root.
func (s *podService) kept(root cid.Cid) []*pod.Receipt {
	// Only the epochs this root was delivered in: the store holds every
	// receipt the box ever kept, keyed by epoch first.
	rk := string(root.Bytes())
	since := s.epoch()
	s.mu.Lock()
	for k := range s.deliveries {
		if k.Root == rk && k.Epoch < since {
			since = k.Epoch
		}
	}
	s.mu.Unlock()
	rs, err := s.n.receipts(context.Background(), podReceivedPrefix, since)
	if err != nil {
		s.log.Warn("read receipts", "err", err)
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
func (s *podService) gcLocked(e uint64) {
	if e == s.lastGC {
		return
	}
	s.lastGC = e
	horizon := s.params.MaxSkew + 1
	if e < horizon {
		return
	}
	for c, w := range s.wanted {
		if w.epoch+horizon < e {
			delete(s.wanted, c)
		}
	}
	serving := make(map[peer.ID]bool, len(s.senders))
	for k, d := range s.deliveries {
		if k.Epoch+horizon < e {
			delete(s.deliveries, k)
			continue
		}
		serving[d.server] = true
	}
	for p, sd := range s.senders {
		for k := range sd.dirty {
			if s.deliveries[k] == nil {
				delete(sd.dirty, k) // runSender would skip it
			}
		}
		if !serving[p] && len(sd.dirty) == 0 {
			delete(s.senders, p)
			close(sd.quit)
		}
	}
	for r, fe := range s.finalRoots {
		if fe+horizon < e {
			delete(s.finalRoots, r)
		}
	}
	for r, tk := range s.tickets {
		if tk.Expires < e {
			delete(s.tickets, r)
		}
	}
}

// maxTickets bounds the tickets a client keeps, one per root it fetches
// under one (gateway requests bring them): past it, the one that expires
// first is dropped, and its root's next receipts go unticketed.
const maxTickets = 16_384

// useTicketLocked makes the receipts of root's deliveries that start from
// now on name tk, until it expires.
func (s *podService) useTicketLocked(root cid.Cid, tk *pod.Ticket) {
	if s.tickets == nil {
		s.tickets = make(map[string]usedTicket)
	}
	rk := string(root.Bytes())
	if _, ok := s.tickets[rk]; !ok && len(s.tickets) >= maxTickets {
		var first string
		for r, t := range s.tickets {
			if first == "" || t.Expires < s.tickets[first].Expires {
				first = r
			}
		}
		delete(s.tickets, first)
	}
	s.tickets[rk] = usedTicket{id: tk.ID(), Expires: tk.Expires}
}

// usedTicket is a ticket a client's fetches run under: its ID (hashed
// once, not per delivery) and its last epoch.
type usedTicket struct {
	id      [32]byte
	Expires uint64
}

// ticketLocked is the ID of the ticket receipts of root in epoch are paid
// under (zero: none).
func (s *podService) ticketLocked(rootKey string, e uint64) [32]byte {
	if tk, ok := s.tickets[rootKey]; ok && e <= tk.Expires {
		return tk.id
	}
	return [32]byte{}
}

// ServedReceipts returns the countersigned receipts this box holds as a
// server, from epoch since on: what it submits to the ledger.
func (n *Node) ServedReceipts(ctx context.Context, since uint64) ([]*pod.Receipt, error) {
	return n.receipts(ctx, podServedPrefix, since)
}

// ReceivedReceipts returns the countersigned receipts this box holds as a
// client, from epoch since on.
func (n *Node) ReceivedReceipts(ctx context.Context, since uint64) ([]*pod.Receipt, error) {
	return n.receipts(ctx, podReceivedPrefix, since)
}

func (n *Node) receipts(ctx context.Context, prefix []byte, since uint64) ([]*pod.Receipt, error) {
	var out []*pod.Receipt
	err := n.store.ScanMeta(ctx, prefix, func(k, v []byte) error {
		if len(k) >= len(prefix)+8 && binary.BigEndian.Uint64(k[len(prefix):]) < since {
			return nil
		}
		r, err := pod.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("stored receipt %x is damaged: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: read receipts: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Epoch < out[j].Epoch })
	return out, nil
}
