package node

import (
	"context"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/orecdn/ore/heat"
)

// fakeConn is a connection with addresses, as identify's event carries
// it; only what natObservations reads is there.
type fakeConn struct {
	network.Conn
	local, remote ma.Multiaddr
	limited       bool
	closed        bool
}

func (c *fakeConn) LocalMultiaddr() ma.Multiaddr  { return c.local }
func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }
func (c *fakeConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Limited: c.limited}}
}
func (c *fakeConn) IsClosed() bool { return c.closed }

// observe records that the peer at remote (an IPv4 address) sees the
// box, on a TCP connection from 192.168.1.10:4601, at 11.0.0.1:port.
func observe(t *testing.T, o *natObservations, remote string, port string) *fakeConn {
	t.Helper()
	c := &fakeConn{
		local:  ma.StringCast("/ip4/192.168.1.10/tcp/4601"),
		remote: ma.StringCast("/ip4/" + remote + "/tcp/4601"),
	}
	if !o.add(c, ma.StringCast("/ip4/11.0.0.1/tcp/"+port)) {
		t.Fatalf("observation by %s not counted", remote)
	}
	return c
}

func TestNATKindFromTwoObservers(t *testing.T) {
	// A QUIC connection's local address is the listen address.
	var quic natObservations
	for i, obs := range []string{"11.1.0.1", "11.2.0.1"} {
		c := &fakeConn{local: ma.StringCast("/ip4/0.0.0.0/udp/4601/quic-v1"), remote: ma.StringCast("/ip4/" + obs + "/udp/4601/quic-v1")}
		if !quic.add(c, ma.StringCast("/ip4/11.0.0.1/udp/"+strconv.Itoa(40000+i)+"/quic-v1")) {
			t.Fatal("QUIC observation not counted")
		}
	}
	if _, udp := quic.kinds(); udp != network.NATDeviceTypeEndpointDependent {
		t.Fatalf("QUIC, two observers see two ports: %v, want symmetric", udp)
	}
	var cone, sym natObservations
	observe(t, &cone, "11.1.0.1", "4601")
	if tcp, udp := cone.kinds(); tcp != network.NATDeviceTypeUnknown || udp != network.NATDeviceTypeUnknown {
		t.Fatalf("one observer decided: tcp %v, udp %v", tcp, udp)
	}
	observe(t, &cone, "11.2.0.1", "4601")
	if tcp, udp := cone.kinds(); tcp != network.NATDeviceTypeEndpointIndependent || udp != network.NATDeviceTypeUnknown {
		t.Fatalf("two observers see one port: tcp %v, udp %v; want cone, unknown", tcp, udp)
	}

	observe(t, &sym, "11.1.0.1", "40001")
	c := observe(t, &sym, "11.2.0.1", "51234")
	if tcp, _ := sym.kinds(); tcp != network.NATDeviceTypeEndpointDependent {
		t.Fatalf("two observers see two ports: %v, want symmetric", tcp)
	}
	// A third that agrees with one of them: one port for most: cone.
	observe(t, &sym, "11.3.0.1", "51234")
	if tcp, _ := sym.kinds(); tcp != network.NATDeviceTypeEndpointIndependent {
		t.Fatalf("2 of 3 observers see one port: %v, want cone", tcp)
	}
	// Its connection closes: two observers, two ports again.
	c.closed = true
	if tcp, _ := sym.kinds(); tcp != network.NATDeviceTypeEndpointDependent {
		t.Fatalf("after a connection closed: %v, want symmetric", tcp)
	}
	// An observer counts once, with its latest observation.
	observe(t, &sym, "11.1.0.1", "51234")
	if tcp, _ := sym.kinds(); tcp != network.NATDeviceTypeEndpointIndependent {
		t.Fatalf("an observer that now sees the other's port: %v, want cone", tcp)
	}
}

func TestNATObservationsIgnored(t *testing.T) {
	o := natObservations{own: func(ip net.IP) bool { return ip.Equal(net.IPv4(11, 0, 0, 7)) }}
	for _, tc := range []struct {
		name                    string
		local, remote, observed string
		limited                 bool
	}{
		{"public local address (no NAT)", "/ip4/11.0.0.1/tcp/4601", "/ip4/11.1.0.1/tcp/4601", "/ip4/11.0.0.1/tcp/4601", false},
		{"an address of the box's own (QUIC: the local address is the listen address)", "/ip4/0.0.0.0/udp/4601/quic-v1", "/ip4/11.1.0.1/udp/4601/quic-v1", "/ip4/11.0.0.7/udp/4601/quic-v1", false},
		{"observer on the LAN", "/ip4/192.168.1.10/tcp/4601", "/ip4/192.168.1.20/tcp/4601", "/ip4/192.168.1.10/tcp/4601", false},
		{"relayed connection", "/ip4/192.168.1.10/tcp/4601", "/ip4/11.1.0.1/tcp/4601", "/ip4/11.0.0.1/tcp/5000", true},
		{"relayed observed address", "/ip4/192.168.1.10/tcp/4601", "/ip4/11.1.0.1/tcp/4601",
			"/ip4/11.9.0.1/tcp/4601/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8/p2p-circuit", false},
		{"other transport", "/ip4/192.168.1.10/tcp/4601", "/ip4/11.1.0.1/tcp/4601", "/ip4/11.0.0.1/udp/4601/quic-v1", false},
		{"other family", "/ip4/192.168.1.10/tcp/4601", "/ip4/11.1.0.1/tcp/4601", "/ip6/2a01::1/tcp/4601", false},
		{"private observed address", "/ip4/192.168.1.10/tcp/4601", "/ip4/11.1.0.1/tcp/4601", "/ip4/10.0.0.1/tcp/4601", false},
		{"loopback", "/ip4/127.0.0.1/tcp/4601", "/ip4/127.0.0.1/tcp/4602", "/ip4/127.0.0.1/tcp/4601", false},
	} {
		c := &fakeConn{local: ma.StringCast(tc.local), remote: ma.StringCast(tc.remote), limited: tc.limited}
		if o.add(c, ma.StringCast(tc.observed)) {
			t.Errorf("%s: counted", tc.name)
		}
	}
	if o.add(nil, nil) {
		t.Error("nil counted")
	}
}

func TestNATObservationsBounded(t *testing.T) {
	var o natObservations
	var conns []*fakeConn
	for i := range maxNATObservations {
		conns = append(conns, observe(t, &o, "11.1."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250+1), "4601"))
	}
	c := &fakeConn{local: ma.StringCast("/ip4/192.168.1.10/tcp/4601"), remote: ma.StringCast("/ip4/11.9.9.9/tcp/4601")}
	if o.add(c, ma.StringCast("/ip4/11.0.0.1/tcp/4601")) {
		t.Fatal("an observation past the bound counted")
	}
	conns[0].closed = true
	if !o.add(c, ma.StringCast("/ip4/11.0.0.1/tcp/4601")) {
		t.Fatal("no room made from a closed connection")
	}
	if len(o.obs) != maxNATObservations {
		t.Fatalf("%d observations kept, the bound is %d", len(o.obs), maxNATObservations)
	}
}

func TestHeatReach(t *testing.T) {
	const (
		unk  = network.NATDeviceTypeUnknown
		cone = network.NATDeviceTypeEndpointIndependent
		sym  = network.NATDeviceTypeEndpointDependent
	)
	for _, tc := range []struct {
		state    ReachState
		tcp, udp network.NATDeviceType
		want     heat.Reach
	}{
		{ReachUnknown, unk, unk, heat.ReachUnknown},
		{ReachPublic, unk, unk, heat.ReachDirect},
		{ReachPublic, sym, sym, heat.ReachDirect}, // an IPv6 address without NAT, confirmed
		{ReachMapped, sym, sym, heat.ReachDirect}, // a mapped port
		{ReachRelayed, unk, unk, heat.ReachNAT},
		{ReachRelayed, cone, unk, heat.ReachNAT},
		{ReachRelayed, sym, cone, heat.ReachNAT}, // QUIC punches
		{ReachRelayed, sym, unk, heat.ReachSymmetric},
		{ReachRelayed, sym, sym, heat.ReachSymmetric},
		{ReachUnreachable, unk, sym, heat.ReachSymmetric},
		{ReachUnreachable, unk, unk, heat.ReachNAT},
		{ReachUnknown, cone, unk, heat.ReachNAT},
		{ReachUnknown, sym, unk, heat.ReachSymmetric},
	} {
		if got := heatReach(tc.state, tc.tcp, tc.udp); got != tc.want {
			t.Errorf("heatReach(%s, tcp %v, udp %v) = %s, want %s", tc.state, tc.tcp, tc.udp, got, tc.want)
		}
	}
}

// TestBlockBytesByPath: the blocks of a fetch between two boxes connected
// directly count as direct on both sides, and a peer reached only
// through a relay is on the relayed path.
func TestBlockBytesByPath(t *testing.T) {
	a, b := newTestBox(t), newTestBox(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	root := addBytes(t, a, randomBytes(t, 3<<20))
	res, err := b.Fetch(ctx, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstByte <= 0 || res.FirstByte > res.Duration {
		t.Errorf("first byte after %s of a %s fetch", res.FirstByte, res.Duration)
	}
	got, sent := b.Reachability().Bytes, a.Reachability().Bytes
	if got.ReceivedDirect != uint64(res.Fetched) || got.ReceivedHolePunched+got.ReceivedRelayed != 0 {
		t.Errorf("fetching box: %+v, want %d bytes received direct", got, res.Fetched)
	}
	if sent.SentDirect < uint64(res.Fetched) || sent.SentHolePunched+sent.SentRelayed != 0 {
		t.Errorf("serving box: %+v, want at least %d bytes sent direct", sent, res.Fetched)
	}
	if p := b.reach.pathTo(peer.ID("nobody")); p != pathDirect {
		t.Errorf("a peer gone: %s", p)
	}
}

func TestPreferDirectSources(t *testing.T) {
	const relay = "/ip4/11.9.0.1/tcp/4601/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8/p2p-circuit"
	ai := func(id string, addrs ...string) peer.AddrInfo {
		p := peer.AddrInfo{ID: peer.ID(id)}
		for _, a := range addrs {
			p.Addrs = append(p.Addrs, ma.StringCast(a))
		}
		return p
	}
	ps := []peer.AddrInfo{
		ai("relayed", relay, "/ip4/192.168.1.10/tcp/4601"),
		ai("lan", "/ip4/192.168.1.20/tcp/4601"),
		ai("relayed too", relay),
		ai("public", "/ip4/11.1.0.1/tcp/4601"),
		ai("unknown"),
		ai("mapped and relayed", relay, "/ip4/11.2.0.1/tcp/4601"),
	}
	for _, p := range ps {
		if want := p.ID == "relayed" || p.ID == "relayed too"; relayOnly(p) != want {
			t.Errorf("relayOnly(%s) = %v", p.ID, !want)
		}
	}
	preferDirect(ps, nil)
	var got []peer.ID
	for _, p := range ps {
		got = append(got, p.ID)
	}
	want := []peer.ID{"lan", "public", "unknown", "mapped and relayed", "relayed", "relayed too"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
