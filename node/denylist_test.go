package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orecdn/ore/node"
)

// A box with a denylist neither fetches nor serves what it blocks: its own
// fetch fails at once, and another box cannot get the content from it.
func TestDenylistOnBoxes(t *testing.T) {
	nw := newNet(t, 2, node.WithStallTimeout(2*time.Second))
	ctx := testCtx(t)
	src, _ := randomFile(t, 300<<10)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "bad.deny")
	if err := os.WriteFile(list, []byte("/ipfs/"+res.Root.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The fetching side.
	blocker, err := nw.Restart(ctx, 1, node.WithStallTimeout(2*time.Second), node.WithDenylists(list))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Fetch(ctx, res.Root, nil); !errors.Is(err, node.ErrDenied) {
		t.Fatalf("fetch of blocked content: %v, want ErrDenied", err)
	}
	// The serving side: box 0 restarted with the list serves nothing of it.
	server, err := nw.Restart(ctx, 0, node.WithStallTimeout(2*time.Second), node.WithDenylists(list))
	if err != nil {
		t.Fatal(err)
	}
	client, err := nw.Restart(ctx, 1, node.WithStallTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Connect(ctx, server.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := client.Fetch(fctx, res.Root, nil); err == nil {
		t.Fatal("a box served content on its denylist")
	}
	if has, _ := client.Store().Has(ctx, res.Root); has {
		t.Fatal("the root block reached the client")
	}
}
