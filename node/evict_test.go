package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/testkit"
)

// newTestBox starts a box on loopback with a fresh repo.
func newTestBox(t *testing.T, opts ...Option) *Node {
	t.Helper()
	return startBox(t, []string{"/ip4/127.0.0.1/tcp/0"}, opts...)
}

func addBytes(t *testing.T, n *Node, data []byte) cid.Cid {
	t.Helper()
	res, err := n.Add(context.Background(), files.NewBytesFile(data), AddNoProvide())
	if err != nil {
		t.Fatal(err)
	}
	return res.Root
}

func randomBytes(t *testing.T, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// blocksOf lists the blocks of root's DAG that are local on n.
func blocksOf(t *testing.T, n *Node, root cid.Cid) []cid.Cid {
	t.Helper()
	var out []cid.Cid
	if err := n.walkBlocks(context.Background(), root, func(c cid.Cid) { out = append(out, c) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func has(t *testing.T, n *Node, c cid.Cid) bool {
	t.Helper()
	ok, err := n.store.Has(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestEvictColdestUnprotectedFirst: under a small quota a box evicts the
// coldest content first, keeps blocks shared with content that stays, and
// never evicts pinned content, content under an order, or content it is
// serving.
func TestEvictColdestUnprotectedFirst(t *testing.T) {
	ctx := context.Background()
	pub := newTestBox(t)
	box := newTestBox(t, WithQuota(32<<20))
	if err := box.Connect(ctx, pub.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	shared := randomBytes(t, 2*mib)
	cold := addBytes(t, pub, shared)                                                 // fetched once
	hot := addBytes(t, pub, randomBytes(t, 2*mib))                                   // fetched three times
	ordered := addBytes(t, pub, randomBytes(t, 2*mib))                               // held by an order
	serving := addBytes(t, pub, append(bytes.Clone(shared), randomBytes(t, mib)...)) // shares cold's leaves, being served
	for _, r := range []cid.Cid{cold, hot, hot, hot, ordered, serving} {
		if _, err := box.Fetch(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	own := addBytes(t, box, randomBytes(t, 2*mib)) // pinned on the box

	box.sched.take(&heat.Order{Root: ordered, Until: box.sched.epoch() + 100, Reason: heat.ReasonHeat, Epoch: box.sched.epoch()})
	if !testkit.Eventually(10*time.Second, func() bool { st, _, ok := box.sched.orderOf(ordered); return ok && st == heat.OrderHeld }) {
		t.Fatal("the order on content already local did not become held")
	}
	box.sched.delivered(serving, 1, true)

	sharedBlocks := blocksOf(t, box, serving)
	coldBlocks := blocksOf(t, box, cold)
	used := box.store.Used()

	// One byte to free: the coldest root goes, and only it.
	res, err := box.Evict(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Roots) != 1 || res.Roots[0] != cold {
		t.Fatalf("evicted %v, want only the cold root %s", res.Roots, cold)
	}
	if has(t, box, cold) {
		t.Fatal("the cold root's block is still stored")
	}
	for _, c := range sharedBlocks {
		if !has(t, box, c) {
			t.Fatalf("block %s, shared with content that stays, was evicted", c)
		}
	}
	if len(coldBlocks) < 2 || res.Freed <= 0 || res.Freed > used-box.store.Used() || box.store.Used() >= used {
		t.Fatalf("freed %d bytes (used %d -> %d)", res.Freed, used, box.store.Used())
	}

	// Asking for everything takes only what nothing protects.
	res, err = box.Evict(ctx, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Roots) != 1 || res.Roots[0] != hot {
		t.Fatalf("second eviction took %v, want only %s", res.Roots, hot)
	}
	for _, r := range []cid.Cid{ordered, serving, own} {
		for _, c := range blocksOf(t, box, r) {
			if !has(t, box, c) {
				t.Fatalf("block %s of protected root %s was evicted", c, r)
			}
		}
		if !box.isComplete(ctx, r) {
			t.Fatalf("protected root %s is no longer whole", r)
		}
	}
	if box.isComplete(ctx, hot) || box.isComplete(ctx, cold) {
		t.Fatal("an evicted root is still reported whole")
	}
	// An evicted root can be fetched again.
	if _, err := box.Fetch(ctx, cold, nil); err != nil {
		t.Fatalf("fetch after eviction: %v", err)
	}
}

// TestFetchEvictsWhenFull: a get onto a full box makes room from cold
// content instead of failing.
func TestFetchEvictsWhenFull(t *testing.T) {
	ctx := context.Background()
	pub := newTestBox(t)
	box := newTestBox(t, WithQuota(5<<20))
	if err := box.Connect(ctx, pub.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	a := addBytes(t, pub, randomBytes(t, 3<<20))
	b := addBytes(t, pub, randomBytes(t, 3<<20))
	if _, err := box.Fetch(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := box.Fetch(ctx, b, nil); err != nil {
		t.Fatalf("second fetch on a full box: %v", err)
	}
	if box.isComplete(ctx, a) || has(t, box, a) {
		t.Fatal("the first root was not evicted to make room")
	}
	if box.store.Used() > box.store.Quota() {
		t.Fatalf("used %d over quota %d", box.store.Used(), box.store.Quota())
	}
}

func rawBlock(t *testing.T, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
