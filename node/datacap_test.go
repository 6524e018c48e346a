package node_test

import (
	"errors"
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
