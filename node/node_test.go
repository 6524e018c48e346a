package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

func newNet(t *testing.T, n int, opts ...node.Option) *testnet.Network {
	t.Helper()
	return newNetWith(t, n, nil, opts...)
}

// newMocknet is newNet on go-libp2p's mocknet.
func newMocknet(t *testing.T, n int, opts ...node.Option) *testnet.Network {
	t.Helper()
	return newNetWith(t, n, []testnet.Option{testnet.WithMocknet(mocknet.LinkOptions{})}, opts...)
}

// newNetWith is a network of n boxes with the network options netOpts and
// every box's opts, closed when the test ends.
func newNetWith(t *testing.T, n int, netOpts []testnet.Option, opts ...node.Option) *testnet.Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := testnet.New(ctx, n, append([]testnet.Option{testnet.WithDir(t.TempDir()), testnet.WithNodeOptions(opts...)}, netOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
	})
	return nw
}

func randomFile(t *testing.T, size int) (string, [32]byte) {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "random.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(data)
}

func fileHash(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTwoBoxesAddGet(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	src, want := randomFile(t, 8<<20)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != 8<<20 {
		t.Fatalf("add read %d bytes, want %d", res.Bytes, 8<<20)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	fr, err := nw.Nodes[1].Get(ctx, res.Root, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileHash(t, out); got != want {
		t.Fatal("fetched file differs from the added one")
	}
	if fr.Fetched < 8<<20 {
		t.Fatalf("fetched %d bytes from the network, want at least %d", fr.Fetched, 8<<20)
	}
	// A second get is served from the local store.
	fr2, err := nw.Nodes[1].Fetch(ctx, res.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fr2.Fetched != 0 || fr2.Blocks != fr.Blocks {
		t.Fatalf("second fetch: fetched %d bytes, %d blocks; want 0 and %d", fr2.Fetched, fr2.Blocks, fr.Blocks)
	}
}

func TestTenBoxesFindProvidersThroughDHT(t *testing.T) {
	nw := newNet(t, 10)
	ctx := testCtx(t)
	pub, getter := nw.Nodes[4], nw.Nodes[9]
	src, want := randomFile(t, 1<<20)
	res, err := pub.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Provided {
		t.Fatalf("root not announced: %s", res.ProvideErr)
	}
	// Make sure the getter has no connection to the publisher: it must learn
	// about it from the DHT.
	_ = getter.Host().Network().ClosePeer(pub.ID())
	if getter.Host().Network().Connectedness(pub.ID()) == network.Connected {
		t.Fatal("getter still connected to publisher")
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	fr, err := getter.Get(ctx, res.Root, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fileHash(t, out) != want {
		t.Fatal("fetched file differs")
	}
	if !slices.Contains(fr.Providers, pub.ID()) {
		t.Fatalf("DHT providers %v do not include the publisher %s", fr.Providers, pub.ID())
	}
}

func TestRestartKeepsContentAndIdentity(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	src, want := randomFile(t, 2<<20)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	id := nw.Nodes[0].ID()
	nd, err := nw.Restart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if nd.ID() != id {
		t.Fatalf("peer ID changed on restart: %s -> %s", id, nd.ID())
	}
	pinned, err := nd.Store().IsPinned(ctx, res.Root)
	if err != nil || !pinned {
		t.Fatalf("root not pinned after restart: %v %v", pinned, err)
	}
	if err := nw.Nodes[1].Connect(ctx, nd.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if _, err := nw.Nodes[1].Get(ctx, res.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, out) != want {
		t.Fatal("fetched file differs")
	}
}

func TestDirectoryRoundTrip(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(src, "a", "b", "deep.txt"), []byte("deep"), 0o644))
	must(os.WriteFile(filepath.Join(src, "empty"), nil, 0o644))
	big := make([]byte, 700<<10)
	_, _ = rand.Read(big)
	must(os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644))
	must(os.Symlink("big.bin", filepath.Join(src, "link")))
	res, err := nw.Nodes[0].AddPath(ctx, src)
	must(err)
	out := filepath.Join(t.TempDir(), "out")
	_, err = nw.Nodes[1].Get(ctx, res.Root, out, nil)
	must(err)
	for name, want := range map[string][]byte{"a/b/deep.txt": []byte("deep"), "empty": {}, "big.bin": big} {
		got, err := os.ReadFile(filepath.Join(out, name))
		must(err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs", name)
		}
	}
	target, err := os.Readlink(filepath.Join(out, "link"))
	must(err)
	if target != "big.bin" {
		t.Errorf("symlink points to %q", target)
	}
}

func TestBadInput(t *testing.T) {
	nw := newNet(t, 2, node.WithStallTimeout(2*time.Second))
	ctx := testCtx(t)
	t.Run("malformed CID", func(t *testing.T) {
		if _, err := node.ParseCID("bafy-not-a-cid"); err == nil {
			t.Fatal("malformed CID accepted")
		}
	})
	t.Run("unsupported codec", func(t *testing.T) {
		// a git-raw CID (0x78): ore serves UnixFS, raw and the IPLD
		// data codecs, not git objects
		_, err := node.ParseCID("baf4bcfeamvo2rwakvl4szzjvpz4crxajvwyatey")
		if !errors.Is(err, node.ErrUnsupported) {
			t.Fatalf("err = %v, want ErrUnsupported", err)
		}
	})
	t.Run("absent content", func(t *testing.T) {
		// The CID of bytes nobody added.
		nd := nw.Nodes[1]
		c, err := node.ParseCID("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = nd.Fetch(ctx, c, nil)
		if !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		// The reason is the missing record, not a path to a provider.
		if errors.Is(err, node.ErrNoDirectPath) || !strings.Contains(err.Error(), "no provider record found") {
			t.Fatalf("err = %v, want the reason: no provider record found", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("gave up after %s; the stall timeout is 2s", d)
		}
	})
	t.Run("unreadable path", func(t *testing.T) {
		_, err := nw.Nodes[0].AddPath(ctx, filepath.Join(t.TempDir(), "missing"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want not-exist", err)
		}
	})
	t.Run("output exists", func(t *testing.T) {
		src, _ := randomFile(t, 1000)
		res, err := nw.Nodes[0].AddPath(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nw.Nodes[0].Get(ctx, res.Root, src, nil); err == nil {
			t.Fatal("get overwrote an existing file")
		}
	})
}

func TestQuotaFull(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	small := nw.Nodes[1]
	nd, err := nw.Restart(ctx, 1, node.WithQuota(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	small = nd
	src, _ := randomFile(t, 512<<10)
	res, err := small.AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	big, _ := randomFile(t, 2<<20)
	if _, err := small.AddPath(ctx, big); !errors.Is(err, node.ErrQuotaFull) {
		t.Fatalf("add over quota: err = %v, want ErrQuotaFull", err)
	}
	bigRes, err := nw.Nodes[0].AddPath(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Connect(ctx, nw.Nodes[0].AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := small.Fetch(ctx, bigRes.Root, nil); !errors.Is(err, node.ErrQuotaFull) {
		t.Fatalf("fetch over quota: err = %v, want ErrQuotaFull", err)
	}
	// What was stored before is intact and still served.
	out := filepath.Join(t.TempDir(), "out")
	if _, err := nw.Nodes[0].Get(ctx, res.Root, out, nil); err != nil {
		t.Fatal(err)
	}
}
