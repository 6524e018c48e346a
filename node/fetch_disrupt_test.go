package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// slowSourceNet is a mocknet of n boxes whose uploads are slow, so that a
// fetch is still running when the test disrupts it, with the given stall
// timeout: a short one makes the fetch ask again (at a quarter of it) well
// before the test's deadline, and fail if it never does. It tests
// bitswap's recovery: the bulk path is off (it would fetch the file in
// one stream, and fall back to this).
func slowSourceNet(t *testing.T, n int, stall time.Duration) *testnet.Network {
	return newMocknet(t, n, node.WithReceipts(false), node.WithSpread(0),
		node.WithUploadLimit(1<<20), node.WithStallTimeout(stall), node.WithBulk(false))
}

// fetchWhileSourceLeaves has box 1 of nw (4 boxes) fetch size random bytes
// that box 2 added; once after bytes arrived, box 2 leaves and box 3, which
// box 1 was connected to all along (no new connection, so bitswap never
// sent it the wants that went to box 2), adds the same bytes. It returns
// the fetch's result and when box 2 left.
func fetchWhileSourceLeaves(ctx context.Context, t *testing.T, nw *testnet.Network, size int, after int64) (node.FetchResult, time.Time) {
	t.Helper()
	box, src, late := nw.Nodes[1], nw.Nodes[2], nw.Nodes[3]
	added, path, want := addRandom(ctx, t, src, size)
	if _, err := late.Host().Network().DialPeer(ctx, box.ID()); err != nil {
		t.Fatalf("connect the late box: %v", err)
	}
	var left time.Time
	res := fetchThrough(ctx, t, box, added, size, want, after, func() error {
		left = time.Now()
		if err := nw.Leave(2); err != nil {
			return err
		}
		_, err := late.AddPath(ctx, path)
		return err
	})
	return res, left
}

// fetchThrough fetches root (size bytes, hashing to want) to box and runs
// disrupt once the fetch has fetched after bytes, in its own goroutine (the
// progress callback must not block the fetch). It fails the test unless
// disrupt ran and succeeded before the fetch ended and the box got the
// bytes whole.
func fetchThrough(ctx context.Context, t *testing.T, box *node.Node, root node.AddResult, size int, want [32]byte, after int64, disrupt func() error) node.FetchResult {
	t.Helper()
	var once sync.Once
	done := make(chan error, 1)
	progress := func(p node.FetchProgress) {
		if p.Fetched >= after {
			once.Do(func() { go func() { done <- disrupt() }() })
		}
	}
	res, err := box.Fetch(ctx, root.Root, progress)
	if err != nil {
		t.Fatalf("fetch through the disruption: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("disrupt the fetch: %v", err)
		}
	default:
		t.Fatal("the disruption never happened during the fetch: the test proved nothing")
	}
	if res.Bytes < int64(size) {
		t.Fatalf("fetched %d bytes of %d", res.Bytes, size)
	}
	out := t.TempDir() + "/out.bin"
	if _, err := box.Get(ctx, root.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, out) != want {
		t.Fatal("the box got different bytes")
	}
	return res
}

// addRandom adds a random file of size bytes to n and returns what the add
// returned, the file's path and its hash.
func addRandom(ctx context.Context, t *testing.T, n *node.Node, size int) (node.AddResult, string, [32]byte) {
	t.Helper()
	path, want := randomFile(t, size)
	added, err := n.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return added, path, want
}

// A source that closes its connection to a box in the middle of the box's
// fetch (as a source over its connection limit trims its askers) is
// reached again: the fetch completes, byte for byte. Here bitswap's own
// provider search reconnects as well (it passes without the fetch's
// re-dial); in a crowd that search answers with other boxes, and the
// re-dial is what brings a lost source back.
func TestFetchRedialsSourceThatClosedTheConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw := slowSourceNet(t, 2, 8*time.Second)
	src, box := nw.Nodes[0], nw.Nodes[1]
	const size = 3 << 20
	added, _, want := addRandom(ctx, t, src, size)
	// The source drops the asker, as its connection manager would.
	fetchThrough(ctx, t, box, added, size, want, 512<<10, func() error {
		return src.Host().Network().ClosePeer(box.ID())
	})
}

// A fetch whose only source left in the middle finishes from a box that
// got the content afterwards: the box was connected all along (no new
// connection, so bitswap never sent it the wants that went to the source)
// and held none of the fetch's wants; the fetch asks again once its
// blocks stopped coming. (Without asking again, 4 of 5 runs stalled; in
// the fifth bitswap's own provider search found the late box in time.)
func TestFetchAsksAgainWhenItsSourceLeft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, _ := fetchWhileSourceLeaves(ctx, t, slowSourceNet(t, 4, 8*time.Second), 4<<20, 1<<20)
	t.Logf("the fetch asked again %d times", res.Rewants)
}

// A fetch in its end game (its last blocks) whose source left asks again
// soon, not at a quarter of the stall timeout: the box that got the content
// afterwards was connected all along and held none of its wants, as in the
// tail of a crowd. Asking again at a quarter of the stall timeout, the
// fetch would end after that at the soonest (bitswap's own provider search
// may find the late box earlier, so a pass without the end game is
// possible; a failure is not).
func TestFetchEndGameAsksAgainSoon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const stall, size = 60 * time.Second, 4 << 20
	res, left := fetchWhileSourceLeaves(ctx, t, slowSourceNet(t, 4, stall), size, size-(1<<20)+1)
	took := time.Since(left)
	if took >= stall/4 {
		t.Fatalf("the fetch ended %.1f s after its source left: it did not ask again in its end game (asked again %d times)", took.Seconds(), res.Rewants)
	}
	if res.Rewants == 0 {
		t.Logf("bitswap found the late box itself (%.1f s)", took.Seconds())
	}
	t.Logf("ended %.1f s after the source left, asked again %d times", took.Seconds(), res.Rewants)
}
