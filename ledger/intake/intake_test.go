package intake

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// meshDeadline bounds a wait for gossip between hosts on loopback: a
// mesh forms on gossipsub's heartbeat, within seconds on an idle machine;
// the deadline is for a hang, sized for a machine that is busy.
const meshDeadline = time.Minute

var params = pod.Params{Network: "ore-test", GenesisTime: time.Unix(1_700_000_000, 0), EpochLength: 10 * time.Second, MaxSkew: 3}

type party = testkit.Party

var newParty = testkit.NewParty

// receipt is srv's receipt to cli for seq MiB in the current epoch, signed
// by both after mutate changed it.
func receipt(t testing.TB, srv, cli party, seq uint64, mutate func(*pod.Receipt)) *pod.Receipt {
	r := &pod.Receipt{Version: pod.Version, Network: params.Network, Epoch: params.EpochAt(time.Now()), Server: srv.ID,
		Client: cli.ID, Root: testkit.Root(t, "root"), Seq: seq, Bytes: seq << 20, Blocks: seq * 4}
	if mutate != nil {
		mutate(r)
	}
	return testkit.Signed(t, r, srv, cli)
}

func newPS(t *testing.T) (host.Host, *pubsub.PubSub) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(context.Background(), h, GossipOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return h, ps
}

func connect(t *testing.T, a, b host.Host) {
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidReceiptsAreNotForwarded(t *testing.T) {
	// attacker — relay — coordinator, in a line. The attacker runs no
	// validator; the relay does and must not forward what breaks the rules.
	ha, psa := newPS(t)
	hb, psb := newPS(t)
	hc, psc := newPS(t)
	connect(t, ha, hb)
	connect(t, hb, hc)
	regB := prometheus.NewRegistry()
	relay, err := New(psb, params, WithRegistry(regB))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	// The relay must also subscribe to forward (mesh membership).
	subB, _ := relay.topic.Subscribe()
	defer subB.Cancel()
	pool := NewPool()
	coord, err := New(psc, params, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	topicA, err := psa.Join(ReceiptsTopic)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the mesh: a→b and b→c.
	testkit.WaitFor(t, meshDeadline, "the gossip mesh a→b→c", func() bool {
		return slices.Contains(topicA.ListPeers(), hb.ID()) && slices.Contains(relay.topic.ListPeers(), hc.ID())
	})
	deadline := time.Now().Add(meshDeadline)
	srv, cli := newParty(t), newParty(t)
	ctx := context.Background()
	// The mesh forms on gossipsub's heartbeat: probe with valid receipts
	// until one reaches the coordinator.
	probe := receipt(t, srv, cli, 1, nil)
	for pool.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no receipt crossed the relay")
		}
		probe = receipt(t, srv, cli, probe.Seq+1, nil)
		if err := topicA.Publish(ctx, encodeBatch([]*pod.Receipt{probe})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool.Done(pool.Pending(probe.Epoch))
	accepted := testutil.ToFloat64(relay.accepted)
	bad := []*pod.Receipt{
		receipt(t, srv, cli, 1, func(r *pod.Receipt) { r.Network = "other" }),
		receipt(t, srv, srv, 1, nil), // self-dealing
		receipt(t, srv, cli, 1, func(r *pod.Receipt) { r.Epoch = 1 }),
		receipt(t, srv, cli, 1, func(r *pod.Receipt) { r.Blocks = 0 }),
		func() *pod.Receipt { r := receipt(t, srv, cli, 1, nil); r.Bytes++; return r }(), // forged after signing
		func() *pod.Receipt { r := receipt(t, srv, cli, 1, nil); r.ServerSig = nil; return r }(),
	}
	for _, r := range bad {
		if err := topicA.Publish(ctx, encodeBatch([]*pod.Receipt{r})); err != nil {
			t.Fatal(err)
		}
	}
	_ = topicA.Publish(ctx, []byte("not a receipt"))
	good := receipt(t, srv, cli, probe.Seq+100, nil)
	if err := topicA.Publish(ctx, encodeBatch([]*pod.Receipt{good})); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(meshDeadline)
	for pool.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the valid receipt never reached the coordinator (coord accepted %v, relay accepted %v, rejected wrong-net %v badsig %v)", testutil.ToFloat64(coord.accepted), testutil.ToFloat64(relay.accepted), testutil.ToFloat64(relay.rejected.WithLabelValues("wrong_network")), testutil.ToFloat64(relay.rejected.WithLabelValues("bad_signature")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Gossip keeps order on one link: the bad ones came first and were dropped.
	if got := pool.Pending(good.Epoch); len(got) != 1 || got[0].Seq != good.Seq {
		t.Fatalf("coordinator pool holds %d receipts", len(got))
	}
	rejected := func() float64 {
		var sum float64
		for _, r := range pod.Reasons {
			sum += testutil.ToFloat64(relay.rejected.WithLabelValues(string(r)))
		}
		return sum
	}
	// Validation runs concurrently: wait for the count to settle.
	testkit.WaitFor(t, meshDeadline, "the relay's verdicts on the bad receipts", func() bool { return rejected() >= float64(len(bad)+1) })
	if testutil.ToFloat64(relay.accepted) != accepted+1 {
		t.Fatalf("relay accepted %v more receipts, want 1", testutil.ToFloat64(relay.accepted)-accepted)
	}
	if rejected() != float64(len(bad)+1) {
		t.Fatalf("relay counted %v rejections, want %d", rejected(), len(bad)+1)
	}
}

func TestPoolKeepsLatest(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	p := NewPool()
	r1, r3, r2 := receipt(t, srv, cli, 1, nil), receipt(t, srv, cli, 3, nil), receipt(t, srv, cli, 2, nil)
	if !p.Add(r1) || !p.Add(r3) || p.Add(r2) {
		t.Fatal("pool kept an older receipt over a newer one")
	}
	if got := p.Pending(r1.Epoch); len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("pending %v", got)
	}
	p.Done([]*pod.Receipt{r1}) // an older one was included: the newer stays
	if p.Len() != 1 {
		t.Fatal("Done dropped a newer receipt")
	}
	p.Done([]*pod.Receipt{r3})
	if p.Len() != 0 {
		t.Fatal("Done kept an included receipt")
	}
	// Added counts what Add kept, whatever left the pool since.
	if n := p.Added(r1.Epoch); n != 2 {
		t.Fatalf("added %d receipts of the epoch, want 2 (r1 and r3)", n)
	}
	if n := p.Added(r1.Epoch + 1); n != 0 {
		t.Fatalf("added %d receipts of the next epoch, want 0", n)
	}
	p.Forget(r1.Epoch + 1)
	if n := p.Added(r1.Epoch); n != 0 {
		t.Fatalf("Forget kept the count of a forgotten epoch (%d)", n)
	}
}

// TestPoolWaitingFollowsWhatItHolds: Waiting answers by the receipts held
// now, through Add, a newer receipt of a key, Done and Forget.
func TestPoolWaitingFollowsWhatItHolds(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	p := NewPool()
	r1 := receipt(t, srv, cli, 1, nil)
	e := r1.Epoch
	if p.Waiting(0, e+10) {
		t.Fatal("an empty pool waits")
	}
	r2 := receipt(t, srv, cli, 2, nil)
	if !p.Add(r1) || !p.Add(r2) {
		t.Fatal("the pool refused a receipt")
	}
	if !p.Waiting(e, e) || p.Waiting(e+1, e+10) || p.Waiting(0, e-1) {
		t.Fatalf("Waiting does not say the pool holds one receipt of epoch %d and none other", e)
	}
	p.Done([]*pod.Receipt{r1}) // older than what the pool holds: r2 stays
	if !p.Waiting(e, e) {
		t.Fatal("Done of an older receipt emptied the epoch")
	}
	p.Done([]*pod.Receipt{r2})
	if p.Waiting(e, e) {
		t.Fatal("the pool waits on a receipt a block took")
	}
	r3 := receipt(t, srv, cli, 3, nil)
	p.Add(r3)
	p.Forget(e)
	if !p.Waiting(e, e) {
		t.Fatal("Forget of earlier epochs dropped this epoch's receipt")
	}
	p.Forget(e + 1)
	if p.Waiting(0, e+10) || p.Len() != 0 {
		t.Fatal("the pool waits on (or holds) a forgotten receipt")
	}
}

// pair connects a sender to a coordinator with a pool and waits until a
// receipt published by the sender reaches the pool (the mesh formed).
func pair(t *testing.T) (sender *Intake, raw *pubsub.Topic, pool *Pool) {
	ha, psa := newPS(t)
	hc, psc := newPS(t)
	connect(t, ha, hc)
	sender, err := New(psa, params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	pool = NewPool()
	coord, err := New(psc, params, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coord.Close() })
	srv, cli := newParty(t), newParty(t)
	deadline := time.Now().Add(meshDeadline)
	for seq := uint64(1); pool.Len() == 0; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("no receipt reached the coordinator")
		}
		if err := sender.Publish(context.Background(), receipt(t, srv, cli, seq, nil)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pool.Done(pool.Pending(^uint64(0)))
	return sender, sender.topic, pool
}

func waitLen(t *testing.T, p *Pool, n int) {
	t.Helper()
	testkit.WaitFor(t, meshDeadline, fmt.Sprintf("%d receipts in the pool", n), func() bool { return p.Len() >= n })
}

func TestPublishBatchLeavesOutBadReceipts(t *testing.T) {
	sender, _, pool := pair(t)
	srv := newParty(t)
	var rs []*pod.Receipt
	for range 2*MaxBatch + 10 { // three messages
		rs = append(rs, receipt(t, srv, newParty(t), 1, nil))
	}
	rs[3].Bytes++                                                                          // forged
	rs[MaxBatch+1] = receipt(t, srv, srv, 1, nil)                                          // self-dealing
	rs[2*MaxBatch] = receipt(t, srv, newParty(t), 1, func(r *pod.Receipt) { r.Epoch = 1 }) // stale
	err := sender.PublishBatch(context.Background(), rs)
	for _, want := range []string{"receipt 3 (bad_signature)", fmt.Sprintf("receipt %d (self_dealing)", MaxBatch+1), fmt.Sprintf("receipt %d (epoch_out_of_range)", 2*MaxBatch)} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("PublishBatch error %v does not name %q", err, want)
		}
	}
	waitLen(t, pool, len(rs)-3)
	for _, i := range []int{3, MaxBatch + 1, 2 * MaxBatch} {
		for _, got := range pool.Pending(^uint64(0)) {
			if got.Key() == rs[i].Key() {
				t.Fatalf("bad receipt %d reached the pool", i)
			}
		}
	}
}

func TestMessageWithOneBadReceiptIsDropped(t *testing.T) {
	_, raw, pool := pair(t)
	srv := newParty(t)
	good1, good2, good3 := receipt(t, srv, newParty(t), 1, nil), receipt(t, srv, newParty(t), 1, nil), receipt(t, srv, newParty(t), 1, nil)
	forged := receipt(t, srv, newParty(t), 1, nil)
	forged.Bytes++
	// Published raw, past the sender's own checks (its validator would
	// refuse the message locally).
	if err := raw.Publish(context.Background(), encodeBatch([]*pod.Receipt{good1, forged, good2})); err == nil {
		t.Fatal("the sender's own validator let a bad batch out")
	}
	if err := raw.Publish(context.Background(), encodeBatch([]*pod.Receipt{good3})); err != nil {
		t.Fatal(err)
	}
	waitLen(t, pool, 1)
	if got := pool.Pending(^uint64(0)); len(got) != 1 || got[0].Key() != good3.Key() {
		t.Fatalf("pool holds %d receipts", len(got))
	}
}

func FuzzDecodeBatch(f *testing.F) {
	srv, cli := newParty(f), newParty(f)
	f.Add(encodeBatch([]*pod.Receipt{receipt(f, srv, cli, 1, nil), receipt(f, srv, cli, 2, nil)}))
	f.Add([]byte{0})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := decodeBatch(data)
		if err != nil {
			return
		}
		if len(rs) == 0 || len(rs) > MaxBatch {
			t.Fatalf("decoded %d receipts", len(rs))
		}
		again, err := decodeBatch(encodeBatch(rs))
		if err != nil || len(again) != len(rs) {
			t.Fatalf("re-encoded batch: %d receipts, %v", len(again), err)
		}
		for i := range rs {
			if !bytes.Equal(again[i].Marshal(), rs[i].Marshal()) {
				t.Fatalf("receipt %d changed on the way", i)
			}
		}
	})
}

// A receipt published before the box knows any peer of the topic (it just
// started, or just reconnected) waits for one instead of reaching nobody.
func TestPublishWaitsForAPeer(t *testing.T) {
	ha, psa := newPS(t)
	hc, psc := newPS(t)
	sender, err := New(psa, params)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	pool := NewPool()
	coord, err := New(psc, params, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	srv, cli := newParty(t), newParty(t)
	r := receipt(t, srv, cli, 1, nil)
	published := make(chan error, 1)
	go func() { published <- sender.Publish(context.Background(), r) }()
	time.Sleep(200 * time.Millisecond) // the publish is waiting: no peer yet
	connect(t, ha, hc)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	waitLen(t, pool, 1)
}

// A later sequence that takes back bytes does not supersede: the pool
// keeps the receipt that counts more, whatever the sequence says.
func TestPoolRefusesAReceiptThatTakesBackBytes(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	p := NewPool()
	big := receipt(t, srv, cli, 4, nil)
	shrunk := receipt(t, srv, cli, 5, func(r *pod.Receipt) { r.Bytes, r.Blocks = 1<<20, 4 })
	if !p.Add(big) || p.Add(shrunk) {
		t.Fatal("the pool took a later receipt with fewer bytes over an earlier one")
	}
	if got := p.Pending(big.Epoch); len(got) != 1 || got[0].Bytes != big.Bytes {
		t.Fatalf("pending %v, want the 4 MiB receipt", got)
	}
}

// An invalid receipt costs the peer that sent it gossipsub score, as the
// package promises; a receipt only outside this peer's epoch window is
// ignored (the sender's clock may be right) and costs nothing.
func TestInvalidReceiptsCostScore(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var mu sync.Mutex
	var scores map[peer.ID]float64
	inspected := 0
	inspect := pubsub.PeerScoreInspectFn(func(s map[peer.ID]float64) {
		mu.Lock()
		scores, inspected = s, inspected+1
		mu.Unlock()
	})
	ps, err := pubsub.NewGossipSub(context.Background(), h, append(GossipOptions(), pubsub.WithPeerScoreInspect(inspect, 50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool()
	in, err := New(ps, params, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	score := func(p peer.ID) (float64, int) {
		mu.Lock()
		defer mu.Unlock()
		return scores[p], inspected
	}
	srv, cli := newParty(t), newParty(t)
	ctx := context.Background()
	// Each sender runs no validator and publishes what it likes.
	send := func(data []byte) peer.ID {
		hs, pss := newPS(t)
		connect(t, hs, h)
		topic, err := pss.Join(ReceiptsTopic)
		if err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, meshDeadline, "the receiver's subscription", func() bool { return slices.Contains(topic.ListPeers(), h.ID()) })
		if err := topic.Publish(ctx, data); err != nil {
			t.Fatal(err)
		}
		return hs.ID()
	}
	counted := func(r pod.Reason) float64 { return testutil.ToFloat64(in.rejected.WithLabelValues(string(r))) }

	late := send(encodeBatch([]*pod.Receipt{receipt(t, srv, cli, 1, func(r *pod.Receipt) { r.Epoch = 1 })}))
	testkit.WaitFor(t, meshDeadline, "the old receipt counted", func() bool { return counted(pod.ReasonEpochOutOfRange) == 1 })
	forger := send(encodeBatch([]*pod.Receipt{func() *pod.Receipt { r := receipt(t, srv, cli, 1, nil); r.Bytes++; return r }()}))
	testkit.WaitFor(t, meshDeadline, "the forger's score below zero", func() bool { s, _ := score(forger); return s < 0 })
	// The old receipt was judged before the forged one: two inspections
	// later its sender's score is what it is.
	_, n := score(forger)
	testkit.WaitFor(t, meshDeadline, "two more inspections", func() bool { _, m := score(late); return m >= n+2 })
	if s, _ := score(late); s != 0 {
		t.Fatalf("a receipt outside the window cost its sender %v", s)
	}
	if pool.Len() != 0 {
		t.Fatalf("the pool kept %d receipts", pool.Len())
	}
}

// TestFullPoolRefusesNewKeys: a pool at its bound refuses receipts of new
// keys (counted) but still takes newer receipts of the keys it holds; it
// used to grow with every key anyone signed.
func TestFullPoolRefusesNewKeys(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	p := NewPool()
	p.max = 3
	inEpoch := func(e uint64) func(*pod.Receipt) { return func(r *pod.Receipt) { r.Epoch = e } }
	now := params.EpochAt(time.Now())
	for i := range uint64(3) {
		if !p.Add(receipt(t, srv, cli, 1, inEpoch(now-i))) {
			t.Fatalf("a pool under its bound refused receipt %d", i)
		}
	}
	if p.Add(receipt(t, srv, cli, 1, inEpoch(now+1))) {
		t.Fatal("a full pool kept a receipt of a new key")
	}
	if !p.Add(receipt(t, srv, cli, 2, inEpoch(now))) {
		t.Fatal("a full pool refused a newer receipt of a key it holds")
	}
	if p.Len() != 3 || p.Refused() != 1 {
		t.Fatalf("pool holds %d receipts and refused %d, want 3 and 1", p.Len(), p.Refused())
	}
}
