package heat

import (
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A fake holder of a root it cannot prove keeps no honest box from being
// ordered once the plan believes only backed holdings, and a box the
// ledger revoked is not chosen again.
func TestPlanBelievesOnlyBackedHoldings(t *testing.T) {
	p := DefaultParams()
	p.Floor, p.Ceiling = 3, 3
	offered := root(t, "offered")
	var ids []peer.ID
	for _, q := range newParties(t, 6) {
		ids = append(ids, q.ID)
	}
	liar, revoked := ids[0], ids[1]
	var reports []*Report
	for i, id := range ids {
		r := &Report{Reporter: id, Epoch: 10, Reach: ReachDirect}
		switch i {
		case 0: // claims to hold it under an order, never proved it
			r.Orders = []OrderStatus{{Root: offered, State: OrderHeld}}
			r.Held = []Holding{{Root: offered, Size: 1 << 20}}
		case 1: // held it, missed its proofs, revoked
			r.Held = []Holding{{Root: offered, Size: 1 << 20}}
		}
		reports = append(reports, r)
	}
	pw := []Prewarm{{Root: offered, Replicas: 3, Until: 100}}
	naive := Plan(p, 10, reports, pw)[0]
	if !slices.Contains(naive.Holders, liar) || !slices.Contains(naive.Holders, revoked) {
		t.Fatalf("the naive plan's holders %v: the test's premise fails", naive.Holders)
	}
	backing := func(box peer.ID, r cid.Cid) Backing {
		switch box {
		case liar:
			return Unproven
		case revoked:
			return Revoked
		}
		return Backed
	}
	got := Plan(p, 10, Back(reports, backing), pw)[0]
	if len(got.Holders) != 0 {
		t.Fatalf("unbacked holders counted: %v", got.Holders)
	}
	if slices.Contains(got.Boxes, revoked) {
		t.Fatalf("the revoked box is on the order again: %v", got.Boxes)
	}
	if !slices.Contains(got.Boxes, liar) || len(got.Assigned) != 2 {
		t.Fatalf("the unproven box stays on the order as a fetcher and 2 boxes are assigned: boxes %v, assigned %v", got.Boxes, got.Assigned)
	}
	// The reports handed in are not changed.
	if reports[0].Orders[0].State != OrderHeld || len(reports[1].Held) != 1 {
		t.Fatal("Back changed its input")
	}
}

// A pre-warm order never names more boxes than its replicas (the ledger
// refuses one that does), however many boxes report holding or fetching
// the root under an older order: unproven holders become fetchers, and
// there may be many.
func TestPrewarmOrderNamesAtMostItsReplicas(t *testing.T) {
	p := DefaultParams()
	offered := root(t, "offered")
	var reports []*Report
	for _, q := range newParties(t, 8) {
		reports = append(reports, &Report{Reporter: q.ID, Epoch: 30, Reach: ReachDirect,
			Orders: []OrderStatus{{Root: offered, State: OrderHeld}}})
	}
	pw := []Prewarm{{Root: offered, Replicas: 4, Until: 300}}
	for name, rs := range map[string][]*Report{
		"as reported": reports,
		"unproven":    Back(reports, func(peer.ID, cid.Cid) Backing { return Unproven }),
	} {
		got := Plan(p, 30, rs, pw)
		if len(got) != 1 || len(got[0].Boxes) != 4 {
			t.Fatalf("%s: the pre-warm order names %d boxes, it asks for 4", name, len(got[0].Boxes))
		}
	}
}

// Boxes that proved an offered root stay on its order even when they
// hold it outside any order (else no challenge names them, and their pay
// stops), ahead of unproven ones when the pre-warm has fewer replicas.
func TestProvenHoldersStayOnTheOrder(t *testing.T) {
	p := DefaultParams()
	offered := root(t, "offered")
	parties := newParties(t, 6)
	var reports []*Report
	for _, q := range parties {
		reports = append(reports, &Report{Reporter: q.ID, Epoch: 30, Reach: ReachDirect, Held: []Holding{{Root: offered, Size: 1 << 20}}})
	}
	unproven := parties[0].ID
	reports[0].Held, reports[0].Orders = nil, []OrderStatus{{Root: offered, State: OrderHeld}}
	backing := func(box peer.ID, _ cid.Cid) Backing {
		if box == unproven {
			return Unproven
		}
		return Proven
	}
	got := Plan(p, 30, Back(reports, backing), []Prewarm{{Root: offered, Replicas: 4, Until: 300}})[0]
	if len(got.Boxes) != 4 || slices.Contains(got.Boxes, unproven) || len(got.Assigned) != 0 {
		t.Fatalf("order names %v (assigned %v): want 4 proven holders, not the unproven box", got.Boxes, got.Assigned)
	}
	// As reported, the holders outside an order are not named at all.
	if naive := Plan(p, 30, reports, []Prewarm{{Root: offered, Replicas: 4, Until: 300}})[0]; len(naive.Boxes) > 1 {
		t.Fatalf("the naive plan names %v: the test's premise fails", naive.Boxes)
	}
}

// A hot root with a smaller pre-warm: heat asks for more replicas than the
// pre-warm, but the pre-warm order names no more boxes than the pre-warm
// asks for (the ledger's bound).
func TestHotPrewarmOrderNamesThePrewarmsReplicas(t *testing.T) {
	p := DefaultParams()
	offered := root(t, "hot and pre-warmed")
	var reports []*Report
	for _, q := range newParties(t, 10) {
		reports = append(reports, &Report{Reporter: q.ID, Epoch: 30, Reach: ReachDirect,
			Heat: []RootHeat{{Root: offered, Requests: 10}}})
	}
	got := Plan(p, 30, reports, []Prewarm{{Root: offered, Replicas: 2, Until: 300}})[0]
	if got.Reason != ReasonPrewarm || got.Replicas <= 2 || len(got.Boxes) != 2 {
		t.Fatalf("target %s of %d replicas names %d boxes, want 2", got.Reason, got.Replicas, len(got.Boxes))
	}
}

// TestVouchLeavesOutUnvouchedDemand: a crowd of reporters without the
// reporter bond that claims demand for a junk root moves nothing; the
// vouched reporters' demand counts, and every reporter's holdings stay.
func TestVouchLeavesOutUnvouchedDemand(t *testing.T) {
	p := DefaultParams()
	junk, hot := root(t, "junk"), root(t, "hot")
	var reports []*Report
	vouched := map[peer.ID]bool{}
	for i, q := range newParties(t, 12) {
		r := &Report{Reporter: q.ID, Epoch: 10, Reach: ReachDirect, Held: []Holding{{Root: hot, Size: 1 << 20}}}
		if i < 8 { // the crowd: no bond
			r.Heat = []RootHeat{{Root: junk, Requests: 1e9}}
		} else {
			vouched[q.ID] = true
			r.Heat = []RootHeat{{Root: hot, Requests: 8}}
		}
		reports = append(reports, r)
	}
	if naive := Plan(p, 10, reports, nil); len(naive) == 0 || naive[0].Root != junk {
		t.Fatalf("the naive plan %+v: the test's premise fails", naive)
	}
	got := Plan(p, 10, Vouch(reports, func(id peer.ID) bool { return vouched[id] }), nil)
	if len(got) != 1 || got[0].Root != hot || got[0].Requests != 32 {
		t.Fatalf("plan %+v, want only the vouched demand (32 requests of hot)", got)
	}
	if len(got[0].Holders) != 12 {
		t.Fatalf("holders %v: holdings of unvouched reporters are not for Vouch to drop", got[0].Holders)
	}
	if reports[0].Heat == nil {
		t.Fatal("Vouch changed its input")
	}
}
