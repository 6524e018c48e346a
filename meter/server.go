package meter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/pod"
)

// Server is the serving side of proof of delivery: bitswap's send gate
// and the countersigner of receipts.
//
// As the gate it counts the bytes sent to each client and not yet covered
// by receipts, holds blocks back once that debt reaches the credit window,
// and has them released when a receipt pays it. It countersigns a receipt
// only for bytes it sent, and keeps the latest per (client, root, epoch).
type Server struct {
	params        pod.Params
	key           crypto.PrivKey
	self          peer.ID
	store         Store
	log           *slog.Logger
	now           func() time.Time
	window        int64 // a new client's credit window
	maxWindow     int64 // the most a paying client's window grows to
	peers         Peers
	release       func(peer.ID)
	countersigned func(*pod.Receipt, uint64, bool)

	keyer     keyer
	dag       *dagIndex
	rejected  *prometheus.CounterVec
	countered prometheus.Counter
	withheld  prometheus.Counter

	// claimMu orders countersigning: a receipt's meter is checked, the
	// receipt kept and the meter drawn down before the next is looked at,
	// so two receipts never draw on the same sent bytes. The gate does
	// not take it.
	claimMu sync.Mutex

	mu      sync.Mutex // the gate's: never held across a store read or a callback
	debt    map[peer.ID]*debt
	seq     uint64 // blocks the gate let through, ever
	pending int    // sentBlock entries over every client (at most MaxSent)
}

// NewServer builds a server meter from cfg (Params, Key, Store, Blocks;
// Peers, Release and Countersigned may be nil).
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Blocks == nil {
		return nil, errors.New("meter: a server needs its Blocks (the DAGs it serves)")
	}
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("meter: server key: %w", err)
	}
	s := &Server{
		params: cfg.Params, key: cfg.Key, self: self, store: cfg.Store, log: cfg.Logger, now: cfg.Clock,
		window: cfg.CreditWindow, maxWindow: cfg.MaxCreditWindow, peers: cfg.Peers, release: cfg.Release, countersigned: cfg.Countersigned,
		debt: make(map[peer.ID]*debt), keyer: newKeyer(),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_pod_receipts_rejected_total", Help: "Receipts refused, by the rule they broke."}, []string{"reason"}),
		countered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_receipts_countersigned_total", Help: "Receipts this box countersigned as server."}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_blocks_withheld_total", Help: "Blocks held back because a client's unreceipted bytes reached the credit window."}),
	}
	s.dag = newDAGIndex(cfg.Blocks, s.keyer)
	if s.release == nil {
		s.release = func(peer.ID) {}
	}
	for _, r := range pod.Reasons {
		s.rejected.WithLabelValues(string(r))
	}
	debtors := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ore_pod_debtors", Help: fmt.Sprintf("Clients in the server's debt table (at most %d; one gone for MaxSkew+1 epochs is forgotten).", MaxDebtors)},
		func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.debt))
		})
	if err := register(cfg.Registry, s.rejected, s.countered, s.withheld, debtors); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) epoch() uint64 { return s.params.EpochAt(s.now()) }

// Bounds of the sent-block meter.
const (
	// MaxSentPerClient bounds the unclaimed blocks kept for one client
	// (past it the oldest is dropped: its bytes can no longer be claimed).
	// An honest client claims every ReceiptEvery bytes and at every Tick,
	// and the credit window holds it to a few MiB unclaimed: 8,192 blocks
	// is 8 MiB of 1 KiB blocks.
	MaxSentPerClient = 8192
	// MaxSent bounds the unclaimed blocks kept over every client (24 MiB
	// of entries); past it the client with the most loses its older half.
	MaxSent = 1 << 20
)

// Allow is bitswap's send gate (bitswap.Gate): it lets a block through
// unless client p's unreceipted bytes would pass the credit window, and
// meters what it lets through: the block's bytes count against p's debt
// and wait, by block, for a receipt to claim them under a root whose DAG
// holds the block.
func (s *Server) Allow(p peer.ID, c cid.Cid, size int) bool {
	e, now, k := s.epoch(), s.now(), s.keyer.key(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.debt[p]
	if d == nil {
		if len(s.debt) >= MaxDebtors {
			s.evictIdlestLocked()
		}
		d = &debt{}
		s.debt[p] = d
	}
	d.seen = now
	if d.signs {
		d.age(e, s.params.MaxSkew)
	}
	if d.bytes > 0 && d.bytes+int64(size) > s.windowOf(d) {
		s.withheld.Inc()
		return false
	}
	d.add(e, int64(size))
	s.seq++
	s.ageSentLocked(d, e)
	if len(d.sent) >= MaxSentPerClient {
		s.dropSentLocked(d, 1)
	}
	if s.pending >= MaxSent {
		s.trimHogLocked()
	}
	d.sent = append(d.sent, sentBlock{key: k, size: int64(size), epoch: e, seq: s.seq})
	s.pending++
	return true
}

// windowOf is the credit window of a client: the most bytes the server
// sends it that no receipt paid. It is the one rule that bounds a client's
// free ride. A new client gets CreditWindow; each byte it pays (a receipt
// countersigned) widens it by a byte, up to MaxCreditWindow. So a client
// that never pays gets CreditWindow, one that stops paying gets at most
// what it paid before plus CreditWindow (and never more than
// MaxCreditWindow), while a paying client on a fast link is not held back
// by the round trip of its receipts: the bytes in flight between the gate
// and its receipts (a bulk stream's buffers, the stream's flow-control
// window) fit in its window. The entry, and its growth, is forgotten once
// the client owes nothing at an AgeDebts round and asked for nothing
// since the round before (or leaves for the grace): a later fetch starts
// at CreditWindow again.
func (s *Server) windowOf(d *debt) int64 {
	return windowFor(s.window, s.maxWindow, d.paid)
}

// windowFor is windowOf's rule on its inputs: first, the window of a
// client that paid nothing, grown by paid, up to most. The client side
// reads it too (receiptInterval), so that its receipts leave before the
// window it is granted fills.
func windowFor(first, most, paid int64) int64 {
	return min(most, first+paid)
}

// Refund takes back what Allow counted against p for a block that did not
// leave after all (p cancelled it while it waited for the uplink): p will
// never sign for it, counted it would shrink p's credit window until the
// debt ages out (MaxSkew epochs later), and a receipt must not claim it.
// It is bitswap.GateRefunder.
func (s *Server) Refund(p peer.ID, c cid.Cid, size int) {
	k := s.keyer.key(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.debt[p]
	if d == nil {
		return
	}
	d.pay(int64(size), true)
	for i := len(d.sent) - 1; i >= 0; i-- {
		if d.sent[i].key == k {
			d.sent = slices.Delete(d.sent, i, i+1)
			s.pending--
			return
		}
	}
}

// ageSentLocked drops p's sent blocks of epochs no receipt may name any
// more (the debt's horizon).
func (s *Server) ageSentLocked(d *debt, e uint64) {
	i := 0
	for i < len(d.sent) && d.sent[i].epoch+s.params.MaxSkew < e {
		i++
	}
	s.dropSentLocked(d, i)
}

func (s *Server) dropSentLocked(d *debt, n int) {
	if n <= 0 {
		return
	}
	d.sent = d.sent[n:] // append copies only what is left when it grows
	s.pending -= n
}

// trimHogLocked makes room under MaxSent: the client with the most
// unclaimed blocks loses its older half.
func (s *Server) trimHogLocked() {
	var hog *debt
	for _, d := range s.debt {
		if hog == nil || len(d.sent) > len(hog.sent) {
			hog = d
		}
	}
	if hog != nil {
		s.dropSentLocked(hog, (len(hog.sent)+1)/2)
	}
}

// credit pays bytes of p's debt and has bitswap send what the gate held
// back for p.
func (s *Server) credit(p peer.ID, bytes int64) {
	s.mu.Lock()
	if d := s.debt[p]; d != nil {
		d.pay(bytes, false)
		d.paid = min(d.paid+bytes, s.maxWindow) // windowOf grows no further
	}
	s.mu.Unlock()
	s.release(p)
}

// signs notes that client p sent a receipt it signed (see debt.signs).
func (s *Server) signs(p peer.ID) {
	s.mu.Lock()
	if d := s.debt[p]; d != nil {
		d.signs = true
	}
	s.mu.Unlock()
}

// DebtGrace is how long a client that left keeps its debt entry: MaxSkew+1
// epochs, when every byte it owes is beyond what a receipt may name, so a
// signing client's debt would have aged out anyway.
//
// The rule against a client that never signs: it is held back once its
// debt reaches the window, for as long as it stays connected. Leaving and
// coming back within the grace does not reset its window (the entry is
// still there); coming back later does, as a new identity would get one.
// So one identity gets at most one credit window per grace, and a peer
// that never signs and leaves costs the server memory for the grace only.
func (s *Server) DebtGrace() time.Duration {
	return time.Duration(s.params.MaxSkew+1) * s.params.EpochLength
}

// AgeDebts (every TickEvery) forgives the debts of signing clients that no
// receipt can pay any more, has bitswap send what the gate held back for
// those clients, and forgets the clients that owe nothing and asked for
// nothing since the last round, and those gone for the debt grace.
//
// A held-back client sends no receipt until its blocks come, so nothing else
// would release them: a receipt the server refused as too old (a client
// that fell behind, or whose receipt waited in a busy network) left its
// bytes unpaid for good, and the server held every later block back while
// the client kept asking. A 200-box mocknet crowd has thousands of such
// refusals (4,445-7,064 epoch_out_of_range a run), though few of them
// reach a window (39-43 blocks withheld a run).
func (s *Server) AgeDebts(context.Context) {
	e, now := s.epoch(), s.now()
	grace := s.DebtGrace()
	var freed []peer.ID
	s.mu.Lock()
	for p, d := range s.debt {
		if d.signs && d.age(e, s.params.MaxSkew) {
			freed = append(freed, p)
		}
		s.ageSentLocked(d, e)
		// Only a client idle since the last round is forgotten or looked
		// up: one that asks is connected, and one that owes nothing
		// between two receipts of a transfer keeps the window it grew
		// (its receipts come further apart as it grows: receiptInterval).
		if now.Sub(d.seen) < TickEvery {
			continue
		}
		if d.bytes == 0 {
			s.dropSentLocked(d, len(d.sent))
			delete(s.debt, p)
			continue
		}
		if s.peers != nil && s.peers.Connected(p) {
			d.seen = now
		} else if now.Sub(d.seen) >= grace {
			s.dropSentLocked(d, len(d.sent))
			delete(s.debt, p)
		}
	}
	s.mu.Unlock()
	for _, p := range freed {
		s.release(p)
	}
}

// evictIdlestLocked drops the debt entry idle the longest, to make room
// under MaxDebtors.
func (s *Server) evictIdlestLocked() {
	var (
		idlest peer.ID
		oldest time.Time
	)
	for p, d := range s.debt {
		if idlest == "" || d.seen.Before(oldest) {
			idlest, oldest = p, d.seen
		}
	}
	if d := s.debt[idlest]; d != nil {
		s.dropSentLocked(d, len(d.sent))
	}
	delete(s.debt, idlest)
	s.log.Debug("debt table full: forgot the idlest client", "client", idlest, "entries", MaxDebtors)
}

// Countersign checks a receipt that client from sent, signs it as server
// and keeps it; it returns the refusal otherwise (a *pod.RejectError
// whose Reason goes on the wire), or the store's error.
//
// The meter: a server signs only bytes it sent, of the root the receipt
// names. The bytes a receipt adds to the one before it for the same
// (client, root, epoch) must be covered by blocks the gate let through to
// that client that no receipt claimed yet, that belong to the root's DAG
// as this box holds it, and that were sent within MaxSkew epochs of the
// receipt's epoch (the clocks of two boxes may differ that much). Those
// blocks are then claimed, oldest first: a block belongs to one receipt,
// never two, whatever roots share it.
func (s *Server) Countersign(ctx context.Context, from peer.ID, r *pod.Receipt) error {
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
	s.mu.Lock()
	sent := s.seq
	s.mu.Unlock()
	dag, err := s.dag.get(ctx, r.Root, sent, false)
	if err != nil {
		return err
	}
	if dag == nil {
		return reject(pod.ReasonNotServed, fmt.Errorf("this server does not hold root %s", r.Root))
	}

	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	key := receiptKey(servedPrefix, r.Epoch, r.Client, r.Root)
	var prevBytes uint64
	first := true
	if b, ok, err := s.store.GetMeta(ctx, key); err != nil {
		return err
	} else if ok {
		prev, err := pod.Unmarshal(b)
		if err != nil {
			return fmt.Errorf("meter: stored receipt is damaged: %w", err)
		}
		if !r.Supersedes(prev) {
			return reject(pod.ReasonStaleSeq, fmt.Errorf("sequence %d (%d bytes) does not supersede %d (%d bytes)", r.Seq, r.Bytes, prev.Seq, prev.Bytes))
		}
		prevBytes, first = prev.Bytes, false
	}
	added := r.Bytes - prevBytes
	have, blocks, newest := s.claimable(from, dag, r.Epoch)
	if uint64(have) < added && !dag.complete && newest > dag.seq {
		// The box may hold more of the DAG than when it was walked (it
		// fetches it while it serves it): walk it again when it sent this
		// client a block since that is not in the set. A client can make
		// the box walk again only by taking a new block for each walk.
		s.mu.Lock()
		sent = s.seq
		s.mu.Unlock()
		if dag, err = s.dag.get(ctx, r.Root, sent, true); err != nil {
			return err
		}
		if dag == nil {
			return reject(pod.ReasonNotServed, fmt.Errorf("this server does not hold root %s", r.Root))
		}
		have, blocks, _ = s.claimable(from, dag, r.Epoch)
	}
	switch {
	case added > 0 && blocks == 0:
		return reject(pod.ReasonNotServed, fmt.Errorf("receipt claims %d more bytes of %s; this server sent %s no block of it that is not claimed yet", added, r.Root, from))
	case uint64(have) < added:
		return reject(pod.ReasonUnsent, fmt.Errorf("receipt claims %d more bytes of %s; this server sent %s %d of it not claimed yet", added, r.Root, from, have))
	}
	if err := r.SignServer(s.key); err != nil {
		return err
	}
	if err := s.store.PutMeta(ctx, key, r.Marshal()); err != nil {
		return fmt.Errorf("meter: keep receipt: %w", err)
	}
	s.countered.Inc()
	s.claim(from, dag, r.Epoch, int64(added))
	s.credit(from, int64(added))
	if s.countersigned != nil {
		s.countersigned(r, added, first)
	}
	return nil
}

// claimable sums what client p may still claim of a root whose members
// are dag, in a receipt of epoch re: its unclaimed sent blocks of the DAG,
// in bytes and in blocks; newest is the send count of the last block sent
// it in those epochs that is not in the DAG's set.
func (s *Server) claimable(p peer.ID, dag *members, re uint64) (bytes int64, blocks int, newest uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.debt[p]
	if d == nil {
		return 0, 0, 0
	}
	s.ageSentLocked(d, s.epoch())
	for _, b := range d.sent {
		if !s.near(b.epoch, re) {
			continue
		}
		if dag.has(b.key) {
			bytes += b.size
			blocks++
		} else {
			newest = max(newest, b.seq)
		}
	}
	return bytes, blocks, newest
}

// claim takes bytes off client p's unclaimed blocks of the DAG, oldest
// first, the last one in part.
func (s *Server) claim(p peer.ID, dag *members, re uint64, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.debt[p]
	if d == nil {
		return
	}
	kept := d.sent[:0]
	for _, b := range d.sent {
		if bytes > 0 && s.near(b.epoch, re) && dag.has(b.key) {
			take := min(bytes, b.size)
			bytes -= take
			if b.size -= take; b.size == 0 {
				s.pending--
				continue
			}
		}
		kept = append(kept, b)
	}
	clear(d.sent[len(kept):])
	d.sent = kept
}

// near says whether a block sent in epoch se may be claimed by a receipt
// of epoch re: the two boxes' clocks may be MaxSkew epochs apart.
func (s *Server) near(se, re uint64) bool {
	return se <= re+s.params.MaxSkew && re <= se+s.params.MaxSkew
}
