package heat

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

const gib = 1 << 30

// fleet is a set of boxes and their reports for one Plan call.
type fleet struct {
	t       *testing.T
	boxes   []party
	reports []*Report
}

func newFleet(t *testing.T, n int, epoch uint64) *fleet {
	f := &fleet{t: t, boxes: newParties(t, n)}
	for _, b := range f.boxes {
		f.reports = append(f.reports, &Report{Network: testNetwork, Reporter: b.ID, Epoch: epoch, Quota: 10 * gib, Used: gib})
	}
	return f
}

func (f *fleet) id(i int) peer.ID { return f.boxes[i].ID }

func (f *fleet) ids(is ...int) []peer.ID {
	out := make([]peer.ID, 0, len(is))
	for _, i := range is {
		out = append(out, f.id(i))
	}
	slices.Sort(out)
	return out
}

func (f *fleet) index(id peer.ID) int {
	return slices.IndexFunc(f.boxes, func(p party) bool { return p.ID == id })
}

// uncapped is DefaultParams with no cap on what one report counts for a
// root: the tests of the other rules make a root hot from one report.
func uncapped() Params {
	p := DefaultParams()
	p.MaxReporterRequests = math.MaxUint32
	return p
}

func sorted(ids []peer.ID) bool {
	return slices.IsSorted(ids) && len(slices.Compact(slices.Clone(ids))) == len(ids)
}

func TestPlanHotRoot(t *testing.T) {
	const epoch = 50
	f := newFleet(t, 14, epoch)
	hot := root(t, "hot")
	f.reports[0].Heat = []RootHeat{{Root: hot, Requests: 8, Bytes: 1200}}
	f.reports[1].Heat = []RootHeat{{Root: hot, Requests: 8, Bytes: 800}}
	f.reports[2].Heat = []RootHeat{{Root: hot, Requests: 4}} // 20 requests: target 5
	f.reports[0].Held = []Holding{{Root: hot, Size: 4 << 20}}
	f.reports[1].Held = []Holding{{Root: hot, Size: 4 << 20}}
	f.reports[2].Quota, f.reports[2].Used = 10*gib, 10*gib                        // full
	f.reports[3].Quota, f.reports[3].Used = 10*gib, 10*gib-1<<20                  // no room for 4 MiB
	f.reports[4].Epoch = epoch - 3                                                // unreachable
	f.reports[5].Orders = []OrderStatus{{Root: hot, State: OrderDeclined}}        // declined
	f.reports[6].Orders = []OrderStatus{{Root: hot, State: OrderFailed}}          // failed
	f.reports[7].Orders = []OrderStatus{{Root: root(t, "x"), State: OrderFailed}} // failed something else: eligible
	eligible := f.ids(7, 8, 9, 10, 11, 12, 13)

	targets := Plan(uncapped(), epoch, f.reports, nil)
	if len(targets) != 1 {
		t.Fatalf("%d targets, want 1: %+v", len(targets), targets)
	}
	tg := targets[0]
	if tg.Root != hot || tg.Reason != ReasonHeat || tg.Requests != 20 || tg.Bytes != 2000 ||
		tg.Replicas != 5 || tg.Size != 4<<20 || tg.Until != epoch+6 {
		t.Fatalf("target %+v", tg)
	}
	if !reflect.DeepEqual(tg.Holders, f.ids(0, 1)) {
		t.Errorf("holders %v", tg.Holders)
	}
	if len(tg.Assigned) != 3 || !sorted(tg.Assigned) {
		t.Fatalf("assigned %v, want target 5 - 2 holders = 3", tg.Assigned)
	}
	for _, id := range tg.Assigned {
		if !slices.Contains(eligible, id) {
			t.Errorf("assigned ineligible box %d", f.index(id))
		}
	}
	if !reflect.DeepEqual(tg.Boxes, tg.Assigned) {
		t.Errorf("boxes %v, want only the assigned (no holder renews)", tg.Boxes)
	}

	// The assigned boxes report fetching next epoch: nothing new is assigned
	// and the order keeps naming them.
	for _, id := range tg.Assigned {
		r := f.reports[f.index(id)]
		r.Orders = append(r.Orders, OrderStatus{Root: hot, State: OrderFetching})
	}
	next := Plan(uncapped(), epoch, f.reports, nil)[0]
	if len(next.Assigned) != 0 || !reflect.DeepEqual(next.Boxes, tg.Assigned) {
		t.Errorf("with the assigned boxes fetching: assigned %v, boxes %v", next.Assigned, next.Boxes)
	}
}

func TestPlanTooFewCandidates(t *testing.T) {
	f := newFleet(t, 4, 10)
	hot := root(t, "hot")
	f.reports[0].Heat = []RootHeat{{Root: hot, Requests: 1000}} // target = Ceiling
	tg := Plan(uncapped(), 10, f.reports, nil)[0]
	if tg.Replicas != uncapped().Ceiling || len(tg.Assigned) != 4 {
		t.Fatalf("replicas %d, assigned %d of 4 boxes", tg.Replicas, len(tg.Assigned))
	}
}

func TestPlanColdRootsGetNothing(t *testing.T) {
	f := newFleet(t, 5, 10)
	f.reports[0].Heat = []RootHeat{{Root: root(t, "a"), Requests: 4}, {Root: root(t, "b"), Requests: 7}}
	f.reports[1].Heat = []RootHeat{{Root: root(t, "a"), Requests: 3}}
	f.reports[2].Held = []Holding{{Root: root(t, "c"), Size: 1}}
	stale := &Report{Reporter: f.id(3), Epoch: 1, Heat: []RootHeat{{Root: root(t, "d"), Requests: 1000}}}
	expired := Prewarm{Root: root(t, "e"), Replicas: 3, Until: 9}
	if got := Plan(uncapped(), 10, append(f.reports[:3:3], stale), []Prewarm{expired}); len(got) != 0 {
		t.Fatalf("cold roots planned: %+v", got)
	}
}

func TestPlanPrewarm(t *testing.T) {
	f := newFleet(t, 10, 20)
	pw := Prewarm{Root: root(t, "launch"), Replicas: 4, Until: 40, Size: 1 << 20}
	targets := Plan(uncapped(), 20, f.reports, []Prewarm{pw})
	if len(targets) != 1 {
		t.Fatalf("targets %+v", targets)
	}
	tg := targets[0]
	if tg.Reason != ReasonPrewarm || tg.Replicas != 4 || tg.Until != 40 || tg.Size != 1<<20 || len(tg.Assigned) != 4 {
		t.Fatalf("prewarm target %+v", tg)
	}
	// Heat above the prewarm raises the target; the prewarm's Until holds.
	f.reports[0].Heat = []RootHeat{{Root: pw.Root, Requests: 36}} // 9 replicas
	tg = Plan(uncapped(), 20, f.reports, []Prewarm{pw})[0]
	if tg.Replicas != 9 || tg.Until != 40 || tg.Reason != ReasonPrewarm {
		t.Fatalf("hot prewarmed root %+v", tg)
	}
	// Capped at Ceiling.
	pw.Replicas = 1000
	if tg = Plan(uncapped(), 20, f.reports, []Prewarm{pw})[0]; tg.Replicas != uncapped().Ceiling {
		t.Fatalf("replicas %d over the ceiling", tg.Replicas)
	}
	// A pre-warm that ends further out than boxes take an order for (its
	// block's epoch was ahead of this one) is ordered as far as they take.
	pw.Until = 20 + MaxPrewarmOrderEpochs + 100
	if tg = Plan(uncapped(), 20, f.reports, []Prewarm{pw})[0]; tg.Until != 20+MaxPrewarmOrderEpochs {
		t.Fatalf("until %d, want the order's limit %d", tg.Until, 20+MaxPrewarmOrderEpochs)
	}
}

func TestPlanRenewals(t *testing.T) {
	const epoch = 30
	f := newFleet(t, 8, epoch)
	hot := root(t, "hot")
	f.reports[0].Heat = []RootHeat{{Root: hot, Requests: 12}} // target 3
	for _, i := range []int{1, 2, 3} {
		f.reports[i].Held = []Holding{{Root: hot, Size: 100}}
	}
	f.reports[1].Orders = []OrderStatus{{Root: hot, State: OrderHeld}}
	f.reports[2].Orders = []OrderStatus{{Root: hot, State: OrderHeld}}
	// Box 4 holds it under an order but lists too many roots to name it in Held.
	f.reports[4].Orders = []OrderStatus{{Root: hot, State: OrderHeld}}
	tg := Plan(uncapped(), epoch, f.reports, nil)[0]
	if !reflect.DeepEqual(tg.Holders, f.ids(1, 2, 3, 4)) {
		t.Errorf("holders %v", tg.Holders)
	}
	if len(tg.Assigned) != 0 {
		t.Errorf("assigned %v with four holders for a target of three", tg.Assigned)
	}
	if !reflect.DeepEqual(tg.Boxes, f.ids(1, 2, 4)) {
		t.Errorf("boxes %v, want the holders with OrderHeld", tg.Boxes)
	}
	if tg.Until != epoch+uncapped().Lifetime {
		t.Errorf("until %d", tg.Until)
	}
	o := tg.Order(testNetwork, "", epoch)
	issuer := newParty(t)
	if err := o.Sign(testNetwork, issuer.Key); err != nil {
		t.Fatal(err)
	}
	if err := CheckOrder(o, testNetwork, members(issuer), epoch, 0); err != nil {
		t.Fatalf("the target's order: %v", err)
	}
	if !o.Names(f.id(1)) || o.Names(f.id(3)) {
		t.Error("order names the wrong boxes")
	}
}

func TestPlanFreeSpaceAcrossRoots(t *testing.T) {
	const epoch = 5
	f := newFleet(t, 2, epoch)
	a, b := root(t, "a"), root(t, "b")
	f.reports[0].Heat = []RootHeat{{Root: a, Requests: 9}, {Root: b, Requests: 8}}
	f.reports[0].Held = []Holding{{Root: a, Size: 100}, {Root: b, Size: 100}}
	f.reports[1].Quota, f.reports[1].Used = 1000, 850 // room for one
	p := uncapped()
	p.Floor = 2
	targets := Plan(p, epoch, f.reports, nil)
	if len(targets) != 2 || targets[0].Root != a {
		t.Fatalf("targets %+v", targets)
	}
	if !reflect.DeepEqual(targets[0].Assigned, f.ids(1)) || len(targets[1].Assigned) != 0 {
		t.Fatalf("hotter root assigned %v, colder %v: box 1 has room for one", targets[0].Assigned, targets[1].Assigned)
	}
}

func TestPlanMaxTargets(t *testing.T) {
	f := newFleet(t, 20, 5)
	for i := range 10 {
		f.reports[0].Heat = append(f.reports[0].Heat, RootHeat{Root: root(t, i), Requests: uint64(10 + i)})
	}
	p := uncapped()
	p.MaxTargets = 3
	targets := Plan(p, 5, f.reports, nil)
	if len(targets) != 3 {
		t.Fatalf("%d targets, the limit is 3", len(targets))
	}
	for i, tg := range targets {
		if tg.Root != root(t, 9-i) {
			t.Errorf("target %d is %v, want the hottest first", i, tg.Root)
		}
	}
}

func TestPlanDeterministic(t *testing.T) {
	const epoch = 100
	f := newFleet(t, 40, epoch)
	rng := rand.New(rand.NewPCG(1, 2))
	var prewarms []Prewarm
	for i, r := range f.reports {
		r.Quota = uint64(1+rng.IntN(50)) * gib
		r.Used = uint64(rng.Int64N(int64(r.Quota)))
		for j := range 20 {
			c := root(t, rng.IntN(60))
			if !slices.ContainsFunc(r.Heat, func(h RootHeat) bool { return h.Root == c }) {
				r.Heat = append(r.Heat, RootHeat{Root: c, Requests: uint64(rng.IntN(10)), Bytes: uint64(j)})
			}
			if rng.IntN(4) == 0 && !slices.ContainsFunc(r.Held, func(h Holding) bool { return h.Root == c }) {
				r.Held = append(r.Held, Holding{Root: c, Size: uint64(rng.IntN(1 << 20))})
			}
		}
		if i%7 == 0 {
			prewarms = append(prewarms, Prewarm{Root: root(t, 100+i), Replicas: 3, Until: epoch + 5})
		}
	}
	// An older report of the same box must lose to the newer.
	old := *f.reports[0]
	old.Epoch = epoch - 1
	old.Heat = []RootHeat{{Root: root(t, "old"), Requests: 1000}}
	reports := append(slices.Clone(f.reports), &old)

	want := Plan(uncapped(), epoch, reports, prewarms)
	if len(want) == 0 {
		t.Fatal("nothing planned")
	}
	for _, tg := range want {
		if tg.Root == old.Heat[0].Root {
			t.Fatal("a superseded report was planned")
		}
		if !sorted(tg.Holders) || !sorted(tg.Boxes) || !sorted(tg.Assigned) {
			t.Fatalf("unsorted lists in %+v", tg)
		}
	}
	for i := range 5 {
		rng.Shuffle(len(reports), func(a, b int) { reports[a], reports[b] = reports[b], reports[a] })
		rng.Shuffle(len(prewarms), func(a, b int) { prewarms[a], prewarms[b] = prewarms[b], prewarms[a] })
		if got := Plan(uncapped(), epoch, reports, prewarms); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: a different plan", i)
		}
	}
}

func TestPlanCapacityWeighted(t *testing.T) {
	const epoch, roots = 7, 2000
	f := newFleet(t, 8, epoch)
	for i, r := range f.reports {
		r.Quota, r.Used = gib, 0 // boxes 0-3: 1 GiB
		if i >= 4 {
			r.Quota = 4 * gib // boxes 4-7: 4 GiB
		}
	}
	var prewarms []Prewarm
	for i := range roots {
		prewarms = append(prewarms, Prewarm{Root: root(t, i), Replicas: 1, Until: epoch})
	}
	p := uncapped()
	p.Floor, p.MaxTargets = 1, roots
	count := make(map[peer.ID]int)
	for _, tg := range Plan(p, epoch, f.reports, prewarms) {
		if len(tg.Assigned) != 1 {
			t.Fatalf("root assigned to %d boxes, want 1", len(tg.Assigned))
		}
		count[tg.Assigned[0]]++
	}
	var small, big int
	for i, b := range f.boxes {
		if i < 4 {
			small += count[b.ID]
		} else {
			big += count[b.ID]
		}
	}
	ratio := float64(big) / float64(small)
	t.Logf("4 GiB boxes took %d roots, 1 GiB boxes %d: ratio %.2f", big, small, ratio)
	if ratio < 3 || ratio > 5 {
		t.Fatalf("capacity ratio 4, assignment ratio %.2f", ratio)
	}
	// An unlimited quota weighs as 1 TiB: it takes nearly everything.
	f.reports[0].Quota = 0
	count = make(map[peer.ID]int)
	for _, tg := range Plan(p, epoch, f.reports, prewarms) {
		count[tg.Assigned[0]]++
	}
	if c := count[f.id(0)]; c < roots*9/10 {
		t.Fatalf("the unlimited box took %d of %d roots", c, roots)
	}
}

func TestScoreBounded(t *testing.T) {
	// u is never 0 or 1, so scores are finite and positive.
	f := newFleet(t, 50, 0)
	for i := range 200 {
		for _, b := range f.boxes {
			if s := score(root(t, i), b.ID, 1); !(s > 0) || math.IsInf(s, 0) {
				t.Fatalf("score %v", s)
			}
		}
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, edit := range map[string]func(*Params){
		"floor 0":            func(p *Params) { p.Floor = 0 },
		"ceiling below":      func(p *Params) { p.Ceiling = p.Floor - 1 },
		"ceiling over order": func(p *Params) { p.Ceiling = MaxOrderBoxes + 1 },
		"hot 0":              func(p *Params) { p.HotRequests = 0 },
		"hot NaN":            func(p *Params) { p.HotRequests = math.NaN() },
		"per replica 0":      func(p *Params) { p.RequestsPerReplica = 0 },
		"per replica inf":    func(p *Params) { p.RequestsPerReplica = math.Inf(1) },
		"lifetime 0":         func(p *Params) { p.Lifetime = 0 },
		"lifetime over cap":  func(p *Params) { p.Lifetime = MaxHeatOrderEpochs + 1 },
		"max targets 0":      func(p *Params) { p.MaxTargets = 0 },
		"reporter cap 0.5":   func(p *Params) { p.MaxReporterRequests = 0.5 },
		"reporter cap NaN":   func(p *Params) { p.MaxReporterRequests = math.NaN() },
		"reporter cap -1":    func(p *Params) { p.MaxReporterRequests = -1 },
	} {
		p := uncapped()
		edit(&p)
		if err := p.Validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: %v", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Plan with invalid params did not panic")
		}
	}()
	Plan(Params{}, 0, nil, nil)
}

// natFleet: box 0 asks for hot (20 requests: a target of 5 replicas);
// boxes 1-6 are behind symmetric NATs, of which 1 and 2 hold hot, 3 holds
// it under an order and 4 is fetching it; boxes 7-11 are the only others
// with room (box 0 is full).
func natFleet(t *testing.T, asker Reach) (*fleet, []peer.ID) {
	const epoch = 10
	f := newFleet(t, 12, epoch)
	hot := root(t, "hot")
	f.reports[0].Heat = []RootHeat{{Root: hot, Requests: 20}}
	f.reports[0].Reach = asker
	f.reports[0].Used = f.reports[0].Quota
	for i := 1; i <= 6; i++ {
		f.reports[i].Reach = ReachSymmetric
	}
	f.reports[1].Held = []Holding{{Root: hot, Size: 1 << 20}}
	f.reports[2].Held = []Holding{{Root: hot, Size: 1 << 20}}
	f.reports[3].Orders = []OrderStatus{{Root: hot, State: OrderHeld}}
	f.reports[4].Orders = []OrderStatus{{Root: hot, State: OrderFetching}}
	for i := 7; i <= 11; i++ {
		f.reports[i].Reach = []Reach{ReachDirect, ReachNAT, ReachUnknown}[i%3]
	}
	return f, f.ids(7, 8, 9, 10, 11)
}

// TestPlanSymmetricNATNoSourceForNATedBoxes: a root a box behind a NAT
// asked for is placed on boxes every box reaches: the boxes behind
// symmetric NATs that hold it, hold it under an order or fetch it count
// for nothing, are not renewed, and none is assigned it.
func TestPlanSymmetricNATNoSourceForNATedBoxes(t *testing.T) {
	for _, asker := range []Reach{ReachNAT, ReachSymmetric, ReachUnknown} {
		t.Run(asker.String(), func(t *testing.T) {
			f, open := natFleet(t, asker)
			tg := Plan(uncapped(), 10, f.reports, nil)[0]
			if !tg.NATDemand || tg.Replicas != 5 {
				t.Fatalf("target %+v, want NATDemand and 5 replicas", tg)
			}
			if len(tg.Holders) != 0 {
				t.Errorf("holders %v: boxes behind symmetric NATs counted", tg.Holders)
			}
			if !reflect.DeepEqual(tg.Assigned, open) || !reflect.DeepEqual(tg.Boxes, open) {
				t.Errorf("assigned %v, boxes %v; want exactly the 5 open boxes %v", tg.Assigned, tg.Boxes, open)
			}
		})
	}
}

// TestPlanSymmetricNATServesDirectBoxes: a root only directly reachable
// boxes asked for (they reach a box behind a symmetric NAT through a
// relay, and it dials them back) counts that box's replicas, renews its
// order and may assign it; once a box behind a NAT asks for it too, or a
// pre-warm covers it, it does not.
func TestPlanSymmetricNATServesDirectBoxes(t *testing.T) {
	f, _ := natFleet(t, ReachDirect)
	tg := Plan(uncapped(), 10, f.reports, nil)[0]
	if tg.NATDemand {
		t.Fatal("NATDemand with only a directly reachable box asking")
	}
	if !reflect.DeepEqual(tg.Holders, f.ids(1, 2, 3)) {
		t.Errorf("holders %v, want the boxes behind symmetric NATs that hold it", tg.Holders)
	}
	if len(tg.Assigned) != 1 {
		t.Errorf("assigned %v, want 5 - 3 holders - 1 fetching = 1", tg.Assigned)
	}
	if want := f.ids(3, 4, f.index(tg.Assigned[0])); len(tg.Assigned) == 1 && !reflect.DeepEqual(tg.Boxes, want) {
		t.Errorf("boxes %v, want the renewal, the fetching box and the assigned one %v", tg.Boxes, want)
	}

	// A box behind a NAT asks too.
	hot := f.reports[0].Heat[0].Root
	f.reports[7].Heat = []RootHeat{{Root: hot, Requests: 1}}
	if tg := Plan(uncapped(), 10, f.reports, nil)[0]; !tg.NATDemand || len(tg.Holders) != 0 {
		t.Errorf("a NATed asker more: NATDemand %v, holders %v", tg.NATDemand, tg.Holders)
	}
	// A pre-warm covers it.
	f.reports[7].Heat = nil
	pw := Prewarm{Root: hot, Replicas: 3, Until: 20}
	if tg := Plan(uncapped(), 10, f.reports, []Prewarm{pw})[0]; !tg.NATDemand || len(tg.Holders) != 0 {
		t.Errorf("pre-warmed: NATDemand %v, holders %v", tg.NATDemand, tg.Holders)
	}
}

// TestPlanOneReporterReachesTheFloor: a box that claims a trillion
// requests for a root (a junk root nobody asked for) makes it hot with the
// floor's replicas, not the ceiling's; the same claim from more boxes adds
// MaxReporterRequests each.
func TestPlanOneReporterReachesTheFloor(t *testing.T) {
	const epoch = 50
	p := DefaultParams()
	f := newFleet(t, 20, epoch)
	junk := root(t, "junk")
	f.reports[0].Heat = []RootHeat{{Root: junk, Requests: 1e12, Bytes: math.MaxUint64}}
	targets := Plan(p, epoch, f.reports, nil)
	if len(targets) != 1 || targets[0].Requests != p.MaxReporterRequests || targets[0].Replicas != p.Floor {
		t.Fatalf("one liar: %+v, want %v requests and the floor's %d replicas", targets, p.MaxReporterRequests, p.Floor)
	}
	for i := 1; i < 4; i++ {
		f.reports[i].Heat = []RootHeat{{Root: junk, Requests: 1e12}}
	}
	targets = Plan(p, epoch, f.reports, nil)
	if want := 4 * p.MaxReporterRequests; len(targets) != 1 || targets[0].Requests != want || targets[0].Replicas != int(want/p.RequestsPerReplica) {
		t.Fatalf("four liars: %+v, want %v requests, %v replicas", targets, want, want/p.RequestsPerReplica)
	}
	p.MaxReporterRequests = 0 // the default: HotRequests
	if got := Plan(p, epoch, f.reports, nil); len(got) != 1 || got[0].Requests != 4*p.HotRequests {
		t.Fatalf("cap 0: %+v, want %v requests", got, 4*p.HotRequests)
	}
}

// TestPlanHugeQuotaDoesNotWinEverything: a box that claims a quota of
// 2^64−1 bytes weighs what an unlimited box weighs, so it is not assigned
// every root.
func TestPlanHugeQuotaDoesNotWinEverything(t *testing.T) {
	const epoch = 50
	if weight(&Report{Quota: math.MaxUint64}) != weight(&Report{}) {
		t.Fatalf("weight of a 2^64-1 quota %v, of an unlimited one %v", weight(&Report{Quota: math.MaxUint64}), weight(&Report{}))
	}
	f := newFleet(t, 12, epoch)
	for _, r := range f.reports {
		r.Quota, r.Used = 0, 0 // unlimited
	}
	f.reports[0].Quota = math.MaxUint64
	var reporters []*Report
	const roots = 40
	for i := range roots {
		f.reports[1+i%11].Heat = append(f.reports[1+i%11].Heat, RootHeat{Root: root(t, i), Requests: 8})
	}
	reporters = f.reports
	won := 0
	for _, tg := range Plan(DefaultParams(), epoch, reporters, nil) {
		if slices.Contains(tg.Assigned, f.id(0)) {
			won++
		}
	}
	// Each root takes 3 of 12 equal boxes: about 10 of 40 each.
	if won > roots/2 {
		t.Fatalf("the box claiming a 2^64-1 quota was assigned %d of %d roots", won, roots)
	}
}
