package node_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/testnet"
)

// servedTo sums the bytes of the receipts srv countersigned for client and
// root.
func servedTo(t *testing.T, srv *node.Node, client peer.ID, root string) uint64 {
	t.Helper()
	rs, err := srv.ServedReceipts(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, r := range rs {
		if r.Client == client && r.Root.String() == root {
			if err := r.VerifyClient(); err != nil {
				t.Fatal(err)
			}
			if err := r.VerifyServer(); err != nil {
				t.Fatal(err)
			}
			sum += r.Bytes
		}
	}
	return sum
}

func sentTo(n *node.Node, p peer.ID) uint64 {
	for _, t := range n.Traffic() {
		if t.Peer == p {
			return uint64(t.BytesSent)
		}
	}
	return 0
}

func TestReceiptsAddUpToBytesSent(t *testing.T) {
	// Several servers in one fetch: bitswap's (the bulk path streams a
	// DAG from one; TestBulkFetchPaysReceiptsAsBitswap).
	nw := newNet(t, 5, node.WithBulk(false))
	ctx := testCtx(t)
	src, _ := randomFile(t, 64<<20)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		if _, err := nw.Nodes[i].Fetch(ctx, res.Root, nil); err != nil {
			t.Fatal(err)
		}
	}
	root := res.Root.String()
	// A client fetches from three boxes that hold the file. Bitswap
	// usually takes blocks from several of them; on a machine whose cores
	// are busy, the first to answer served the whole file in about 1 of
	// 10 runs. The receipts must add up either way, and so that the test
	// sees several servers in one fetch, a second client fetches when the
	// first used one.
	var client *node.Node
	var fr node.FetchResult
	servers := 0
	for _, c := range []int{3, 4} {
		client = nw.Nodes[c]
		for _, i := range []int{0, 1, 2} {
			if err := client.Connect(ctx, nw.Nodes[i].AddrInfo()); err != nil {
				t.Fatal(err)
			}
		}
		if fr, err = client.Get(ctx, res.Root, filepath.Join(t.TempDir(), "out"), nil); err != nil {
			t.Fatal(err)
		}
		servers = 0
		for _, i := range []int{0, 1, 2} {
			srv := nw.Nodes[i]
			if !testkit.Eventually(10*time.Second, func() bool { return servedTo(t, srv, client.ID(), root) == sentTo(srv, client.ID()) }) {
				t.Errorf("box %d: receipts cover %d bytes, it sent %d", i, servedTo(t, srv, client.ID(), root), sentTo(srv, client.ID()))
			}
			if sentTo(srv, client.ID()) > 0 {
				servers++
			}
		}
		// The client holds the same receipts, both signatures valid.
		var sum uint64
		for _, r := range fr.Receipts {
			if r.VerifyClient() != nil || r.VerifyServer() != nil || r.Client != client.ID() {
				t.Fatalf("bad receipt in fetch result: %+v", r)
			}
			sum += r.Bytes
		}
		if sum < uint64(fr.Fetched) {
			t.Errorf("client's receipts cover %d bytes, it fetched %d", sum, fr.Fetched)
		}
		if servers >= 2 {
			break
		}
	}
	if servers < 2 {
		t.Errorf("two fetches each used %d server, want several", servers)
	}

	// A restarted server still has its receipts.
	before := servedTo(t, nw.Nodes[0], client.ID(), root)
	nd, err := nw.Restart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if after := servedTo(t, nd, client.ID(), root); after != before {
		t.Fatalf("after restart the receipts cover %d bytes, before %d", after, before)
	}
}

func TestCreditWindowStopsClientThatNeverSigns(t *testing.T) {
	const window = 2 << 20
	nw := newNet(t, 3, node.WithCreditWindow(window), node.WithReceiptEvery(512<<10), node.WithStallTimeout(3*time.Second))
	ctx := testCtx(t)
	srv := nw.Nodes[0]
	src, _ := randomFile(t, 16<<20)
	res, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	freeloader, err := nw.Restart(ctx, 1, node.WithoutReceipts(t), node.WithCreditWindow(window),
		node.WithReceiptEvery(512<<10), node.WithStallTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	honest := nw.Nodes[2]
	for _, c := range []*node.Node{freeloader, honest} {
		if err := c.Connect(ctx, srv.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var freeErr, honestErr error
	wg.Add(2)
	go func() { defer wg.Done(); _, freeErr = freeloader.Fetch(ctx, res.Root, nil) }()
	go func() { defer wg.Done(); _, honestErr = honest.Fetch(ctx, res.Root, nil) }()
	wg.Wait()
	if honestErr != nil {
		t.Fatalf("honest client: %v", honestErr)
	}
	if !errors.Is(freeErr, node.ErrStalled) {
		t.Fatalf("client that never signs: err = %v, want ErrStalled", freeErr)
	}
	if got := sentTo(srv, freeloader.ID()); got > window {
		t.Fatalf("server sent %d bytes to a client that never signed; the window is %d", got, window)
	}
	// The honest client is served in full: by the server, and for a few
	// blocks by the freeloader, which holds what its window let through
	// and announces the root like any fetching box.
	if got := sentTo(srv, honest.ID()) + sentTo(freeloader, honest.ID()); got < 16<<20 {
		t.Fatalf("the honest client was sent %d bytes, want the whole file", got)
	}
}

func TestServerRefusesCraftedReceipts(t *testing.T) {
	// The client signs no receipt of its own: what the server sends it
	// stays unreceipted, for the crafted receipts below to claim.
	nw := newNetWith(t, 2, []testnet.Option{testnet.WithBoxOptions(1, node.WithoutReceipts(t))})
	ctx := testCtx(t)
	srv, cli := nw.Nodes[0], nw.Nodes[1]
	key, err := node.LoadIdentity(nw.Dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	src, _ := randomFile(t, 1<<20)
	res, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	params := srv.Network()
	now := params.EpochAt(time.Now())
	base := func() *pod.Receipt {
		return &pod.Receipt{Version: pod.Version, Network: params.Network, Epoch: now, Server: srv.ID(), Client: cli.ID(),
			Root: res.Root, Seq: 1, Bytes: 1000, Blocks: 1}
	}
	send := func(r *pod.Receipt, sign bool) error {
		if sign {
			if err := r.SignClient(key); err != nil {
				t.Fatal(err)
			}
		}
		st, err := cli.Host().NewStream(ctx, srv.ID(), protocol.ID(pod.ProtocolID))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := pod.WriteRequest(st, r); err != nil {
			t.Fatal(err)
		}
		_ = st.CloseWrite()
		_, err = pod.ReadResponse(st)
		return err
	}
	if err := cli.Connect(ctx, srv.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	// Nothing sent yet: a well-signed receipt for bytes the server never
	// sent is refused by its meter.
	if err := send(base(), true); pod.ReasonOf(err) != pod.ReasonNotServed {
		t.Fatalf("a receipt before any byte was sent: %v, want %s", err, pod.ReasonNotServed)
	}
	if _, err := cli.Fetch(ctx, res.Root, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		r    *pod.Receipt
		sign bool
	}{
		{"wrong network", func() *pod.Receipt { r := base(); r.Network = "elsewhere"; return r }(), true},
		{"epoch out of range", func() *pod.Receipt { r := base(); r.Epoch = now + 100; return r }(), true},
		{"oversized", func() *pod.Receipt { r := base(); r.Bytes = 3 << 20; return r }(), true},
		{"unsigned", base(), false},
		{"forged", func() *pod.Receipt { r := base(); _ = r.SignClient(key); r.Bytes = 2000; return r }(), false},
		{"names another server", func() *pod.Receipt { r := base(); r.Server = cli.ID(); return r }(), true},
		{"more than was sent", func() *pod.Receipt { r := base(); r.Bytes, r.Blocks = 1<<40, 1<<20; return r }(), true},
	}
	for _, tc := range cases {
		if err := send(tc.r, tc.sign); !errors.Is(err, pod.ErrRefused) {
			t.Errorf("%s: err = %v, want a refusal", tc.name, err)
		}
	}
	// Bytes of this root claimed under another root the server holds.
	other, _ := randomFile(t, 256<<10)
	resB, err := srv.AddPath(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	underB := base()
	underB.Root = resB.Root
	if err := send(underB, true); pod.ReasonOf(err) != pod.ReasonNotServed {
		t.Fatalf("bytes of one root claimed under another: %v, want %s", err, pod.ReasonNotServed)
	}
	good := base()
	if err := send(good, true); err != nil {
		t.Fatalf("valid receipt refused: %v", err)
	}
	replay := base()
	if err := send(replay, true); !errors.Is(err, pod.ErrRefused) {
		t.Fatalf("replayed sequence accepted: %v", err)
	}
	mfs, err := srv.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var rejected float64
	for _, mf := range mfs {
		if mf.GetName() == "ore_pod_receipts_rejected_total" {
			for _, m := range mf.GetMetric() {
				rejected += m.GetCounter().GetValue()
			}
		}
	}
	if rejected != float64(len(cases)+3) {
		t.Fatalf("rejections counted: %v, want %d", rejected, len(cases)+3)
	}
}

func TestRestartedClientKeepsReceiptingTheSameServer(t *testing.T) {
	nw := newNet(t, 2, node.WithCreditWindow(2<<20), node.WithReceiptEvery(512<<10), node.WithStallTimeout(5*time.Second))
	ctx := testCtx(t)
	srv := nw.Nodes[0]
	src, _ := randomFile(t, 8<<20)
	res, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Nodes[1].Fetch(ctx, res.Root, nil); err != nil {
		t.Fatal(err)
	}
	cli, err := nw.Restart(ctx, 1, node.WithCreditWindow(2<<20), node.WithReceiptEvery(512<<10), node.WithStallTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Lose the leaves, as a box whose disk was wiped of them would, and
	// fetch again: the new receipts must supersede the old ones, or the
	// server's credit window would stop the transfer.
	var leaves int
	ch, _ := cli.Store().AllKeysChan(ctx)
	for c := range ch {
		if sz, _ := cli.Store().GetSize(ctx, c); sz == 256<<10 {
			_ = cli.Store().DeleteBlock(ctx, c)
			leaves++
		}
	}
	if leaves < 16 {
		t.Fatalf("deleted %d leaves", leaves)
	}
	if err := cli.Connect(ctx, srv.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Fetch(ctx, res.Root, nil); err != nil {
		t.Fatalf("refetch after restart: %v", err)
	}
	root := res.Root.String()
	if !testkit.Eventually(10*time.Second, func() bool { return servedTo(t, srv, cli.ID(), root) == sentTo(srv, cli.ID()) }) {
		t.Fatalf("receipts cover %d bytes, the server sent %d", servedTo(t, srv, cli.ID(), root), sentTo(srv, cli.ID()))
	}
}

// TestRefusedReceiptsDoNotStarveTheClient: a client whose receipts the
// server refuses as too old (here its genesis lags, as the receipts of a box
// that fell behind do) cannot pay its debt. The debt ages out once no
// receipt could name its epochs, and the server sends what it held back:
// the fetch completes instead of stalling at the credit window.
func TestRefusedReceiptsDoNotStarveTheClient(t *testing.T) {
	const window = 512 << 10
	params := pod.Params{Network: "ore-lag", GenesisTime: time.Now().Add(-time.Hour), EpochLength: time.Second, MaxSkew: 1}
	lagging := params
	lagging.GenesisTime = params.GenesisTime.Add(10 * params.EpochLength)
	nw := newNetWith(t, 2, []testnet.Option{testnet.WithBoxOptions(1, node.WithNetwork(lagging))},
		node.WithNetwork(params), node.WithCreditWindow(window), node.WithReceiptEvery(128<<10),
		node.WithStallTimeout(20*time.Second))
	ctx := testCtx(t)
	srv, client := nw.Nodes[0], nw.Nodes[1]
	src, sum := randomFile(t, 2<<20)
	res, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Connect(ctx, srv.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := client.Get(ctx, res.Root, out, nil); err != nil {
		t.Fatalf("fetch with every receipt refused: %v", err)
	}
	if fileHash(t, out) != sum {
		t.Fatal("the fetched file differs")
	}
}
