package bitswap

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// A request's wants stay in Wanting while it runs and leave once its
// context ended; a box that asks for them again waits for that.
func TestWantingUntilTheRequestEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mn := mocknet.New()
	defer mn.Close()
	a, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	store, _ := storedBlocks(t, 0)
	e, err := New(ctx, a, nil, store)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Blocks nobody has (the box has no peers): the wants stay until the
	// request ends.
	_, absent := storedBlocks(t, 3)
	cs := make([]cid.Cid, len(absent))
	for i, blk := range absent {
		cs[i] = blk.Cid()
	}
	if n := e.Wanting(cs); n != 0 {
		t.Fatalf("wanting %d blocks before any request", n)
	}
	rctx, rcancel := context.WithCancel(ctx)
	ch, err := e.NewSession(ctx).GetBlocks(rctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	for e.Wanting(cs) < len(cs) {
		select {
		case <-ctx.Done():
			t.Fatalf("the request's wants never showed: wanting %d of %d", e.Wanting(cs), len(cs))
		case <-time.After(10 * time.Millisecond):
		}
	}
	rcancel()
	for range ch {
		t.Fatal("a block nobody has arrived")
	}
	for e.Wanting(cs) > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("the ended request's wants never left: wanting %d of %d", e.Wanting(cs), len(cs))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := e.Wanting(nil); n != 0 {
		t.Fatalf("wanting %d of no blocks", n)
	}
}
