package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

const schedEpoch = time.Second

// schedNet is a ledger network of n boxes: 0-2 coordinate, 3 publishes.
func schedNet(t *testing.T, n int, p heat.Params) *testnet.Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := testnet.New(ctx, n, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithSchedule(p), node.WithStallTimeout(10*time.Second)),
		testnet.WithLedger(testnet.LedgerSpec{
			Coordinators: []int{0, 1, 2},
			Balances:     map[int]uint64{3: 1000 * 1_000_000_000},
			EpochLength:  schedEpoch,
			Network:      "ore-sched-test",
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
	})
	return nw
}

// holding lists the boxes that hold root whole, and those holding it
// under a replication order.
func holding(t *testing.T, nw *testnet.Network, root cid.Cid) (all, ordered []int) {
	t.Helper()
	for i, n := range nw.Nodes {
		roots, err := n.Roots(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roots {
			if r.Root != root || r.Size == 0 {
				continue
			}
			all = append(all, i)
			if r.Order == heat.OrderHeld.String() {
				ordered = append(ordered, i)
			}
		}
	}
	return all, ordered
}

// leaderTarget is the leader's latest target for root.
func leaderTarget(t *testing.T, nw *testnet.Network, root cid.Cid) (heat.Target, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	i, err := nw.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, targets, err := nw.Nodes[i].ReplicaTargets()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Root == root {
			return tg, true
		}
	}
	return heat.Target{}, false
}

func indexes(nw *testnet.Network, ids []peer.ID) []int {
	var out []int
	for i, n := range nw.Nodes {
		if slices.Contains(ids, n.ID()) {
			out = append(out, i)
		}
	}
	return out
}

// TestHotRootGetsReplicas: requests make a root hot; the committee's
// leader orders replicas up to the target and the ordered boxes fetch,
// hold and announce it.
func TestHotRootGetsReplicas(t *testing.T) {
	p := heat.DefaultParams()
	p.Floor, p.Ceiling, p.HotRequests, p.RequestsPerReplica = 3, 4, 3, 1
	nw := schedNet(t, 8, p)
	ctx := testCtx(t)
	path, _ := randomFile(t, 1<<20)
	res, err := nw.Nodes[3].AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	root := res.Root
	for i := 0; i < 4; i++ { // four requests through box 4: hot, target 4
		if _, err := nw.Nodes[4].Fetch(ctx, root, nil); err != nil {
			t.Fatal(err)
		}
	}
	hot := time.Now()
	var all, ordered []int
	if !testkit.Eventually(30*time.Second, func() bool {
		all, ordered = holding(t, nw, root)
		return len(all) >= 4 && len(ordered) >= 2
	}) {
		t.Fatalf("replicas: %v hold the root (%v under orders); want 4, 2 of them ordered", all, ordered)
	}
	t.Logf("4 replicas %.1f epochs after the root became hot: %v (ordered %v)", time.Since(hot).Seconds()/schedEpoch.Seconds(), all, ordered)
	if !slices.Contains(all, 3) || !slices.Contains(all, 4) {
		t.Fatalf("publisher and requester should hold it: %v", all)
	}
	tg, ok := leaderTarget(t, nw, root)
	if !ok {
		t.Fatal("the leader has no target for the hot root")
	}
	if tg.Replicas != 4 || tg.Reason != heat.ReasonHeat {
		t.Fatalf("target %+v, want 4 replicas for heat", tg)
	}
	if got := indexes(nw, tg.Boxes); !slices.Equal(got, ordered) {
		t.Fatalf("the leader's order names boxes %v; boxes %v hold it under an order", got, ordered)
	}
	// The replicas serve it: a new box finds them in the DHT.
	provs := 0
	for range nw.Nodes[7].DHT().FindProvidersAsync(ctx, root, 10) {
		provs++
	}
	if provs < 3 {
		t.Fatalf("the DHT lists %d providers of the hot root, want at least 3", provs)
	}
}

// TestPrewarmStoresBeforeFirstRequest: a publisher's pre-warm order on the
// ledger makes the committee place replicas before anyone asks.
func TestPrewarmStoresBeforeFirstRequest(t *testing.T) {
	nw := schedNet(t, 7, heat.DefaultParams())
	ctx := testCtx(t)
	pub := nw.Nodes[3]
	path, _ := randomFile(t, 1<<20)
	res, err := pub.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := node.LoadIdentity(nw.Dirs[3])
	if err != nil {
		t.Fatal(err)
	}
	until := pub.Network().EpochAt(time.Now()) + 60
	reg, err := pub.RegisterTx(ctx, res.Root, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	reg.From, reg.Nonce = pub.ID(), 2
	for i, tx := range []ledger.Tx{
		ledger.NewDeposit(pub.ID(), 1, 100_000_000_000),
		reg,
		ledger.NewPrewarm(pub.ID(), 3, res.Root, 3, until),
	} {
		if err := tx.Sign(nw.Genesis.Network, key); err != nil {
			t.Fatal(err)
		}
		if err := pub.SubmitTx(ctx, tx); err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	var all, ordered []int
	if !testkit.Eventually(30*time.Second, func() bool {
		all, ordered = holding(t, nw, res.Root)
		return len(all) >= 3 && len(ordered) >= 2
	}) {
		t.Fatalf("after the pre-warm, boxes %v hold the root (%v under orders); want 3", all, ordered)
	}
	// The leader's plan holds the pre-warm from the epoch that placed it;
	// on a loaded machine an election may have made a member leader that
	// has not planned yet: wait for a leader's plan, not the first answer.
	var tg heat.Target
	var ok bool
	if !testkit.Eventually(30*time.Second, func() bool { tg, ok = leaderTarget(t, nw, res.Root); return ok }) {
		t.Fatal("no leader's plan names the pre-warmed root")
	}
	if tg.Reason != heat.ReasonPrewarm || tg.Replicas != 3 {
		t.Fatalf("leader's target %+v, want a pre-warm of 3", tg)
	}
	if tg.Until != until {
		t.Fatalf("order until epoch %d, the pre-warm says %d", tg.Until, until)
	}
	for _, i := range ordered {
		roots, _ := nw.Nodes[i].Roots(ctx)
		for _, r := range roots {
			if r.Root == res.Root && r.Requests != 0 {
				t.Fatalf("box %d saw requests for the pre-warmed root: %+v", i, r)
			}
		}
	}
	// The ordered boxes' fetches are paid from what the pre-warm reserved
	// (rules 4): the reservation shrinks by what the ledger paid their
	// servers, and the ledger recorded the order that names them.
	lead, err := nw.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var reserved, left uint64
	if !testkit.Eventually(30*time.Second, func() bool {
		st := nw.Nodes[lead].Committee().State()
		pw, ok := st.Prewarm(res.Root)
		reg, registered := st.RegistrationOf(pub.ID(), res.Root)
		if !ok || !registered {
			return false
		}
		reserved, left = ledger.Reservation(reg, pw.Replicas), pw.Reserved
		_, _, _, _, boxes, recorded := st.Order(res.Root)
		return recorded && len(boxes) >= 2 && left < reserved
	}) {
		t.Fatalf("no replication paid from the pre-warm's reservation (%d of %d left)", left, reserved)
	}
}
