package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
)

// TestChainReadsPages: the follower reads a chain longer than one page of
// its source a page at a time, each page from the state the last one
// ended at, until a page comes back empty, and ends at the chain's head
// state; the next refresh reads only blocks made since.
func TestChainReadsPages(t *testing.T) {
	const network, page = "ore-web-test", 3
	coms, acc := testkit.NewParties(t, 1, 3), testkit.NewParties(t, 2, 2)
	com := coms[0]
	var members []ledger.Member
	for i, p := range coms {
		members = append(members, ledger.Member{ID: p.ID, Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4700+i)}})
	}
	g, err := ledger.NewGenesis(network, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), members,
		map[peer.ID]uint64{acc[0].ID: 1_000_000, acc[1].ID: 1_000_000}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ledger.NewState(g)
	if err != nil {
		t.Fatal(err)
	}
	var chainBlocks []*ledger.Block
	states := []*ledger.State{st}
	grow := func(n int) {
		for range n {
			s := states[len(states)-1]
			tx := ledger.NewTransfer(acc[0].ID, acc[1].ID, s.Nonce(acc[0].ID)+1, 7)
			if err := tx.Sign(network, acc[0].Key); err != nil {
				t.Fatal(err)
			}
			epoch := s.Height() + 1
			b, next, rej, err := ledger.Build(s, epoch, com.ID, int64(epoch)*int64(g.Params().EpochLength), []ledger.Tx{tx})
			if err != nil || len(rej) > 0 {
				t.Fatalf("build block %d: %v %v", epoch, err, rej)
			}
			chainBlocks = append(chainBlocks, b)
			states = append(states, next)
		}
	}
	grow(10)
	var calls, biggest int
	src := func(_ context.Context, base *ledger.State) (*ledger.State, []*ledger.Block, error) {
		calls++
		from := uint64(0)
		if base != nil {
			from = base.Height()
		}
		to := min(from+page, uint64(len(chainBlocks)))
		out := chainBlocks[from:to]
		biggest = max(biggest, len(out))
		return states[to], out, nil
	}
	c := newChain(acc[1].ID, g, src)
	if err := c.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	head := states[len(states)-1]
	if f := c.figures(); f.State == nil || f.State.Hash() != head.Hash() || f.Err != "" {
		t.Fatalf("after paging the follower is at %v, the chain at height %d (%s)", f.State, head.Height(), f.Err)
	}
	if biggest > page || calls != 10/page+2 {
		t.Fatalf("%d reads of at most %d blocks; want %d reads of at most %d", calls, biggest, 10/page+2, page)
	}
	grow(2)
	calls = 0
	if err := c.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := c.figures(); f.State.Hash() != states[len(states)-1].Hash() || calls != 2 {
		t.Fatalf("a refresh after 2 new blocks: height %d in %d reads", f.State.Height(), calls)
	}
	// Transfers are not earnings.
	if f := c.figures(); f.Err != "" || f.Total != (Figure{Period: "total"}) {
		t.Fatalf("the receiver's figures after 12 transfers of 7: %+v, %q", f.Total, f.Err)
	}
	// A block whose reading does not add up (here: states swapped, the
	// receiver's balance falls) leaves the figures incomplete, and the
	// reads after it say so still.
	c.mu.Lock()
	c.account(states[2], states[1], chainBlocks[1])
	c.mu.Unlock()
	grow(1)
	if err := c.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := c.figures(); !strings.Contains(f.Err, "incomplete") {
		t.Fatalf("after a block that did not add up, the figures say %q", f.Err)
	}
}
