package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
)

// linking returns a dag-pb node that links each of cids.
func linking(t *testing.T, cids []cid.Cid) *merkledag.ProtoNode {
	t.Helper()
	nd := new(merkledag.ProtoNode)
	for i, c := range cids {
		if err := nd.AddRawLink(fmt.Sprint(i), &format.Link{Cid: c, Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return nd
}

// leaves returns n distinct raw blocks.
func leaves(t *testing.T, prefix string, n int) ([]blocks.Block, []cid.Cid) {
	t.Helper()
	bs := make([]blocks.Block, n)
	cs := make([]cid.Cid, n)
	for i := range bs {
		bs[i] = rawBlock(t, []byte(fmt.Sprintf("%s %d", prefix, i)))
		cs[i] = bs[i].Cid()
	}
	return bs, cs
}

func putAll(t *testing.T, n *Node, bs ...blocks.Block) {
	t.Helper()
	if err := n.store.PutMany(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
}

// wideDAG is a root linking parents nodes of width leaves each: a level
// of parents×width leaves. It returns the root and every block.
func wideDAG(t *testing.T, parents, width int) (cid.Cid, []blocks.Block) {
	t.Helper()
	var all []blocks.Block
	ps := make([]cid.Cid, parents)
	for i := range ps {
		bs, cs := leaves(t, fmt.Sprint("leaf of ", i), width)
		p := linking(t, cs)
		all = append(append(all, bs...), p)
		ps[i] = p.Cid()
	}
	root := linking(t, ps)
	return root.Cid(), append(all, root)
}

// fetchLocal fetches root on a box that holds root's whole DAG or a part
// of it, with a stall timeout sized to a fetch that needs no network.
func fetchLocal(t *testing.T, n *Node, root cid.Cid) (FetchResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Fetch(ctx, root, nil)
}

// TestFetchRefusesANodeWithTooManyLinks: a node with more links than a
// UnixFS node has fails the fetch at once, with ErrDAGTooLarge naming the
// cap, instead of asking for every link.
func TestFetchRefusesANodeWithTooManyLinks(t *testing.T) {
	n := newTestBox(t, WithStallTimeout(2*time.Second))
	_, cs := leaves(t, "never stored", maxNodeLinks+1)
	root := linking(t, cs)
	putAll(t, n, root)
	_, err := fetchLocal(t, n, root.Cid())
	if !errors.Is(err, ErrDAGTooLarge) {
		t.Fatalf("fetch of a node with %d links: %v, want ErrDAGTooLarge", maxNodeLinks+1, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(maxNodeLinks)) {
		t.Fatalf("the error does not say the cap: %v", err)
	}
}

// TestFetchStopsPastMaxFetchBlocks: a DAG with more blocks than the
// fetch's limit fails with ErrDAGTooLarge saying how to raise it, and
// one at the limit is fetched whole.
func TestFetchStopsPastMaxFetchBlocks(t *testing.T) {
	root, all := wideDAG(t, 4, 300)
	limit := int64(len(all))

	over := newTestBox(t, WithStallTimeout(2*time.Second), WithMaxFetchBlocks(limit-1))
	putAll(t, over, all...)
	_, err := fetchLocal(t, over, root)
	if !errors.Is(err, ErrDAGTooLarge) {
		t.Fatalf("fetch of %d blocks with a limit of %d: %v, want ErrDAGTooLarge", limit, limit-1, err)
	}
	if !strings.Contains(err.Error(), "WithMaxFetchBlocks") || !strings.Contains(err.Error(), fmt.Sprint(limit-1)) {
		t.Fatalf("the error does not say the limit and how to raise it: %v", err)
	}

	at := newTestBox(t, WithStallTimeout(2*time.Second), WithMaxFetchBlocks(limit))
	putAll(t, at, all...)
	res, err := fetchLocal(t, at, root)
	if err != nil {
		t.Fatalf("fetch of %d blocks with a limit of %d: %v", limit, limit, err)
	}
	if res.Blocks != limit {
		t.Fatalf("fetched %d blocks, want %d", res.Blocks, limit)
	}
}

// TestFetchExpandsARepeatedNodeOnce: a chain of nodes each linking the
// next twice is fetched in a visit per link, not one per path (2^depth).
func TestFetchExpandsARepeatedNodeOnce(t *testing.T) {
	const depth = 64
	n := newTestBox(t, WithStallTimeout(2*time.Second), WithMaxFetchBlocks(2*depth+2))
	leaf := rawBlock(t, []byte("the bottom"))
	all := []blocks.Block{leaf}
	c := leaf.Cid()
	for range depth {
		nd := linking(t, []cid.Cid{c, c})
		all = append(all, nd)
		c = nd.Cid()
	}
	putAll(t, n, all...)
	if _, err := fetchLocal(t, n, c); err != nil {
		t.Fatalf("fetch of a %d-deep chain of doubled links: %v", depth, err)
	}
}

// TestLevelSourceHoldsOneNodesLinks: a level is read a chunk at a time
// from its parents' links; the source never holds more than one parent's
// links and the chunk asked for, whatever the level's width.
func TestLevelSourceHoldsOneNodesLinks(t *testing.T) {
	const parents, width, chunk = 5, 1000, 256
	n := newTestBox(t)
	root, all := wideDAG(t, parents, width)
	putAll(t, n, all...)
	f := &fetch{n: n, root: root, ctx: context.Background()}
	rootLinks, err := f.readLinks(root)
	if err != nil {
		t.Fatal(err)
	}
	src := &levelSource{f: f, parents: rootLinks}
	total := 0
	for {
		got, err := src.next(chunk)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if len(got) > chunk || len(src.links) > width {
			t.Fatalf("the source yielded %d CIDs and holds %d links: more than a chunk (%d) and one node's links (%d)", len(got), len(src.links), chunk, width)
		}
		total += len(got)
	}
	if total != parents*width {
		t.Fatalf("the level yielded %d CIDs, want %d", total, parents*width)
	}
}

// TestFetchDoesNotHoldAWideLevel: a level of half a million links (512
// local nodes of 1,024 links each, to leaves nobody has) is read a chunk
// at a time: the fetch's live heap never grows by the level's CIDs (~32
// MiB), and it fails with ErrDAGTooLarge as soon as the level's chunks
// pass its limit. Measured after a full collection, so garbage does not count.
func TestFetchDoesNotHoldAWideLevel(t *testing.T) {
	// Measured in a child process whose collections stop the world: a
	// concurrent collection counts what the fetch allocates while it
	// marks (a decoded node's links, garbage a moment later) as live, 8-20
	// MiB here. Stopped, it finds ~0.3 MiB; the fetch that held the
	// level, 61 MiB.
	if os.Getenv("ORE_TEST_STW_GC") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFetchDoesNotHoldAWideLevel$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "ORE_TEST_STW_GC=1", "GODEBUG=gcstoptheworld=1")
		out, err := cmd.CombinedOutput()
		t.Logf("child process:\n%s", out)
		if err != nil {
			t.Fatalf("the measuring child process failed: %v", err)
		}
		return
	}
	// Nodes of 1,024 links: decoding one takes ~0.6 MiB while it is read
	// (~10 MiB for one of maxNodeLinks), far under what the level holds.
	const parents, width = 512, 1024
	const limit = 1 + parents + fetchChunk // the level's second chunk is past it
	n := newTestBox(t, WithStallTimeout(2*time.Second), WithMaxFetchBlocks(limit))
	prefix := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}
	ps := make([]cid.Cid, parents)
	nodes := make([]blocks.Block, 0, parents+1)
	for i := range ps {
		cs := make([]cid.Cid, width)
		for j := range cs {
			c, err := prefix.Sum([]byte(fmt.Sprint("leaf ", i, " ", j)))
			if err != nil {
				t.Fatal(err)
			}
			cs[j] = c
		}
		p := linking(t, cs)
		nodes = append(nodes, p)
		ps[i] = p.Cid()
	}
	root := linking(t, ps)
	putAll(t, n, append(nodes, root)...)
	nodes = nil
	// The store's caches fill as the fetch reads the nodes: read them once
	// before, so that the heap's growth is the fetch's.
	for _, p := range ps {
		if _, err := n.store.Get(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}

	// The bytes a collection found live: what was allocated after it
	// (the fetch runs on) does not count.
	live := func() uint64 {
		runtime.GC()
		sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := live()
	done := make(chan struct{})
	peak := make(chan uint64, 1)
	go func() {
		var most uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			most = max(most, live())
			select {
			case <-done:
				peak <- max(most, live())
				return
			case <-tick.C:
			}
		}
	}()
	_, err := fetchLocal(t, n, root.Cid())
	close(done)
	grew := int64(<-peak) - int64(base)
	const most = 12 << 20
	if grew > most {
		t.Fatalf("the live heap grew by %d MiB during the fetch of a level of %d links, more than %d MiB: the level was held", grew>>20, parents*width, most>>20)
	}
	if !errors.Is(err, ErrDAGTooLarge) {
		t.Fatalf("fetch of a level of %d links with a limit of %d blocks: %v, want ErrDAGTooLarge", parents*width, limit, err)
	}
	t.Logf("the live heap grew by %d KiB", grew>>10)
}

// TestFetchStopsPastALevelsParents: a level with more nodes with links
// than a fetch holds for the next level fails with ErrDAGTooLarge naming
// the cap (lowered here to 3; maxLevelParents is 1 Mi).
func TestFetchStopsPastALevelsParents(t *testing.T) {
	n := newTestBox(t, WithStallTimeout(2*time.Second), withLevelParents(t, 3))
	root, all := wideDAG(t, 4, 2)
	putAll(t, n, all...)
	_, err := fetchLocal(t, n, root)
	if !errors.Is(err, ErrDAGTooLarge) || !strings.Contains(err.Error(), "more than 3 nodes with links") {
		t.Fatalf("fetch of a level of 4 nodes with links, 3 allowed: %v, want ErrDAGTooLarge naming the cap", err)
	}
	again, all := wideDAG(t, 3, 2)
	putAll(t, n, all...)
	if _, err := fetchLocal(t, n, again); err != nil {
		t.Fatalf("fetch of a level of 3 nodes with links, 3 allowed: %v", err)
	}
}
