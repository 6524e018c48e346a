package dht

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"github.com/orecdn/ore/internal/testkit"
)

func newHost(t *testing.T) host.Host {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func info(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

func TestProvideAndFindOverOrePrefix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var hosts []host.Host
	var routers []*Router
	for i := 0; i < 4; i++ {
		h := newHost(t)
		var opts []Option
		opts = append(opts, WithMode(ModeServer))
		if i > 0 {
			opts = append(opts, WithBootstrapPeers([]peer.AddrInfo{info(hosts[0])}))
		}
		r, err := New(h, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		hosts, routers = append(hosts, h), append(routers, r)
	}
	for _, r := range routers[1:] {
		if err := r.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The DHT speaks /ore/kad/1.0.0 and not the public protocol.
	protos, _ := hosts[1].Peerstore().GetProtocols(hosts[0].ID())
	var ore, public bool
	for _, p := range protos {
		ore = ore || p == "/ore/kad/1.0.0"
		public = public || p == "/ipfs/kad/1.0.0"
	}
	if !ore || public {
		t.Fatalf("protocols %v: want /ore/kad/1.0.0 only", protos)
	}
	h, _ := mh.Sum([]byte("content"), mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, h)
	if err := routers[3].Provide(ctx, c); err != nil {
		t.Fatal(err)
	}
	provs, err := routers[1].FindProviders(ctx, c, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(provs) != 1 || provs[0].ID != hosts[3].ID() {
		t.Fatalf("providers %v, want box 3", provs)
	}
}

func TestBootstrapErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lonely, err := New(newHost(t))
	if err != nil {
		t.Fatal(err)
	}
	defer lonely.Close()
	h, _ := mh.Sum([]byte("x"), mh.SHA2_256, -1)
	if err := lonely.Provide(ctx, cid.NewCidV1(cid.Raw, h)); !errors.Is(err, ErrNoPeers) {
		t.Fatalf("provide with no peers: %v", err)
	}
	ghost := testkit.NewParty(t).ID
	addr, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/1")
	r, err := New(newHost(t), WithBootstrapPeers([]peer.AddrInfo{{ID: ghost, Addrs: []ma.Multiaddr{addr}}}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Bootstrap(ctx); err == nil {
		t.Fatal("bootstrap with only unreachable peers succeeded")
	}
	if _, err := ParseMode("sideways"); err == nil {
		t.Fatal("bad mode accepted")
	}
}
