package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/orecdn/ore/internal/testkit"
)

var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// circuitVia are the addresses of a box relayed by relay. (A box
// announces relayed addresses through public relays only: on loopback the
// test builds them.)
func circuitVia(relay *Node) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range relay.P2PAddrs() {
		out = append(out, a.Encapsulate(ma.StringCast("/p2p-circuit")))
	}
	return out
}

// TestPrivateBoxReachedThroughARelay: a box AutoNAT finds private
// reserves a slot on its public bootstrap box, and a client that knows
// the home box's relayed address alone reaches it through the relay over
// a limited connection (which bitswap ignores: blocks wait for the direct
// connection hole punching opens; testnet/nat.sh drills that part behind
// real NATs, which loopback cannot show).
func TestPrivateBoxReachedThroughARelay(t *testing.T) {
	relay := startBox(t, loopback, WithForcedReachability(t, network.ReachabilityPublic))
	home := startBox(t, loopback, WithBootstrapPeers(relay.AddrInfo()), WithForcedReachability(t, network.ReachabilityPrivate))
	client := startBox(t, loopback)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The relay connects a client to the home box once the home box holds
	// a reservation: a connection, identify and one request. The
	// deadline is for a hang.
	testkit.WaitFor(t, time.Minute, "a connection through the relay", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return client.Connect(cctx, peer.AddrInfo{ID: home.ID(), Addrs: circuitVia(relay)}) == nil
	})
	limited := false
	for _, c := range client.Host().Network().ConnsToPeer(home.ID()) {
		limited = limited || c.Stat().Limited
	}
	if !limited {
		t.Fatal("no limited (relayed) connection to the home box")
	}
}

func TestRelaySourceStaticFirstThenRelaysConnected(t *testing.T) {
	a, b := peer.ID("a"), peer.ID("b")
	s := &relaySource{static: []peer.AddrInfo{{ID: a}, {ID: b}, {ID: a}}}
	var got []peer.ID
	for ai := range s.candidates(context.Background(), 5) {
		got = append(got, ai.ID)
	}
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("candidates = %v, want [a b] (static ones, once each)", got)
	}
	got = nil
	for ai := range s.candidates(context.Background(), 1) {
		got = append(got, ai.ID)
	}
	if len(got) != 1 {
		t.Fatalf("candidates(1) sent %d", len(got))
	}
}
