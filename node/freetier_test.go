package node_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"testing"
	"time"

	boxobs "github.com/ipfs/boxo/bitswap"
	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/node"
)

// plainPeer is the Kubo stand-in: a libp2p host on loopback that speaks
// bitswap and never /ore/pod/1.0.0, so it signs no receipt.
func plainPeer(t *testing.T, ctx context.Context, box *node.Node) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(ctx, box.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	// The box learns the peer's protocols from identify: until then it
	// counts it an ore peer (the credit window).
	testkit.Eventually(10*time.Second, func() bool {
		ps, _ := box.Host().Peerstore().GetProtocols(h.ID())
		return len(ps) > 0
	})
	return h
}

// A bitswap client that never signs receipts (an in-process plain boxo
// bitswap on its own libp2p host, standing in for Kubo) fetches a file
// three times the credit window: the box serves it from the free tier and
// counts it there, where before it stalled after the window.
func TestKuboFetchesPastTheCreditWindow(t *testing.T) {
	nw := newNet(t, 1, node.WithFreeTier(64<<20, 1<<30))
	ctx := testCtx(t)
	box := nw.Nodes[0]
	src, want := randomFile(t, 3*node.DefaultCreditWindow+12345)
	res, err := box.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	h := plainPeer(t, ctx, box)
	bstore := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	bs := boxobs.New(ctx, bsnet.NewFromIpfsHost(h), nil, bstore)
	defer bs.Close()
	dag := merkledag.NewDAGService(blockservice.New(bstore, bs))
	fctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	nd, err := dag.Get(fctx, res.Root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := uio.NewDagReader(fctx, nd, dag)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, r)
	if err != nil {
		t.Fatalf("the plain client got %d bytes, then: %v", n, err)
	}
	if [32]byte(got.Sum(nil)) != want {
		t.Fatal("the plain client's bytes differ")
	}
	if sent := metricValue(t, box, "ore_free_sent_bytes_total"); sent < 3*node.DefaultCreditWindow {
		t.Errorf("free tier counted %d bytes, want the file's", sent)
	}
	if rs, _ := box.ServedReceipts(ctx, 0); len(rs) != 0 {
		t.Errorf("the box holds %d receipts from a client that signs none", len(rs))
	}
}

// dontHaves records the DONT_HAVEs a raw bitswap peer receives.
type dontHaves struct{ ch chan cid.Cid }

func (d dontHaves) ReceiveMessage(_ context.Context, _ peer.ID, m bsmsg.BitSwapMessage) {
	for _, c := range m.DontHaves() {
		d.ch <- c
	}
}
func (dontHaves) ReceiveError(error)       {}
func (dontHaves) PeerConnected(peer.ID)    {}
func (dontHaves) PeerDisconnected(peer.ID) {}

// Once the free tier's daily budget is spent, a peer that signs no
// receipts is told DONT_HAVE for each block it wants, at once: never the
// silence of a held block.
func TestKuboOverBudgetGetsDontHave(t *testing.T) {
	nw := newNet(t, 1, node.WithFreeTier(64<<20, 1))
	ctx := testCtx(t)
	box := nw.Nodes[0]
	src, _ := randomFile(t, 1<<20)
	res, err := box.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	h := plainPeer(t, ctx, box)
	net := bsnet.NewFromIpfsHost(h)
	got := dontHaves{ch: make(chan cid.Cid, 16)}
	net.Start(got)
	defer net.Stop()
	msg := bsmsg.New(true)
	msg.AddEntry(res.Root, 1, pb.Message_Wantlist_Block, true)
	if err := net.SendMessage(ctx, box.ID(), msg); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got.ch:
		if !c.Equals(res.Root) {
			t.Errorf("DONT_HAVE for %s, want %s", c, res.Root)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no DONT_HAVE within 20 s: the box is silent")
	}
	if n := labelled(t, box, "ore_free_refused_blocks_total", "daily"); n < 1 {
		t.Errorf("refusals counted: %v", n)
	}
}

// Two ore boxes, one with receipts switched off (a plain IPFS peer to the
// other): it fetches a file past the credit window from the free tier.
func TestReceiptlessBoxFetchesFromFreeTier(t *testing.T) {
	nw := newNet(t, 2, node.WithFreeTier(64<<20, 1<<30))
	ctx := testCtx(t)
	src, want := randomFile(t, 2*node.DefaultCreditWindow+777)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := nw.Restart(ctx, 1, node.WithReceipts(false), node.WithFreeTier(64<<20, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Connect(ctx, nw.Nodes[0].AddrInfo()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(10*time.Second, func() bool {
		ps, _ := nw.Nodes[0].Host().Peerstore().GetProtocols(plain.ID())
		return len(ps) > 0
	})
	out := t.TempDir() + "/out.bin"
	if _, err := plain.Get(ctx, res.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || [32]byte(sha256.Sum256(b)) != want {
		t.Fatalf("fetched file differs (%v)", err)
	}
	if sent := metricValue(t, nw.Nodes[0], "ore_free_sent_bytes_total"); sent < 2*node.DefaultCreditWindow {
		t.Errorf("free tier counted %d bytes", sent)
	}
}

// labelled reads a counter's value for one label value.
func labelled(t *testing.T, n *node.Node, m, value string) float64 {
	t.Helper()
	mfs, err := n.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != m {
			continue
		}
		for _, x := range mf.GetMetric() {
			for _, l := range x.GetLabel() {
				if l.GetValue() == value {
					return x.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{%s}", m, value)
	return 0
}

// An ore box that fetches from a server that does not speak the receipt
// protocol (here an ore box with receipts off; Kubo alike) signs no
// receipt for it and logs no failure for each MiB.
func TestNoReceiptsToServersThatDoNotSpeakPod(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	plain, err := nw.Restart(ctx, 0, node.WithReceipts(false))
	if err != nil {
		t.Fatal(err)
	}
	src, want := randomFile(t, 3<<20)
	res, err := plain.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	client := nw.Nodes[1]
	if err := client.Connect(ctx, plain.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(10*time.Second, func() bool {
		ps, _ := client.Host().Peerstore().GetProtocols(plain.ID())
		return len(ps) > 0
	})
	out := t.TempDir() + "/out.bin"
	if _, err := client.Get(ctx, res.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || [32]byte(sha256.Sum256(b)) != want {
		t.Fatalf("fetched file differs (%v)", err)
	}
	if n := metricValue(t, client, "ore_pod_receipts_signed_total"); n != 0 {
		t.Errorf("the client signed %d receipts for a server that cannot countersign", n)
	}
}
