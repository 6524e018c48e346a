package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/testkit"
)

func TestClassify(t *testing.T) {
	mapping := []PortMapping{{Listen: "/ip4/0.0.0.0/tcp/4601", External: "/ip4/203.0.113.7/tcp/4601"}}
	relays := []string{"12D3KooWRelay"}
	for _, tc := range []struct {
		name   string
		in     reachInputs
		want   ReachState
		advice string // a part of the advice; "" wants none
	}{
		{"nothing known", reachInputs{}, ReachUnknown, "not decided"},
		{"public", reachInputs{autonat: network.ReachabilityPublic}, ReachPublic, ""},
		{"an IPv6 address confirmed", reachInputs{autonat: network.ReachabilityPrivate, reachable: []string{"/ip6/2a01::1/tcp/4601"}}, ReachPublic, ""},
		{"mapped, AutoNAT public", reachInputs{autonat: network.ReachabilityPublic, mappings: mapping}, ReachMapped, ""},
		{"mapped, the mapping confirmed", reachInputs{reachable: []string{mapping[0].External}, mappings: mapping}, ReachMapped, ""},
		{"mapped but private", reachInputs{autonat: network.ReachabilityPrivate, mappings: mapping, ports: "port 4601"}, ReachUnreachable, "second NAT"},
		{"private with relays", reachInputs{autonat: network.ReachabilityPrivate, relays: relays, ports: "port 4601"}, ReachRelayed, "hole punching"},
		{"symmetric with relays", reachInputs{autonat: network.ReachabilityPrivate, relays: relays,
			natTCP: network.NATDeviceTypeEndpointDependent, natUDP: network.NATDeviceTypeEndpointDependent}, ReachRelayed, "symmetric"},
		{"private, no relay", reachInputs{autonat: network.ReachabilityPrivate, ports: "port 4601"}, ReachUnreachable, "forward TCP and UDP port 4601"},
	} {
		state, advice := classify(tc.in)
		if state != tc.want {
			t.Errorf("%s: state %s, want %s", tc.name, state, tc.want)
		}
		if (tc.advice == "") != (advice == "") || !strings.Contains(advice, tc.advice) {
			t.Errorf("%s: advice %q, want one with %q", tc.name, advice, tc.advice)
		}
	}
}

func TestRelaysOf(t *testing.T) {
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/203.0.113.7/tcp/4601/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8/p2p-circuit"),
		ma.StringCast("/ip4/203.0.113.7/udp/4601/quic-v1/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8/p2p-circuit"),
		ma.StringCast("/ip4/198.51.100.2/tcp/4601/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"),
	}
	got := relaysOf(addrs)
	if len(got) != 2 || got[0] != "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA" || got[1] != "12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8" {
		t.Fatalf("relaysOf = %v", got)
	}
}

func TestListenPorts(t *testing.T) {
	addrs, _ := parseAddrs(DefaultListenAddrs)
	if got := listenPorts(addrs); got != "port 4601" {
		t.Fatalf("listenPorts(defaults) = %q", got)
	}
	addrs, _ = parseAddrs([]string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4002/quic-v1", "/ip4/127.0.0.1/tcp/0"})
	if got := listenPorts(addrs); got != "ports 4001, 4002" {
		t.Fatalf("listenPorts = %q", got)
	}
}

// TestReachabilityFollowsAutoNAT: the box's reachability, its metric and
// its relay service follow AutoNAT's verdict.
func TestReachabilityFollowsAutoNAT(t *testing.T) {
	pub := startBox(t, loopback, WithForcedReachability(t, network.ReachabilityPublic))
	priv := startBox(t, loopback, WithForcedReachability(t, network.ReachabilityPrivate))
	// The verdict comes as an event on the host's bus: the deadline is
	// for a hang.
	testkit.WaitFor(t, 30*time.Second, "the verdicts", func() bool {
		return pub.Reachability().State == ReachPublic && priv.Reachability().State == ReachUnreachable
	})
	if r := pub.Reachability(); !r.RelayService || r.Advice != "" || r.Report != "direct" {
		t.Fatalf("public box: %+v, want a relay service, no advice, and direct in its heat reports", r)
	}
	if r := priv.Reachability(); r.RelayService || !strings.Contains(r.Advice, "forward") || r.Report != "nat" {
		t.Fatalf("private box: %+v, want no relay service, advice to forward a port, and nat in its heat reports", r)
	}
	// What the heat reports say, signed: the committee's planner reads it.
	for box, want := range map[*Node]heat.Reach{pub: heat.ReachDirect, priv: heat.ReachNAT} {
		r, err := box.sched.report(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		d, err := heat.UnmarshalReport(r.Marshal())
		if err != nil || d.Reach != want {
			t.Fatalf("heat report: reach %v (%v), want %s", d, err, want)
		}
	}
	mfs, err := pub.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "ore_reachability" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == string(ReachPublic) {
				found = m.GetGauge().GetValue() == 1
			}
		}
	}
	if !found {
		t.Fatal(`ore_reachability{state="public"} is not 1 on the public box`)
	}
}
