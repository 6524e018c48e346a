package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

func delays(t *testing.T, ds []network.AddrDelay) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, d := range ds {
		m[d.Addr.String()] = d.Delay.Milliseconds()
	}
	return m
}

func addrs(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

// A box with a global IPv6 address dials a dual-stack peer's public IPv4
// addresses ipv4After later than go-libp2p would, and nothing else
// changes: not for a peer without IPv6, nor on a box without it.
func TestV6RankerDelaysIPv4(t *testing.T) {
	v4q, v4t := "/ip4/11.99.0.10/udp/4601/quic-v1", "/ip4/11.99.0.10/tcp/4601"
	v6q, v6t := "/ip6/2a99::10/udp/4601/quic-v1", "/ip6/2a99::10/tcp/4601"
	lan := "/ip4/192.168.1.10/udp/4601/quic-v1"
	relayed := "/ip4/11.99.0.20/udp/4601/quic-v1/p2p/12D3KooWLk9ahXSygeesKC4cYVj2FQai1pxGWCDtDNCnMDwr1qGr/p2p-circuit"
	dual := addrs(t, v4q, v4t, v6q, v6t, lan, relayed)
	after := ipv4After.Milliseconds()

	var off v6Ranker
	base := delays(t, off.rank(dual))
	if len(base) != len(dual) {
		t.Fatalf("ranked %d addresses of %d", len(base), len(dual))
	}

	var on v6Ranker
	on.global.Store(true)
	got := delays(t, on.rank(dual))
	for a, d := range base {
		want := d
		if a == v4q || a == v4t {
			want = d + after
		}
		if got[a] != want {
			t.Errorf("%s: delay %d ms, want %d ms (go-libp2p's: %d ms)", a, got[a], want, d)
		}
	}
	if got[v4q] <= got[v6q] || got[v4t] <= got[v6t] {
		t.Errorf("IPv4 not after IPv6: %v", got)
	}

	v4only := addrs(t, v4q, v4t, lan)
	b, g := delays(t, off.rank(v4only)), delays(t, on.rank(v4only))
	for a := range b {
		if b[a] != g[a] {
			t.Errorf("peer without IPv6, %s: delay %d ms, go-libp2p's %d ms", a, g[a], b[a])
		}
	}
}

func TestGlobalIPv6(t *testing.T) {
	for _, c := range []struct {
		addrs []string
		want  bool
	}{
		{[]string{"/ip4/192.168.5.10/tcp/4601", "/ip6/2a99:5::10/udp/4601/quic-v1"}, true},
		{[]string{"/ip4/11.99.0.10/tcp/4601", "/ip6/::1/tcp/4601", "/ip6/fe80::1/tcp/4601"}, false},
		{[]string{"/ip6/fd00::10/tcp/4601"}, false}, // unique local: behind whatever the LAN has
		{nil, false},
	} {
		if got := globalIPv6(addrs(t, c.addrs...)); got != c.want {
			t.Errorf("globalIPv6(%v) = %v, want %v", c.addrs, got, c.want)
		}
	}
}
