package committee

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/ledger"
)

// chainServer is an offline Committee serving n final blocks over
// ChainProtocol, with the given limiter, on a host of its own.
func chainServer(t *testing.T, n int, lim *syncLimiter) (*Committee, host.Host) {
	t.Helper()
	c, keys := offline(t)
	c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	t.Cleanup(c.cancel)
	c.syncLimit = lim
	var err error
	if c.chain, err = openChain(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.chain.close() })
	s, err := ledger.NewState(c.cfg.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	proposer := c.cfg.Genesis.Committee[0].ID
	for i := range n {
		b, next, _, err := ledger.Build(s, uint64(i+1), proposer, int64(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[:2] {
			if err := b.Sign(k); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.chain.put(b, nil); err != nil {
			t.Fatal(err)
		}
		s = next
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(ChainProtocol, c.serveChain)
	return c, h
}

func client(t *testing.T, server host.Host) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// A peer that asks for more blocks than its bucket holds is cut off with
// an error (never a shorter chain); another peer is not.
func TestChainSyncRateLimitPerPeer(t *testing.T) {
	const blocks = 5
	// A bucket of exactly one chain, refilled at a block a day: the
	// second request waits for longer than maxWait, however fast or
	// slow the machine.
	lim := &syncLimiter{rate: 1.0 / 86400, burst: blocks, streams: 2, maxWait: time.Minute, now: time.Now, peers: make(map[peer.ID]*syncBucket)}
	c, srv := chainServer(t, blocks, lim)
	ctx := context.Background()
	greedy := client(t, srv)
	got, err := fetchBatch(ctx, greedy, srv.ID(), 1)
	if err != nil || len(got) != blocks {
		t.Fatalf("first request: %d blocks, %v", len(got), err)
	}
	if got, err := fetchBatch(ctx, greedy, srv.ID(), 1); err == nil {
		t.Fatalf("a second request within the burst's refill got %d blocks and no error", len(got))
	}
	if n := testutil.ToFloat64(c.metrics.sync.limited.WithLabelValues("rate")); n != 1 {
		t.Fatalf("rate limits counted %v", n)
	}
	if got, err := fetchBatch(ctx, client(t, srv), srv.ID(), 1); err != nil || len(got) != blocks {
		t.Fatalf("another peer: %d blocks, %v", len(got), err)
	}
	if n := testutil.ToFloat64(c.metrics.sync.served); n != 2*blocks {
		t.Fatalf("served %v blocks, want %d", n, 2*blocks)
	}
}

// A peer with its most chain streams open gets the next one reset.
func TestChainSyncStreamsPerPeer(t *testing.T) {
	lim := newSyncLimiter(time.Now)
	c, srv := chainServer(t, 3, lim)
	ctx := context.Background()
	cl := client(t, srv)
	// Streams that never send their request hold their slots (until
	// syncTimeout).
	for range syncStreams {
		s, err := cl.NewStream(ctx, srv.ID(), ChainProtocol)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		if _, err := s.Write(nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Minute, "the idle streams open on the server", func() bool { return lim.opened(cl.ID()) == syncStreams })
	if got, err := fetchBatch(ctx, cl, srv.ID(), 1); err == nil {
		t.Fatalf("a stream over the limit got %d blocks and no error", len(got))
	}
	if n := testutil.ToFloat64(c.metrics.sync.limited.WithLabelValues("streams")); n != 1 {
		t.Fatalf("stream limits counted %v", n)
	}
	if got, err := fetchBatch(ctx, client(t, srv), srv.ID(), 1); err != nil || len(got) != 3 {
		t.Fatalf("another peer: %d blocks, %v", len(got), err)
	}
}

func TestSyncLimiterPaces(t *testing.T) {
	now := time.Unix(1_000, 0)
	lim := &syncLimiter{rate: 10, burst: 2, streams: 1, maxWait: time.Second, now: func() time.Time { return now },
		peers: make(map[peer.ID]*syncBucket)}
	for i, want := range []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond} {
		if wait, ok := lim.take("p"); !ok || wait != want {
			t.Fatalf("block %d: wait %v %v, want %v", i, wait, ok, want)
		}
	}
	now = now.Add(300 * time.Millisecond) // pays the two owed, one more
	if wait, ok := lim.take("p"); !ok || wait != 0 {
		t.Fatalf("after the refill: wait %v %v", wait, ok)
	}
	lim.maxWait = 50 * time.Millisecond
	if _, ok := lim.take("p"); ok {
		t.Fatal("a block that waits longer than maxWait was allowed")
	}
	if !lim.open("p") || lim.open("p") {
		t.Fatal("stream slots: want one")
	}
	lim.close("p")
	if !lim.open("p") {
		t.Fatal("a closed stream's slot was not given back")
	}
}
