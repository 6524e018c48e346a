package node_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/node"
)

// A fetch from a box that holds the whole DAG comes over one bulk stream,
// and its receipts are paid exactly as a bitswap fetch's: the same bytes,
// countersigned by the server, through a credit window small enough that
// the server waits for receipts many times on the way.
func TestBulkFetchPaysReceiptsAsBitswap(t *testing.T) {
	const size = 8 << 20
	opts := []node.Option{node.WithCreditWindow(1 << 20), node.WithReceiptEvery(256 << 10)}
	nw := newNet(t, 3, opts...)
	ctx := testCtx(t)
	srv := nw.Nodes[0]
	src, want := randomFile(t, size)
	added, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	overBitswap, err := nw.Restart(ctx, 2, append(opts, node.WithBulk(false))...)
	if err != nil {
		t.Fatal(err)
	}
	root := added.Root.String()
	var paid [2]uint64
	for i, c := range []*node.Node{nw.Nodes[1], overBitswap} {
		if err := c.Connect(ctx, srv.AddrInfo()); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		fr, err := c.Get(ctx, added.Root, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fileHash(t, out) != want {
			t.Fatalf("client %d: the file differs", i)
		}
		st, err := c.Exchange().Stats()
		if err != nil {
			t.Fatal(err)
		}
		if bulk := i == 0; bulk != (st.BlocksReceived == st.OtherBlocksReceived) {
			t.Fatalf("client %d (bulk %v): bitswap received %d blocks", i, bulk, st.BlocksReceived-st.OtherBlocksReceived)
		}
		// The traffic figures (ore status, the dashboard) count both paths.
		if st.DataReceived < size {
			t.Fatalf("client %d: traffic says %d bytes received of a %d-byte file", i, st.DataReceived, size)
		}
		if fr.Fetched < size {
			t.Fatalf("client %d fetched %d bytes of a %d-byte file", i, fr.Fetched, size)
		}
		// Bitswap may take blocks from the other client too: every
		// server's receipts cover what it sent, and the client's add up
		// to what it fetched.
		var sent uint64
		servers := map[peer.ID]bool{}
		for _, s := range nw.Nodes {
			if s == c {
				continue
			}
			if !testkit.Eventually(10*time.Second, func() bool { return servedTo(t, s, c.ID(), root) == sentTo(s, c.ID()) }) {
				t.Fatalf("client %d: receipts cover %d bytes, server %s sent %d", i, servedTo(t, s, c.ID(), root), s.ID(), sentTo(s, c.ID()))
			}
			sent += sentTo(s, c.ID())
		}
		var sum uint64
		for _, r := range fr.Receipts {
			if r.VerifyClient() != nil || r.VerifyServer() != nil || r.Client != c.ID() {
				t.Fatalf("client %d: bad receipt %+v", i, r)
			}
			servers[r.Server] = true
			sum += r.Bytes
		}
		if sum != uint64(fr.Fetched) || sent != uint64(fr.Fetched) {
			t.Fatalf("client %d: receipts cover %d bytes, it fetched %d, the servers sent %d", i, sum, fr.Fetched, sent)
		}
		if i == 0 && (len(servers) != 1 || !servers[srv.ID()]) {
			t.Fatalf("the bulk fetch has receipts from %d servers, want the one it streamed from", len(servers))
		}
		paid[i] = sum
	}
	if paid[0] != paid[1] {
		t.Fatalf("receipts over the bulk path cover %d bytes, over bitswap %d", paid[0], paid[1])
	}
}

// A source that does not speak the bulk protocol costs the fetch nothing
// but a refused stream: bitswap fetches the DAG.
func TestBulkFallsBackToBitswap(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	srv, err := nw.Restart(ctx, 0, node.WithBulk(false))
	if err != nil {
		t.Fatal(err)
	}
	src, want := randomFile(t, 4<<20)
	added, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	c := nw.Nodes[1]
	if err := c.Connect(ctx, srv.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := c.Get(ctx, added.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, out) != want {
		t.Fatal("the file differs")
	}
	st, err := c.Exchange().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.BlocksReceived == 0 {
		t.Fatal("no block came over bitswap")
	}
}
