package committee

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// More receipts than a block holds: the leader fills one block, proposes
// the next at once with the rest, and every receipt is paid exactly once.
func TestFullBlockLeavesTheRestForTheNext(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("signs and verifies 50,000 receipts")
	}
	cl := newCluster(t)
	lead := cl.leader(t, 10*time.Second)
	root := testkit.Root(t, "full")
	cl.register(t, lead, root, 100_000_000_000)
	// The clock stands still from here: signing and checking 50,500
	// receipts takes seconds, many more on a loaded machine, and on a
	// running clock the last ones would outlive their epochs' skew before
	// a block took them. The test moves time once, to close their epoch.
	params := cl.g.Params()
	epoch := params.EpochAt(cl.clock.Freeze())
	// One (server, client, root, epoch) per receipt: a new client each.
	srv := newAccount(t)
	n := ledger.MaxBlockTxs + 500
	rs := make([]*pod.Receipt, n)
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < n; i += runtime.GOMAXPROCS(0) {
				rs[i] = testkit.Signed(t, &pod.Receipt{Network: cl.g.Network, Epoch: epoch, Root: root, Seq: 1, Bytes: 1000, Blocks: 1},
					srv, newAccount(t))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, m := range cl.members {
		for _, r := range rs {
			m.pool.Add(r)
		}
	}
	// Past the epoch's end and past the longest the leader waits for late
	// receipts (settle's deadline): it closes the epoch as soon as it looks.
	end := params.GenesisTime.Add(time.Duration(epoch+1) * params.EpochLength)
	cl.clock.Set(end.Add(closeDelay + params.EpochLength/4 + time.Millisecond))
	want := uint64(n) * 1000 // one base unit a byte at the default price
	// A deadline for a hang, not a speed target: on the frozen clock the
	// receipts stay valid however long the three members take to check
	// ~100,000 signatures each.
	waitFor(t, 10*time.Minute, "every receipt paid", func() bool { return lead.c.State().Balance(srv.ID) >= want })
	if got := lead.c.State().Balance(srv.ID); got != want {
		t.Fatalf("server earned %d, want %d", got, want)
	}
	var sizes []int
	for h := uint64(1); h <= lead.c.State().Height(); h++ {
		b, ok := lead.c.Block(h)
		if !ok {
			t.Fatalf("block %d missing", h)
		}
		sizes = append(sizes, len(b.Txs))
	}
	full := 0
	for _, s := range sizes {
		if s == ledger.MaxBlockTxs {
			full++
		}
	}
	if full != 1 {
		t.Fatalf("block sizes %v: want one full block", sizes)
	}
	waitFor(t, time.Minute, "the pools emptied", func() bool {
		for _, m := range cl.members {
			if m.pool.Len() != 0 {
				return false
			}
		}
		return true
	})
}
