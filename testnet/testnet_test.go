package testnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/orecdn/ore/testnet"
)

// A box that left a mocknet cannot be dialled again, as a real box that
// went away: a closed mocknet host alone still accepts connections.
func TestLeaveUnlinksMocknetBox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, 3, testnet.WithDir(t.TempDir()), testnet.WithMocknet(mocknet.LinkOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
	})
	gone, stay := nw.Nodes[2], nw.Nodes[1]
	info := gone.AddrInfo()
	if err := nw.Leave(2); err != nil {
		t.Fatal(err)
	}
	stay.Host().Network().ClosePeer(gone.ID())
	if err := stay.Host().Connect(ctx, info); err == nil {
		t.Fatal("dialled a box that left the network")
	}
	if c := stay.Host().Network().Connectedness(gone.ID()); c == network.Connected {
		t.Fatalf("still connected to the box that left: %v", c)
	}
}
