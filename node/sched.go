package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/intake"
)

// Gossip topics of heat scheduling.
const (
	// HeatTopic carries the boxes' signed per-epoch heat reports to the
	// committee.
	HeatTopic = "/ore/heat/1"
	// OrdersTopic carries the committee's replication orders, each with
	// the proof that a final block holds it (ledger.OrderProof).
	OrdersTopic = heat.OrderTopic
)

// Scheduling on a box.
const (
	// heatSkew is how many epochs a report or an order may be away from
	// the receiver's epoch.
	heatSkew = 2
	// DefaultHeatHalfLife is the half-life of a box's request heat.
	DefaultHeatHalfLife = 10 * time.Minute
	// maxHeatRoots bounds the roots a heat counter remembers.
	maxHeatRoots = 4096
	// orderFetches bounds the replication fetches a box runs at once.
	orderFetches = 2
	// orderFetchTimeout bounds one replication fetch.
	orderFetchTimeout = 30 * time.Minute
	// reportDebounce gathers order state changes into one report.
	reportDebounce = 200 * time.Millisecond
	// maxReports bounds the boxes whose latest report a coordinator keeps
	// (up to heat.MaxReportSize each, a few KiB for most). Any key may
	// sign a report, so new reporters past it push out the report of the
	// oldest epoch: a box that reports every epoch is pushed out only by
	// a flood of fresh reports, and is back with its next report.
	maxReports = 4 * maxHeatRoots
	// maxOrderStates bounds the orders a box keeps state for (one map
	// entry and a goroutine waiting for a fetch slot each). Orders come
	// signed by a committee member, but one member must not be able to
	// grow a box without bound: past it, new orders are refused.
	maxOrderStates = 4096
)

// Meta records of scheduling (in the store, beside the blocks).
var (
	holdPrefix = []byte("sched/hold/") // root -> until epoch, reason: an order holds it
	rootPrefix = []byte("sched/root/") // root -> size, time: the whole DAG is local
)

// sched is a box's part in heat scheduling: it counts heat, reports it,
// executes the committee's orders and keeps their holds.
type sched struct {
	n      *Node
	demand *heat.Counter // requests for content made through this box
	served *heat.Counter // bytes this box delivered, per root

	heatTopic, ordersTopic *pubsub.Topic
	subs                   []*pubsub.Subscription
	sem                    chan struct{}
	kick                   chan struct{}

	mu      sync.Mutex
	orders  map[cid.Cid]*orderState
	reports map[peer.ID]*heat.Report // coordinators: latest report per box
	runners map[peer.ID]heat.Runner  // gateways and coordinators: boxes that lend CPU (compute_runners.go)

	metrics struct {
		reports, orders *prometheus.CounterVec // rejected, by reason
		published       prometheus.Counter
		executed        *prometheus.CounterVec // by outcome
	}
}

// orderState is an order this box executes.
type orderState struct {
	root   cid.Cid
	state  heat.State
	reason string // why declined or failed
	until  uint64
	size   uint64
	why    heat.Reason
	epoch  uint64 // of the order that set this state
}

func newSched(n *Node) *sched {
	s := &sched{n: n,
		demand:  heat.NewCounter(n.cfg.HeatHalfLife, maxHeatRoots),
		served:  heat.NewCounter(n.cfg.HeatHalfLife, maxHeatRoots),
		sem:     make(chan struct{}, orderFetches),
		kick:    make(chan struct{}, 1),
		orders:  make(map[cid.Cid]*orderState),
		reports: make(map[peer.ID]*heat.Report),
		runners: make(map[peer.ID]heat.Runner),
	}
	s.metrics.reports = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_heat_reports_rejected_total", Help: "Gossiped heat reports refused, by reason."}, []string{"reason"})
	s.metrics.orders = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_orders_rejected_total", Help: "Gossiped replication orders refused, by reason."}, []string{"reason"})
	s.metrics.published = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_heat_reports_published_total", Help: "Heat reports this box published."})
	s.metrics.executed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_orders_executed_total", Help: "Replication orders this box took, by outcome."}, []string{"outcome"})
	size := func(f func() int) func() float64 {
		return func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(f())
		}
	}
	tables := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_heat_reports_kept",
			Help: fmt.Sprintf("Boxes whose latest heat report this coordinator keeps (at most %d).", maxReports)},
			size(func() int { return len(s.reports) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_orders_kept",
			Help: fmt.Sprintf("Replication orders this box executes, holds or reports as declined (at most %d).", maxOrderStates)},
			size(func() int { return len(s.orders) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_heat_demand_roots",
			Help: fmt.Sprintf("Roots in this box's request heat counter (at most %d).", maxHeatRoots)},
			func() float64 { return float64(s.demand.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_heat_served_roots",
			Help: fmt.Sprintf("Roots in this box's served-bytes heat counter (at most %d).", maxHeatRoots)},
			func() float64 { return float64(s.served.Len()) }),
	}
	for _, c := range append([]prometheus.Collector{s.metrics.reports, s.metrics.orders, s.metrics.published, s.metrics.executed}, tables...) {
		_ = n.reg.Register(c)
	}
	return s
}

// start joins the scheduling topics (on a network with a ledger: the
// committee schedules) and resumes the holds kept on disk.
func (s *sched) start() error {
	if s.n.cfg.Genesis == nil || s.n.cfg.SchedulingOff {
		return nil
	}
	ps := s.n.pubsub
	if err := ps.RegisterTopicValidator(HeatTopic, s.validateReport); err != nil {
		return fmt.Errorf("node: heat validator: %w", err)
	}
	if err := ps.RegisterTopicValidator(OrdersTopic, s.validateOrder); err != nil {
		return fmt.Errorf("node: orders validator: %w", err)
	}
	var err error
	if s.heatTopic, err = ps.Join(HeatTopic); err != nil {
		return fmt.Errorf("node: join %s: %w", HeatTopic, err)
	}
	if s.ordersTopic, err = ps.Join(OrdersTopic); err != nil {
		return fmt.Errorf("node: join %s: %w", OrdersTopic, err)
	}
	for _, t := range []*pubsub.Topic{s.heatTopic, s.ordersTopic} {
		if err := intake.ScoreTopic(t); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	osub, err := s.ordersTopic.Subscribe(pubsub.WithBufferSize(256))
	if err != nil {
		return fmt.Errorf("node: subscribe %s: %w", OrdersTopic, err)
	}
	s.subs = append(s.subs, osub)
	s.n.spawn(func(ctx context.Context) { s.readOrders(ctx, osub) })
	// Coordinators plan from the reports; gateways choose job runners
	// from them (the boxes that lend CPU, compute_runners.go).
	if s.n.cfg.Role == RoleCoordinator || s.n.cfg.Role == RoleGateway {
		hsub, err := s.heatTopic.Subscribe(pubsub.WithBufferSize(1024))
		if err != nil {
			return fmt.Errorf("node: subscribe %s: %w", HeatTopic, err)
		}
		s.subs = append(s.subs, hsub)
		s.n.spawn(func(ctx context.Context) { s.readReports(ctx, hsub) })
	}
	if err := s.loadHolds(s.n.ctx); err != nil {
		return err
	}
	s.n.spawn(s.reportLoop)
	return nil
}

// close leaves the topics (while gossipsub still runs).
func (s *sched) close() {
	for _, sub := range s.subs {
		sub.Cancel()
	}
	for _, t := range []*pubsub.Topic{s.heatTopic, s.ordersTopic} {
		if t != nil {
			_ = t.Close()
		}
	}
}

func (s *sched) epoch() uint64 { return s.n.cfg.Network.EpochAt(time.Now()) }

// ---- heat ----

// requested counts a request for root made through this box.
func (s *sched) requested(root cid.Cid, bytes int64) {
	s.demand.Record(root, bytes, time.Now())
}

// delivered counts bytes of root this box served; first says the bytes
// start a new delivery (a request).
func (s *sched) delivered(root cid.Cid, bytes int64, first bool) {
	if first {
		s.served.Record(root, bytes, time.Now())
	} else {
		s.served.AddBytes(root, bytes, time.Now())
	}
}

// serving reports whether this box delivered bytes of root in the last two
// epochs: its blocks may be on their way out.
func (s *sched) serving(root cid.Cid) bool {
	t, ok := s.served.Last(root)
	return ok && time.Since(t) < 2*s.n.cfg.Network.EpochLength
}

// demandSnapshot is this box's request heat, the gateway's included.
func (s *sched) demandSnapshot(now time.Time) []heat.Entry {
	entries := s.demand.Snapshot(now)
	if s.n.gateway == nil {
		return entries
	}
	sum := make(map[cid.Cid]heat.Entry, len(entries))
	for _, e := range entries {
		sum[e.Root] = e
	}
	for _, e := range s.n.gateway.Heat().Snapshot(now) {
		t := sum[e.Root]
		t.Root = e.Root
		t.Requests += e.Requests
		t.Bytes += e.Bytes
		sum[e.Root] = t
	}
	out := make([]heat.Entry, 0, len(sum))
	for _, e := range sum {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Requests > out[j].Requests
	})
	return out
}

// ---- reports ----

// reportLoop publishes a report once an epoch, between half and three
// quarters into it (the leader plans when the epoch closes), and soon
// after an order changes state. It also expires holds.
func (s *sched) reportLoop(ctx context.Context) {
	params := s.n.cfg.Network
	for {
		now := time.Now()
		e := params.EpochAt(now)
		at := params.GenesisTime.Add(time.Duration(e)*params.EpochLength + params.EpochLength/2 +
			time.Duration(rand.Int64N(int64(params.EpochLength/4)+1)))
		if !at.After(now) {
			at = at.Add(params.EpochLength)
		}
		t := time.NewTimer(at.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.kick:
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-time.After(reportDebounce):
			}
		}
		s.expireHolds(ctx)
		if err := s.publishReport(ctx); err != nil && ctx.Err() == nil {
			s.n.log.Debug("heat report", "err", err)
		}
	}
}

// soon asks for a report shortly (an order changed state).
func (s *sched) soon() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Report builds and signs this box's heat report for the current epoch.
func (s *sched) report(ctx context.Context) (*heat.Report, error) {
	now := time.Now()
	st := s.n.store
	r := &heat.Report{Epoch: s.epoch(), Quota: uint64(st.Quota()), Used: uint64(max(st.Used(), 0)), Reach: s.n.reach.heatReach(),
		Compute: s.n.computeReport()}
	for _, e := range s.demandSnapshot(now) {
		if len(r.Heat) == heat.MaxHeat {
			break
		}
		req := uint64(math.Round(e.Requests))
		if req == 0 {
			continue
		}
		r.Heat = append(r.Heat, heat.RootHeat{Root: e.Root, Requests: req, Bytes: uint64(math.Round(e.Bytes))})
	}
	roots, err := s.n.storedRoots(ctx)
	if err != nil {
		return nil, err
	}
	// Held roots under an order first (the committee counts them), then
	// the most served.
	s.mu.Lock()
	for _, o := range s.orders {
		if len(r.Orders) == heat.MaxOrders {
			break
		}
		r.Orders = append(r.Orders, heat.OrderStatus{Root: o.root, State: o.state, Reason: o.reason})
	}
	ordered := make(map[cid.Cid]bool, len(s.orders))
	for c, o := range s.orders {
		ordered[c] = o.state == heat.OrderHeld
	}
	s.mu.Unlock()
	sort.Slice(r.Orders, func(i, j int) bool { return r.Orders[i].Root.KeyString() < r.Orders[j].Root.KeyString() })
	sort.SliceStable(roots, func(i, j int) bool {
		oi, oj := ordered[roots[i].Root], ordered[roots[j].Root]
		if oi != oj {
			return oi
		}
		return s.served.Get(roots[i].Root, now).Bytes > s.served.Get(roots[j].Root, now).Bytes
	})
	for _, rt := range roots {
		if len(r.Held) == heat.MaxHeld {
			break
		}
		r.Held = append(r.Held, heat.Holding{Root: rt.Root, Size: uint64(rt.Size)})
	}
	if err := r.Sign(s.n.cfg.Network.Network, s.n.key); err != nil {
		return nil, err
	}
	return r, nil
}

func (s *sched) publishReport(ctx context.Context) error {
	r, err := s.report(ctx)
	if err != nil {
		return err
	}
	if s.n.cfg.Role == RoleCoordinator {
		s.keepReport(r) // gossipsub does not deliver a box's own messages to itself
	}
	if err := s.heatTopic.Publish(ctx, r.Marshal()); err != nil {
		return fmt.Errorf("node: publish heat report: %w", err)
	}
	s.metrics.published.Inc()
	return nil
}

func (s *sched) validateReport(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	// Gossip messages carry no author (intake.GossipOptions): the report's
	// own signature says who reports, whoever relays it.
	r, err := heat.UnmarshalReport(msg.Data)
	if err == nil {
		err = heat.CheckReport(r, s.n.cfg.Network.Network, s.epoch(), heatSkew)
	}
	return verdict(msg, r, err, s.metrics.reports)
}

// verdict is a gossip validator's answer: a stale message is ignored (it
// may just be late), any other error rejects it (its sender loses peer
// score) and is counted by reason; a valid one goes on with v attached.
func verdict(msg *pubsub.Message, v any, err error, refused *prometheus.CounterVec) pubsub.ValidationResult {
	if err != nil {
		refused.WithLabelValues(heatReason(err)).Inc()
		if errors.Is(err, heat.ErrStale) {
			return pubsub.ValidationIgnore
		}
		return pubsub.ValidationReject
	}
	msg.ValidatorData = v
	return pubsub.ValidationAccept
}

func (s *sched) readReports(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if r, ok := msg.ValidatorData.(*heat.Report); ok {
			if s.n.cfg.Role == RoleCoordinator {
				s.keepReport(r)
			}
			s.keepRunner(r)
		}
	}
}

func (s *sched) keepReport(r *heat.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.reports[r.Reporter]; old != nil {
		if old.Epoch <= r.Epoch {
			s.reports[r.Reporter] = r
		}
		return
	}
	if len(s.reports) >= maxReports {
		s.forgetReportsLocked()
	}
	s.reports[r.Reporter] = r
}

// forgetReportsLocked makes room for a new reporter: it forgets the boxes
// silent for long (the planner ignores them anyway), or else the report of
// the oldest epoch.
func (s *sched) forgetReportsLocked() {
	e := s.epoch()
	var (
		oldest peer.ID
		at     uint64
	)
	for p, r := range s.reports {
		if r.Epoch+4*heatSkew < e {
			delete(s.reports, p)
			continue
		}
		if oldest == "" || r.Epoch < at {
			oldest, at = p, r.Epoch
		}
	}
	if len(s.reports) >= maxReports {
		delete(s.reports, oldest)
	}
}

// latestReports is what the committee plans from (coordinators only).
func (s *sched) latestReports() []*heat.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*heat.Report, 0, len(s.reports))
	for _, r := range s.reports {
		out = append(out, r)
	}
	return out
}

// publishOrder gossips an order the committee's leader signed.
func (s *sched) publishOrder(ctx context.Context, p *ledger.OrderProof) error {
	if s.ordersTopic == nil {
		return errors.New("node: scheduling is off on this box")
	}
	if o := p.Tx.Order; o != nil && o.Names(s.n.ID()) {
		s.take(o) // gossipsub does not deliver a box's own messages to itself
	}
	if err := s.ordersTopic.Publish(ctx, p.Marshal()); err != nil {
		return fmt.Errorf("node: publish order: %w", err)
	}
	return nil
}

func heatReason(err error) string {
	for _, e := range []struct {
		err  error
		name string
	}{
		{heat.ErrTooLarge, "too_large"}, {heat.ErrMalformed, "malformed"}, {heat.ErrBadSignature, "bad_signature"},
		{heat.ErrWrongNetwork, "wrong_network"}, {heat.ErrStale, "stale"}, {heat.ErrNotCommittee, "not_committee"},
		{heat.ErrTooLong, "until_out_of_range"}, {ledger.ErrNotFinal, "not_final"}, {ledger.ErrMalformed, "malformed"},
	} {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "invalid"
}

// ---- orders ----

// validateOrder admits an order proven final (a quorum of the committee
// signed the block that holds it), whoever relays it, and only while it
// runs by this box's clock: one member's signature alone moves no box.
func (s *sched) validateOrder(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	var o *heat.Order
	p, err := ledger.UnmarshalOrderProof(msg.Data)
	if err == nil {
		o, err = p.Verify(s.n.cfg.Genesis)
	}
	if err == nil {
		err = heat.CheckOrder(o, s.n.cfg.Network.Network, s.n.cfg.Genesis.IsMember, s.epoch(), heatSkew)
	}
	return verdict(msg, o, err, s.metrics.orders)
}

func (s *sched) readOrders(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if o, ok := msg.ValidatorData.(*heat.Order); ok && o.Names(s.n.ID()) {
			s.take(o)
		}
	}
}

// take starts executing an order that names this box, or extends the hold
// of one it already executes.
func (s *sched) take(o *heat.Order) {
	s.mu.Lock()
	st := s.orders[o.Root]
	switch {
	case st != nil && (st.state == heat.OrderHeld || st.state == heat.OrderFetching):
		renew := o.Until > st.until
		if renew {
			st.until = o.Until
		}
		s.mu.Unlock()
		if renew {
			s.n.spawn(func(ctx context.Context) {
				if err := s.n.putHold(ctx, o.Root, o.Until, o.Reason); err != nil {
					s.n.log.Warn("extend hold", "root", o.Root, "err", err)
				}
			})
		}
		return
	case st != nil && st.epoch >= o.Epoch:
		s.mu.Unlock()
		return // declined or failed this very order already
	case st == nil && len(s.orders) >= maxOrderStates:
		s.mu.Unlock()
		s.metrics.executed.WithLabelValues("refused_full").Inc()
		s.n.log.Warn("replication order refused: too many orders under way or held", "root", o.Root, "orders", maxOrderStates, "issuer", o.Issuer)
		return
	}
	st = &orderState{root: o.Root, state: heat.OrderFetching, until: o.Until, size: o.Size, why: o.Reason, epoch: o.Epoch}
	s.orders[o.Root] = st
	s.mu.Unlock()
	s.n.log.Info("replication order", "root", o.Root, "until_epoch", o.Until, "reason", o.Reason, "issuer", o.Issuer)
	s.n.spawn(func(ctx context.Context) { s.execute(ctx, st) })
}

// execute makes an ordered root local and holds it.
func (s *sched) execute(ctx context.Context, st *orderState) {
	defer s.soon()
	root := st.root
	if err := s.n.putHold(ctx, root, st.until, st.why); err != nil {
		s.finish(ctx, st, heat.OrderFailed, "hold: "+err.Error())
		return
	}
	if s.n.isComplete(ctx, root) {
		if !s.n.hasRootRecord(ctx, root) { // whole, but never recorded (pinned, or fetched before)
			if size, err := s.n.localSize(ctx, root); err == nil {
				s.n.recordRoot(ctx, root, size)
			}
		}
		s.finish(ctx, st, heat.OrderHeld, "")
		s.n.provideAsync(root)
		return
	}
	if st.size > 0 {
		free := s.n.store.Quota() - s.n.store.Used()
		if need := int64(st.size) - free; need > 0 {
			if _, err := s.n.Evict(ctx, need); err != nil && ctx.Err() == nil {
				s.n.log.Debug("evict for an order", "root", root, "err", err)
			}
			if free = s.n.store.Quota() - s.n.store.Used(); int64(st.size) > free {
				s.finish(ctx, st, heat.OrderDeclined, fmt.Sprintf("quota full: %d bytes needed, %d free", st.size, free))
				return
			}
		}
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.sem }()
	fctx, cancel := context.WithTimeout(ctx, orderFetchTimeout)
	defer cancel()
	_, err := s.n.fetch(fctx, root, nil, fetchWhole)
	switch {
	case err == nil:
		s.finish(ctx, st, heat.OrderHeld, "")
	case errors.Is(err, ErrQuotaFull):
		s.finish(ctx, st, heat.OrderDeclined, "quota full")
	case ctx.Err() != nil:
		// The box is stopping: the hold stays, the fetch resumes at start.
	default:
		s.finish(ctx, st, heat.OrderFailed, err.Error())
	}
}

// finish records an order's outcome; a root not held loses its hold.
func (s *sched) finish(ctx context.Context, st *orderState, state heat.State, reason string) {
	if len(reason) > heat.MaxStatusReason {
		reason = reason[:heat.MaxStatusReason]
	}
	s.mu.Lock()
	st.state, st.reason = state, reason
	s.mu.Unlock()
	s.metrics.executed.WithLabelValues(state.String()).Inc()
	if state != heat.OrderHeld {
		s.n.log.Info("replication order not done", "root", st.root, "state", state, "reason", reason)
		if err := s.n.deleteHold(ctx, st.root); err != nil {
			s.n.log.Warn("drop hold", "root", st.root, "err", err)
		}
		return
	}
	s.n.log.Info("replication order held", "root", st.root, "until_epoch", st.until)
}

// expireHolds releases the holds of orders that ran out, and forgets
// declined and failed orders after a few epochs (they were reported).
func (s *sched) expireHolds(ctx context.Context) {
	e := s.epoch()
	var gone []cid.Cid
	s.mu.Lock()
	for c, o := range s.orders {
		switch {
		case o.state == heat.OrderHeld && o.until < e:
			gone = append(gone, c)
			delete(s.orders, c)
		case (o.state == heat.OrderDeclined || o.state == heat.OrderFailed) && o.epoch+heatSkew < e:
			delete(s.orders, c)
		}
	}
	s.mu.Unlock()
	for _, c := range gone {
		if err := s.n.deleteHold(ctx, c); err != nil {
			s.n.log.Warn("release hold", "root", c, "err", err)
		}
		s.n.log.Info("order expired; the root may be evicted", "root", c)
	}
}

// loadHolds resumes the orders held on disk when the box starts.
func (s *sched) loadHolds(ctx context.Context) error {
	e := s.epoch()
	type rec struct {
		root  cid.Cid
		until uint64
		why   heat.Reason
	}
	var recs []rec
	err := s.n.store.ScanMeta(ctx, holdPrefix, func(k, v []byte) error {
		c, err := cid.Cast(k[len(holdPrefix):])
		if err != nil {
			return nil // not ours to judge: leave it
		}
		until, n := binary.Uvarint(v)
		if n <= 0 || len(v) != n+1 {
			return nil
		}
		recs = append(recs, rec{c, until, heat.Reason(v[n])})
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: read order holds: %w", err)
	}
	for _, r := range recs {
		if r.until < e {
			_ = s.n.deleteHold(ctx, r.root)
			continue
		}
		st := &orderState{root: r.root, state: heat.OrderFetching, until: r.until, why: r.why}
		s.mu.Lock()
		s.orders[r.root] = st
		s.mu.Unlock()
		s.n.spawn(func(ctx context.Context) { s.execute(ctx, st) })
	}
	return nil
}

func (n *Node) putHold(ctx context.Context, root cid.Cid, until uint64, why heat.Reason) error {
	v := binary.AppendUvarint(nil, until)
	v = append(v, byte(why))
	return n.store.PutMeta(ctx, append(append([]byte(nil), holdPrefix...), root.Bytes()...), v)
}

func (n *Node) deleteHold(ctx context.Context, root cid.Cid) error {
	return n.store.DeleteMeta(ctx, append(append([]byte(nil), holdPrefix...), root.Bytes()...))
}
