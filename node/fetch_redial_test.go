package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orecdn/ore/node"
)

// A source that closes its connection to a box in the middle of the box's
// fetch (as a source over its connection limit trims its askers) is
// reached again: the fetch completes, byte for byte. Here bitswap's own
// provider search reconnects as well (it passes without the fetch's
// re-dial); in a crowd that search answers with other boxes, and the
// re-dial is what brings a lost source back.
func TestFetchRedialsSourceThatClosedTheConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A slow source, so that the fetch is still running when the
	// connection closes; a short stall timeout, so that the fetch asks
	// again (at a quarter of it) well before the test's deadline.
	nw := newMocknet(t, 2, node.WithReceipts(false), node.WithSpread(0),
		node.WithUploadLimit(1<<20), node.WithStallTimeout(8*time.Second))
	src, box := nw.Nodes[0], nw.Nodes[1]
	const size = 3 << 20
	path, want := randomFile(t, size)
	added, err := src.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}

	var once sync.Once
	closed := make(chan error, 1)
	progress := func(p node.FetchProgress) {
		if p.Fetched < 512<<10 {
			return
		}
		once.Do(func() {
			// The source drops the asker, as its connection manager
			// would; the progress callback must not block the fetch.
			go func() { closed <- src.Host().Network().ClosePeer(box.ID()) }()
		})
	}
	res, err := box.Fetch(ctx, added.Root, progress)
	if err != nil {
		t.Fatalf("fetch after the source closed the connection: %v", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close the connection: %v", err)
		}
	default:
		t.Fatal("the connection was never closed: the test proved nothing")
	}
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
