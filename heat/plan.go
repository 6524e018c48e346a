package heat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Params tune the planner.
type Params struct {
	Floor, Ceiling     int     // replicas of a hot root (counting boxes that already hold it)
	HotRequests        float64 // summed decayed requests at which a root is hot
	RequestsPerReplica float64 // target = clamp(ceil(requests/RequestsPerReplica), Floor, Ceiling)
	Lifetime           uint64  // epochs a heat order lasts after issue
	Reachable          uint64  // a box whose latest report is older than this many epochs is unreachable
	MaxTargets         int     // hottest roots planned per epoch
	// MaxReporterRequests is the most one report counts for one root (0:
	// HotRequests). A report is one box's word: a box that lies about
	// demand can alone make a root hot, with the floor's replicas, but it
	// takes Ceiling×RequestsPerReplica/MaxReporterRequests reporters to
	// fill the ceiling.
	MaxReporterRequests float64
}

// maxWeight is the largest capacity weight a box has (see weight): a
// quota beyond 1 TiB, like an unlimited one, counts as 1 TiB, so a box
// that claims a quota of 2^64−1 bytes does not win every root.
const maxWeight = 1024

// DefaultParams returns the planner's defaults.
func DefaultParams() Params {
	return Params{
		Floor:              3,
		Ceiling:            16,
		HotRequests:        8,
		RequestsPerReplica: 4,
		Lifetime:           6,
		Reachable:          2,
		MaxTargets:         256,
		// One box alone reaches at most the floor.
		MaxReporterRequests: 8,
	}
}

// reporterCap is MaxReporterRequests with its default.
func (p Params) reporterCap() uint64 {
	if p.MaxReporterRequests > 0 {
		return uint64(p.MaxReporterRequests)
	}
	return uint64(p.HotRequests)
}

// Validate checks the params against each other.
func (p Params) Validate() error {
	finite := func(f float64) bool { return f > 0 && !math.IsInf(f, 1) }
	switch {
	case p.Floor < 1:
		return fmt.Errorf("%w: floor %d, at least 1", ErrInvalidParams, p.Floor)
	case p.Ceiling < p.Floor:
		return fmt.Errorf("%w: ceiling %d below floor %d", ErrInvalidParams, p.Ceiling, p.Floor)
	case p.Ceiling > MaxOrderBoxes:
		return fmt.Errorf("%w: ceiling %d, an order names at most %d boxes", ErrInvalidParams, p.Ceiling, MaxOrderBoxes)
	case !finite(p.HotRequests):
		return fmt.Errorf("%w: hot requests %v, must be positive", ErrInvalidParams, p.HotRequests)
	case !finite(p.RequestsPerReplica):
		return fmt.Errorf("%w: requests per replica %v, must be positive", ErrInvalidParams, p.RequestsPerReplica)
	case p.Lifetime < 1 || p.Lifetime > MaxHeatOrderEpochs:
		return fmt.Errorf("%w: lifetime %d, 1 to %d epochs (boxes refuse longer heat orders)", ErrInvalidParams, p.Lifetime, MaxHeatOrderEpochs)
	case p.MaxTargets < 1:
		return fmt.Errorf("%w: max targets %d, at least 1", ErrInvalidParams, p.MaxTargets)
	case p.MaxReporterRequests != 0 && !(finite(p.MaxReporterRequests) && p.MaxReporterRequests >= 1):
		return fmt.Errorf("%w: max reporter requests %v, at least 1 (0: hot requests)", ErrInvalidParams, p.MaxReporterRequests)
	}
	return nil
}

// Prewarm is a publisher's request for replicas of a root ahead of demand.
type Prewarm struct {
	Root     cid.Cid
	Replicas int
	Until    uint64 // last epoch it applies
	Size     uint64 // bytes of the DAG if known, else 0
}

// Target is the planner's decision for one root.
type Target struct {
	Root     cid.Cid
	Reason   Reason
	Requests float64 // summed over reachable reporters
	Bytes    float64
	Replicas int    // boxes that should hold it
	Size     uint64 // bytes of the DAG if known, else 0
	Until    uint64 // last epoch the order runs
	// NATDemand: a box not known to be directly reachable (a report of
	// ReachNAT, ReachSymmetric or ReachUnknown) asked for the root, or a
	// pre-warm covers it (whoever fetches it later): its replicas must be
	// on boxes that boxes behind NATs reach, so boxes behind a symmetric
	// NAT are none of its Holders, Boxes or Assigned (see Plan).
	NATDemand bool
	Holders   []peer.ID // reachable boxes that report holding the root whole and count towards Replicas (sorted)
	Boxes     []peer.ID // the order's boxes: holders renewing an order + boxes fetching + newly assigned (sorted)
	Assigned  []peer.ID // newly assigned this round (sorted)
	// prewarmed is the most boxes a pre-warm order may name: the
	// ledger's bound (the largest pre-warm's replicas), which heat may
	// have raised Replicas above.
	prewarmed int
}

// Order builds the target's unsigned order. A target without Boxes needs
// no order.
func (t Target) Order(network string, issuer peer.ID, epoch uint64) *Order {
	return &Order{
		Network: network,
		Issuer:  issuer,
		Epoch:   epoch,
		Root:    t.Root,
		Size:    t.Size,
		Until:   t.Until,
		Reason:  t.Reason,
		Boxes:   slices.Clone(t.Boxes),
	}
}

// Plan turns the boxes' reports and the publishers' prewarm requests into
// replica targets and box assignments for epoch. It is pure and
// deterministic: the same inputs in any order give the same targets.
// Callers check reports (CheckReport) before they pass them in. Plan
// panics if p does not Validate.
//
// Each reporter's latest report counts; a reporter whose latest report is
// more than p.Reachable epochs old is ignored entirely. A root is planned
// when its heat summed over reporters reaches p.HotRequests or an unexpired
// prewarm covers it; the p.MaxTargets hottest are planned, hottest first,
// so hotter roots get the free space first. Boxes that hold the root (in
// Held, or with an OrderHeld state) and boxes fetching it count towards
// the target; the rest is assigned to the reachable boxes with room that
// have not declined or failed it, ranked by capacity-weighted rendezvous
// hashing (see score).
//
// Boxes behind a symmetric NAT (ReachSymmetric) serve only boxes they can
// dial: a box behind another NAT reaches them through a relay, hole
// punching fails, and relays carry no blocks. So for a root with
// NATDemand, a ReachSymmetric box counts neither as a holder nor as a box
// fetching it, is not assigned it, and its order for it is not renewed
// (its hold lapses at the order's Until): the target is met by boxes that
// every box reaches. A root only ReachDirect boxes asked for (gateways,
// public boxes: a box behind a symmetric NAT that they reach through a
// relay dials them back) is planned on every box alike. A box with a
// mapped port or an IPv6 address without NAT reports ReachDirect, not
// ReachSymmetric: boxes reach it directly there.
func Plan(p Params, epoch uint64, reports []*Report, prewarms []Prewarm) []Target {
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("heat: Plan: %v", err))
	}
	boxes, byID := latest(reports, epoch, p.Reachable)
	planned := choose(p, epoch, boxes, byID, prewarms)
	index := make(map[cid.Cid]*rootState, len(planned))
	for i := range planned {
		index[planned[i].Root] = &rootState{}
	}
	for _, id := range boxes {
		observe(index, id, byID[id])
	}
	free := make(map[peer.ID]uint64, len(boxes))
	for _, id := range boxes {
		free[id] = byID[id].Free()
	}
	for i := range planned {
		assign(&planned[i], index[planned[i].Root], boxes, byID, free)
	}
	return planned
}

// latest returns the reachable reporters, sorted, and each one's latest
// report. Of two reports of the same epoch the one with the greater
// encoding wins, so the choice does not depend on input order.
func latest(reports []*Report, epoch, reachable uint64) ([]peer.ID, map[peer.ID]*Report) {
	byID := make(map[peer.ID]*Report)
	for _, r := range reports {
		if r == nil || r.Reporter == "" {
			continue
		}
		cur := byID[r.Reporter]
		if cur == nil || r.Epoch > cur.Epoch ||
			r.Epoch == cur.Epoch && bytes.Compare(r.Marshal(), cur.Marshal()) > 0 {
			byID[r.Reporter] = r
		}
	}
	ids := make([]peer.ID, 0, len(byID))
	for id, r := range byID {
		if r.Epoch < epoch && epoch-r.Epoch > reachable {
			delete(byID, id)
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, byID
}

// choose sums the heat, merges the prewarms and returns the roots to plan,
// hottest first, with Reason, Requests, Bytes, Replicas, Until and the
// prewarm's Size filled in.
func choose(p Params, epoch uint64, boxes []peer.ID, byID map[peer.ID]*Report, prewarms []Prewarm) []Target {
	type sum struct {
		requests, bytes uint64
		nat             bool // a reporter not known to be directly reachable asked for it
	}
	sums := make(map[cid.Cid]*sum)
	limit := p.reporterCap()
	for _, id := range boxes {
		r := byID[id]
		for _, h := range r.Heat {
			s := sums[h.Root]
			if s == nil {
				s = &sum{}
				sums[h.Root] = s
			}
			s.requests = addSat(s.requests, min(h.Requests, limit))
			s.bytes = addSat(s.bytes, h.Bytes)
			s.nat = s.nat || r.Reach != ReachDirect
		}
	}
	pws := make(map[cid.Cid]*Prewarm)
	for _, pw := range prewarms {
		if !pw.Root.Defined() || pw.Until < epoch {
			continue
		}
		m := pws[pw.Root]
		if m == nil {
			m = &Prewarm{Root: pw.Root}
			pws[pw.Root] = m
		}
		m.Replicas = max(m.Replicas, pw.Replicas)
		m.Until = max(m.Until, pw.Until)
		m.Size = max(m.Size, pw.Size)
	}
	var out []Target
	plan := func(root cid.Cid, s *sum, pw *Prewarm) {
		t := Target{Root: root, Reason: ReasonHeat}
		if s != nil {
			t.Requests, t.Bytes, t.NATDemand = float64(s.requests), float64(s.bytes), s.nat
		}
		hot := t.Requests >= p.HotRequests
		if hot {
			n := math.Ceil(t.Requests / p.RequestsPerReplica)
			t.Replicas = int(min(max(n, float64(p.Floor)), float64(p.Ceiling)))
			t.Until = addSat(epoch, p.Lifetime)
		}
		if pw != nil {
			t.Reason = ReasonPrewarm
			t.Replicas = min(max(t.Replicas, pw.Replicas), p.Ceiling)
			t.prewarmed = min(pw.Replicas, t.Replicas)
			// Boxes refuse an order that runs longer than this: a pre-warm
			// that does (its block's epoch was ahead of this one) is
			// ordered for as long as they take, and renewed later.
			t.Until = min(max(t.Until, pw.Until), addSat(epoch, MaxPrewarmOrderEpochs))
			t.Size = pw.Size
			t.NATDemand = true
		}
		if hot || pw != nil {
			out = append(out, t)
		}
	}
	for root, s := range sums {
		plan(root, s, pws[root])
	}
	for root, pw := range pws {
		if sums[root] == nil {
			plan(root, nil, pw)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Requests != out[j].Requests {
			return out[i].Requests > out[j].Requests
		}
		return out[i].Root.KeyString() < out[j].Root.KeyString()
	})
	if len(out) > p.MaxTargets {
		out = out[:p.MaxTargets]
	}
	return out
}

// rootState is what the reachable boxes say about one planned root.
type rootState struct {
	size     uint64               // largest Holding.Size reported
	holders  []peer.ID            // hold it whole (Held or OrderHeld)
	renew    []peer.ID            // report OrderHeld
	fetching []peer.ID            // report OrderFetching
	refused  map[peer.ID]struct{} // report OrderDeclined or OrderFailed
}

// observe folds one box's report into the states of the planned roots.
// Boxes come in sorted order, so every list stays sorted.
func observe(index map[cid.Cid]*rootState, id peer.ID, r *Report) {
	holds := make(map[cid.Cid]bool)
	for _, h := range r.Held {
		if s := index[h.Root]; s != nil {
			s.size = max(s.size, h.Size)
			holds[h.Root] = true
		}
	}
	for _, o := range r.Orders {
		s := index[o.Root]
		if s == nil {
			continue
		}
		switch o.State {
		case OrderHeld:
			s.renew = append(s.renew, id)
			holds[o.Root] = true
		case OrderFetching:
			s.fetching = append(s.fetching, id)
		case OrderDeclined, OrderFailed:
			if s.refused == nil {
				s.refused = make(map[peer.ID]struct{})
			}
			s.refused[id] = struct{}{}
		}
	}
	for root := range holds {
		s := index[root]
		s.holders = append(s.holders, id)
	}
}

// assign fills in t's Size, Holders, Boxes and Assigned, taking the new
// replicas' room out of free.
func assign(t *Target, s *rootState, boxes []peer.ID, byID map[peer.ID]*Report, free map[peer.ID]uint64) {
	if t.Size == 0 {
		t.Size = s.size
	}
	if t.NATDemand {
		// Boxes behind a symmetric NAT are no sources for it (see Plan).
		open := func(ids []peer.ID) []peer.ID {
			return slices.DeleteFunc(slices.Clone(ids), func(id peer.ID) bool { return byID[id].Reach == ReachSymmetric })
		}
		s.holders, s.renew, s.fetching = open(s.holders), open(s.renew), open(s.fetching)
		boxes = open(boxes)
	}
	t.Holders = s.holders
	busy := make(map[peer.ID]struct{}, len(s.holders)+len(s.fetching))
	for _, id := range s.holders {
		busy[id] = struct{}{}
	}
	for _, id := range s.fetching {
		busy[id] = struct{}{}
	}
	if need := t.Replicas - len(busy); need > 0 {
		var cands []peer.ID
		for _, id := range boxes {
			_, taken := busy[id]
			_, refused := s.refused[id]
			if taken || refused || free[id] == 0 || free[id] < t.Size {
				continue
			}
			cands = append(cands, id)
		}
		cands = rank(t.Root, cands, byID)
		t.Assigned = cands[:min(need, len(cands))]
		for _, id := range t.Assigned {
			free[id] -= t.Size
		}
	}
	// The order names the new boxes first, then those fetching, then the
	// holders renewing, each group by rank, up to MaxOrderBoxes.
	named := slices.Clone(t.Assigned)
	for _, group := range [][]peer.ID{s.fetching, s.renew} {
		for _, id := range rank(t.Root, slices.Clone(group), byID) {
			if len(named) < MaxOrderBoxes && !slices.Contains(named, id) {
				named = append(named, id)
			}
		}
	}
	if t.Reason == ReasonPrewarm && len(named) > t.prewarmed {
		// The ledger refuses a pre-warm order naming more boxes than the
		// pre-warm asks for: keep the new boxes, then those that hold it,
		// then those fetching it.
		named = slices.Clone(t.Assigned[:min(len(t.Assigned), t.prewarmed)])
		for _, group := range [][]peer.ID{s.renew, s.fetching} {
			for _, id := range rank(t.Root, slices.Clone(group), byID) {
				if len(named) < t.prewarmed && !slices.Contains(named, id) {
					named = append(named, id)
				}
			}
		}
	}
	slices.Sort(named)
	t.Boxes = named
	t.Assigned = slices.Clone(t.Assigned)
	slices.Sort(t.Assigned)
}

// rank sorts ids by their rendezvous score for root, best first.
func rank(root cid.Cid, ids []peer.ID, byID map[peer.ID]*Report) []peer.ID {
	scores := make(map[peer.ID]float64, len(ids))
	for _, id := range ids {
		scores[id] = score(root, id, weight(byID[id]))
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := scores[ids[i]], scores[ids[j]]
		if a != b {
			return a > b
		}
		return ids[i] < ids[j]
	})
	return ids
}

// score is the weighted rendezvous (highest random weight) score of box id
// for root: -w / ln(u), with u uniform in (0, 1) from SHA-256(root || id).
// A box of weight w wins a root w times as often as a box of weight 1.
// u takes the hash's first 53 bits so that it is exact in a float64 and
// never 0 or 1.
func score(root cid.Cid, id peer.ID, w float64) float64 {
	h := sha256.New()
	h.Write(root.Bytes())
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	x := binary.BigEndian.Uint64(h.Sum(sum[:0])[:8])
	u := (float64(x>>11) + 0.5) / (1 << 53)
	return -w / math.Log(u)
}

// weight is a box's capacity weight: its quota in GiB, at least 1 and at
// most maxWeight; an unlimited quota counts as maxWeight.
func weight(r *Report) float64 {
	if r == nil || r.Quota == 0 {
		return maxWeight
	}
	return min(maxWeight, max(1, float64(r.Quota)/(1<<30)))
}

func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}
