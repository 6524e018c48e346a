package node

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/orecdn/ore/dht"
	"github.com/orecdn/ore/internal/testkit"
)

// syncBuffer is a log sink goroutines write while the test reads it.
type syncBuffer = testkit.SyncBuffer

// startBox starts a box on listen with a fresh repo.
func startBox(t *testing.T, listen []string, opts ...Option) *Node {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, DefaultFileConfig()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := New(ctx, append([]Option{WithRepo(dir), WithListenAddrs(listen...), WithDHTMode(dht.ModeServer)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close box: %v", err)
		}
	})
	return n
}

func TestDefaultListenAddrsAreDualStack(t *testing.T) {
	var v4, v6 int
	for _, s := range DefaultListenAddrs {
		m := ma.StringCast(s)
		ip, err := manet.ToIP(m)
		if err != nil || !ip.IsUnspecified() {
			t.Fatalf("default listen address %s: want an unspecified IP (every address of the machine)", s)
		}
		if ip.To4() != nil {
			v4++
		} else {
			v6++
		}
	}
	if v4 != 2 || v6 != 2 {
		t.Fatalf("default listen addresses %v: want TCP and QUIC on IPv4 and on IPv6", DefaultListenAddrs)
	}
}

// TestStartsWhenAnAddressCannotListen: a box whose config names an
// address the machine cannot listen on (IPv6 on a machine without it, or
// an address it does not have) starts on the others and says which.
func TestStartsWhenAnAddressCannotListen(t *testing.T) {
	var logs syncBuffer
	bad := "/ip4/192.0.2.1/tcp/0" // TEST-NET-1: no machine has it
	n := startBox(t, []string{"/ip4/127.0.0.1/tcp/0", bad},
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	var ips []ma.Multiaddr
	for _, a := range n.Host().Network().ListenAddresses() {
		if _, err := manet.ToIP(a); err == nil {
			ips = append(ips, a)
		}
	}
	if len(ips) != 1 {
		t.Fatalf("listening on %v, want the loopback address alone", n.Host().Network().ListenAddresses())
	}
	if !strings.Contains(logs.String(), "not listening") || !strings.Contains(logs.String(), "192.0.2.1") {
		t.Fatalf("the box did not say which address does not listen; logs:\n%s", logs.String())
	}
}

func TestNotListening(t *testing.T) {
	cast := func(ss ...string) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, s := range ss {
			out = append(out, ma.StringCast(s))
		}
		return out
	}
	want := cast("/ip4/0.0.0.0/tcp/4601", "/ip6/::/tcp/4601", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip6/::/udp/4601/quic-v1")
	got := cast("/ip4/0.0.0.0/tcp/4601", "/ip4/127.0.0.1/udp/40123/quic-v1", "/ip6/::/udp/4602/quic-v1")
	missing := notListening(want, got)
	if len(missing) != 2 || missing[0].String() != "/ip6/::/tcp/4601" || missing[1].String() != "/ip6/::/udp/4601/quic-v1" {
		t.Fatalf("notListening = %v, want /ip6/::/tcp/4601 and /ip6/::/udp/4601/quic-v1", missing)
	}
}

// TestTwoBoxesOverIPv6Loopback: boxes that listen on IPv6 alone find and
// fetch from each other (skipped where the machine has no IPv6).
func TestTwoBoxesOverIPv6Loopback(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	l.Close()
	listen := []string{"/ip6/::1/tcp/0", "/ip6/::1/udp/0/quic-v1"}
	a := startBox(t, listen)
	b := startBox(t, listen, WithBootstrapPeers(a.AddrInfo()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := randomBytes(t, 1<<20)
	root := addBytes(t, a, data)
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, root, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range b.Host().Network().ConnsToPeer(a.ID()) {
		if ip, _ := manet.ToIP(c.RemoteMultiaddr()); ip.To4() != nil {
			t.Fatalf("connected over %s, want IPv6", c.RemoteMultiaddr())
		}
	}
	if !has(t, b, root) {
		t.Fatal("the root is not on the fetching box")
	}
}
