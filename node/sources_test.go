package node_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/boxo/peering"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"

	"github.com/orecdn/ore/node"
)

// A box on a mocknet host (which has no connection manager of its own)
// trims its connections like any box, and a fetch protects its source
// under boxo's peering tag (bitswap broadcasts to such peers) while it
// runs, and not after.
func TestMocknetBoxManagesConnectionsAndProtectsSources(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw := newMocknet(t, 2, node.WithReceipts(false), node.WithConnLimits(7, 21))
	src, box := nw.Nodes[0], nw.Nodes[1]
	cm, ok := box.Host().ConnManager().(*connmgr.BasicConnMgr)
	if !ok {
		t.Fatalf("the box's connection manager is a %T", box.Host().ConnManager())
	}
	if info := cm.GetInfo(); info.LowWater != 7 || info.HighWater != 21 {
		t.Fatalf("connection limits %d/%d, want 7/21", info.LowWater, info.HighWater)
	}

	path, _ := randomFile(t, 2<<20)
	added, err := src.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var during atomic.Bool
	progress := func(p node.FetchProgress) {
		if p.Fetched > 0 && cm.IsProtected(src.ID(), peering.ConnmgrTag) {
			during.Store(true)
		}
	}
	if _, err := box.Fetch(ctx, added.Root, progress); err != nil {
		t.Fatal(err)
	}
	if !during.Load() {
		t.Fatal("the source was not protected while the fetch ran")
	}
	if cm.IsProtected(src.ID(), peering.ConnmgrTag) {
		t.Fatal("the source is still protected after the fetch")
	}
}
