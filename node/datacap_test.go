package node_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// TestDataCapStopsServing: a box whose monthly cap is reached serves no
// more bytes than the cap, whatever its peers ask; raising the cap serves
// again.
func TestDataCapStopsServing(t *testing.T) {
	const capBytes = 1 << 20
	nw := newNetWith(t, 2, []testnet.Option{
		testnet.WithBoxOptions(0, node.WithDataCap(capBytes)),
		testnet.WithBoxOptions(1, node.WithStallTimeout(3*time.Second)),
	})
	srv, cli := nw.Nodes[0], nw.Nodes[1]
	ctx := testCtx(t)
	src, _ := randomFile(t, 4<<20)
	res, err := srv.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Fetch(ctx, res.Root, nil)
	if err == nil {
		t.Fatal("a 4 MiB fetch from a box capped at 1 MiB a month succeeded")
	}
	if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
		t.Fatalf("the test ran out of time: %v", err)
	}
	v := srv.DataCap()
	if v.Used > capBytes || !v.Reached && v.Used < capBytes-256<<10 {
		t.Fatalf("the capped box counted %d bytes served (cap %d): %+v", v.Used, capBytes, v)
	}
	st, err := srv.Exchange().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DataSent > capBytes {
		t.Fatalf("the capped box sent %d bytes, over its cap of %d", st.DataSent, capBytes)
	}
	// The owner raises the cap: the box serves the rest.
	if err := srv.SetDataCap(64 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Fetch(ctx, res.Root, nil); err != nil {
		t.Fatalf("fetch after the cap was raised: %v", err)
	}
	if v := srv.DataCap(); v.Used < 4<<20 || v.Reached {
		t.Fatalf("after the whole file: %+v", v)
	}
}

// TestDataCapCountsGatewayResponses: the body bytes the gateway writes to
// HTTP clients count against the cap, to the byte; a response that would
// pass the cap is cut there, and once the cap is reached the gateway
// answers 503 saying why, until the owner raises it.
func TestDataCapCountsGatewayResponses(t *testing.T) {
	const size = 256 << 10
	const capBytes = 2*size + size/3 // room for two whole responses
	nw := newNetWith(t, 1, nil, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"), node.WithDataCap(capBytes))
	gw := nw.Nodes[0]
	ctx := testCtx(t)
	src, want := randomFile(t, size)
	res, err := gw.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + gw.GatewayAddr() + "/ipfs/" + res.Root.String()
	for i := 1; i <= 2; i++ {
		resp, body := httpGet(t, url)
		if resp.StatusCode != http.StatusOK || sha256.Sum256(body) != want {
			t.Fatalf("GET %d: %s, %d bytes", i, resp.Status, len(body))
		}
		if v := gw.DataCap(); v.Gateway != int64(i*size) || v.Used != v.Gateway || v.Served != 0 || v.Fetched != 0 {
			t.Fatalf("after %d responses of %d bytes the cap counted %+v", i, size, v)
		}
	}
	// The third response would pass the cap: it is cut, and the count
	// stays within the cap.
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	n, rerr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if rerr == nil && n == size {
		t.Fatalf("a response that passes the data cap was sent whole (%s)", resp.Status)
	}
	v := gw.DataCap()
	if v.Used > capBytes || !v.Reached && v.Used < capBytes-64<<10 {
		t.Fatalf("after the cut response the cap counted %+v (cap %d)", v, capBytes)
	}
	// Reached: 503 at once, with the reason. Force it to the byte.
	if err := gw.SetDataCap(v.Used); err != nil {
		t.Fatal(err)
	}
	resp, body := httpGet(t, url)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "data cap") {
		t.Fatalf("a gateway over its data cap answered %s: %q", resp.Status, body)
	}
	if err := gw.SetDataCap(0); err != nil {
		t.Fatal(err)
	}
	if resp, body := httpGet(t, url); resp.StatusCode != http.StatusOK || sha256.Sum256(body) != want {
		t.Fatalf("after the cap was lifted: %s, %d bytes", resp.Status, len(body))
	}
}

// TestDataCapCountsFetches: the blocks a box fetches count against its
// own cap; a fetch stops once the cap is reached, saying so, and no fetch
// starts until the cap is raised.
func TestDataCapCountsFetches(t *testing.T) {
	const capBytes = 1 << 20
	nw := newNetWith(t, 2, []testnet.Option{
		testnet.WithBoxOptions(1, node.WithDataCap(capBytes), node.WithStallTimeout(5*time.Second)),
	})
	srv, cli := nw.Nodes[0], nw.Nodes[1]
	ctx := testCtx(t)
	small, _ := randomFile(t, 512<<10)
	sres, err := srv.AddPath(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cli.Fetch(ctx, sres.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := cli.DataCap(); v.Fetched < got.Fetched || got.Fetched < 512<<10 || v.Served != 0 || v.Gateway != 0 {
		t.Fatalf("a fetch of %d bytes from the network counted %+v", got.Fetched, v)
	}
	big, _ := randomFile(t, 8<<20)
	bres, err := srv.AddPath(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	got, err = cli.Fetch(ctx, bres.Root, nil)
	if !errors.Is(err, node.ErrDataCapReached) {
		t.Fatalf("an 8 MiB fetch by a box capped at 1 MiB a month: %v (%d bytes)", err, got.Fetched)
	}
	v := cli.DataCap()
	if !v.Reached || v.Fetched >= 8<<20 {
		t.Fatalf("after the refused fetch the cap counted %+v", v)
	}
	if _, err := cli.Fetch(ctx, bres.Root, nil); !errors.Is(err, node.ErrDataCapReached) {
		t.Fatalf("a fetch once the cap is reached: %v", err)
	}
	if err := cli.SetDataCap(64 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Fetch(ctx, bres.Root, nil); err != nil {
		t.Fatalf("fetch after the cap was raised: %v", err)
	}
	if v := cli.DataCap(); v.Fetched < 8<<20 {
		t.Fatalf("after the whole file the cap counted %+v", v)
	}
}
