package node

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// fakeNAT is a NAT manager whose router maps what the test says.
type fakeNAT struct {
	mu     sync.Mutex
	mapped map[string]ma.Multiaddr
}

func (f *fakeNAT) GetMapping(a ma.Multiaddr) ma.Multiaddr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mapped[a.String()]
}
func (f *fakeNAT) HasDiscoveredNAT() bool { return true }
func (f *fakeNAT) Close() error           { return nil }

func TestPortMapperRecordsWhatTheRouterMaps(t *testing.T) {
	tcp := ma.StringCast("/ip4/0.0.0.0/tcp/4601")
	quic := ma.StringCast("/ip4/0.0.0.0/udp/4601/quic-v1")
	ext := ma.StringCast("/ip4/203.0.113.7/tcp/4601")
	nat := &fakeNAT{mapped: map[string]ma.Multiaddr{}}
	changes := 0
	pm := newPortMapper(nat, slog.New(slog.NewTextHandler(io.Discard, nil)), func() { changes++ })

	if got := pm.GetMapping(tcp); got != nil || len(pm.Mappings()) != 0 || changes != 0 {
		t.Fatalf("nothing mapped: got %v, %v, %d changes", got, pm.Mappings(), changes)
	}
	nat.mapped[tcp.String()] = ext
	if got := pm.GetMapping(tcp); !got.Equal(ext) {
		t.Fatalf("GetMapping = %v, want %v", got, ext)
	}
	pm.GetMapping(quic)
	pm.GetMapping(tcp) // the same answer again is no change
	want := []PortMapping{{Listen: tcp.String(), External: ext.String()}}
	if got := pm.Mappings(); len(got) != 1 || got[0] != want[0] || changes != 1 {
		t.Fatalf("after mapping: %v (%d changes), want %v (1 change)", got, changes, want)
	}
	// go-libp2p answers an IPv6 listen address with the IPv4 mapping of
	// its port: not a mapping of the IPv6 address.
	tcp6 := ma.StringCast("/ip6/::/tcp/4601")
	nat.mapped[tcp6.String()] = ext
	if got := pm.GetMapping(tcp6); !got.Equal(ext) || len(pm.Mappings()) != 1 {
		t.Fatalf("IPv6 listen address: GetMapping = %v, mappings %v; want the answer passed on and one mapping", got, pm.Mappings())
	}
	delete(nat.mapped, tcp.String()) // the router forgot it
	pm.GetMapping(tcp)
	if got := pm.Mappings(); len(got) != 0 || changes != 2 {
		t.Fatalf("after the router dropped it: %v (%d changes)", got, changes)
	}
}

func TestMappable(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		want  bool
	}{
		{[]string{"/ip4/127.0.0.1/tcp/0"}, false},
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip6/::1/udp/0/quic-v1"}, false},
		{[]string{"/ip4/0.0.0.0/tcp/4601"}, true},
		{[]string{"/ip6/::/tcp/4601"}, true},
		{[]string{"/ip4/192.168.1.10/tcp/4601"}, true},
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/10.0.0.2/udp/4601/quic-v1"}, true},
	} {
		var addrs []ma.Multiaddr
		for _, s := range tc.addrs {
			addrs = append(addrs, ma.StringCast(s))
		}
		if got := mappable(addrs); got != tc.want {
			t.Errorf("mappable(%v) = %v, want %v", tc.addrs, got, tc.want)
		}
	}
}

func TestConfigPortMap(t *testing.T) {
	apply := func(fc FileConfig) *Config {
		t.Helper()
		opts, err := fc.Options()
		if err != nil {
			t.Fatal(err)
		}
		c, err := defaults()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			if err := o(c); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	fc := DefaultFileConfig()
	if apply(fc).PortMapOff {
		t.Fatal("a config without port_map must map ports")
	}
	off := false
	fc.PortMap = &off
	if !apply(fc).PortMapOff {
		t.Fatal(`"port_map": false must turn port mapping off`)
	}
}
