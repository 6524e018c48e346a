package meter

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	window        int64
	peers         Peers
	release       func(peer.ID)
	countersigned func(*pod.Receipt, uint64, bool)

	rejected  *prometheus.CounterVec
	countered prometheus.Counter
	withheld  prometheus.Counter

	mu   sync.Mutex
	debt map[peer.ID]*debt
}

// NewServer builds a server meter from cfg (Params, Key, Store; Peers,
// Release and Countersigned may be nil).
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("meter: server key: %w", err)
	}
	s := &Server{
		params: cfg.Params, key: cfg.Key, self: self, store: cfg.Store, log: cfg.Logger, now: cfg.Clock,
		window: cfg.CreditWindow, peers: cfg.Peers, release: cfg.Release, countersigned: cfg.Countersigned,
		debt: make(map[peer.ID]*debt),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_pod_receipts_rejected_total", Help: "Receipts refused, by the rule they broke."}, []string{"reason"}),
		countered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_receipts_countersigned_total", Help: "Receipts this box countersigned as server."}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_pod_blocks_withheld_total", Help: "Blocks held back because a client's unreceipted bytes reached the credit window."}),
	}
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

// Allow is bitswap's send gate (bitswap.Gate).
func (s *Server) Allow(p peer.ID, size int) bool {
	e := s.epoch()
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

// Refund takes back bytes Allow counted against p for a block that did not
// leave after all (p cancelled it while it waited for the uplink): p will
// never sign for them, and counted they would shrink its credit window
// until the debt ages out (MaxSkew epochs later). It is
// bitswap.GateRefunder.
func (s *Server) Refund(p peer.ID, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.debt[p]; d != nil {
		d.pay(int64(size), true)
	}
}

// credit pays bytes of p's debt and has bitswap send what the gate held
// back for p.
func (s *Server) credit(p peer.ID, bytes int64) {
	s.mu.Lock()
	if d := s.debt[p]; d != nil {
		d.pay(bytes, false)
	}
	s.mu.Unlock()
	s.release(p)
}

// unpaid is what the server sent client p that no receipt paid yet, in
// the epochs a receipt may still name.
func (s *Server) unpaid(p peer.ID) int64 {
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
// those clients, and forgets the clients gone for the debt grace.
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
		if d.bytes == 0 {
			delete(s.debt, p)
			continue
		}
		// Only a client idle since the last round is looked up: one that
		// asks is connected.
		if now.Sub(d.seen) < TickEvery {
			continue
		}
		if s.peers != nil && s.peers.Connected(p) {
			d.seen = now
		} else if now.Sub(d.seen) >= grace {
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
	delete(s.debt, idlest)
	s.log.Debug("debt table full: forgot the idlest client", "client", idlest, "entries", MaxDebtors)
}

// Countersign checks a receipt that client from sent, signs it as server
// and keeps it; it returns the refusal otherwise (a *pod.RejectError
// whose Reason goes on the wire), or the store's error.
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
	if err := s.store.PutMeta(ctx, key, r.Marshal()); err != nil {
		return fmt.Errorf("meter: keep receipt: %w", err)
	}
	s.countered.Inc()
	added := r.Bytes - prevBytes
	s.credit(from, int64(added))
	if s.countersigned != nil {
		s.countersigned(r, added, first)
	}
	return nil
}
