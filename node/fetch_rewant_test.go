package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orecdn/ore/node"
)

// A fetch whose only source left in the middle finishes from a box that
// got the content afterwards: the box was connected all along (no new
// connection, so bitswap never sent it the wants that went to the source)
// and held none of the fetch's wants; the fetch asks again once its
// blocks stopped coming. (Without asking again, 4 of 5 runs stalled; in
// the fifth bitswap's own provider search found the late box in time.)
func TestFetchAsksAgainWhenItsSourceLeft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A slow source, so that the fetch is still running when it leaves;
	// a short stall timeout, so that the fetch asks again (at a quarter of
	// it) well before the test's deadline, and fails if it never does.
	nw := newMocknet(t, 4, node.WithReceipts(false), node.WithSpread(0),
		node.WithUploadLimit(1<<20), node.WithStallTimeout(8*time.Second))
	box, src, late := nw.Nodes[1], nw.Nodes[2], nw.Nodes[3]
	const size = 4 << 20
	path, want := randomFile(t, size)
	added, err := src.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Host().Network().DialPeer(ctx, box.ID()); err != nil {
		t.Fatalf("connect the late box: %v", err)
	}

	var once sync.Once
	left := make(chan error, 1)
	progress := func(p node.FetchProgress) {
		if p.Fetched < 1<<20 {
			return
		}
		once.Do(func() {
			// The progress callback must not block the fetch.
			go func() {
				if err := nw.Leave(2); err != nil {
					left <- err
					return
				}
				// The same bytes, added (and announced) by a box the
				// fetcher is already connected to.
				_, err := late.AddPath(ctx, path)
				left <- err
			}()
		})
	}
	res, err := box.Fetch(ctx, added.Root, progress)
	if err != nil {
		t.Fatalf("fetch after its source left: %v", err)
	}
	select {
	case err := <-left:
		if err != nil {
			t.Fatalf("source leaves, another box adds: %v", err)
		}
	default:
		t.Fatal("the source never left: the test proved nothing")
	}
	t.Logf("the fetch asked again %d times", res.Rewants)
	if res.Bytes < size {
		t.Fatalf("fetched %d bytes of %d", res.Bytes, size)
	}
	out := t.TempDir() + "/out.bin"
	if _, err := box.Get(ctx, added.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, out) != want {
		t.Fatal("the box got different bytes")
	}
}
