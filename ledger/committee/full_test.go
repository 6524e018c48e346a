package committee

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// More receipts than a block holds: the leader fills one block, proposes
// the next at once with the rest, and every receipt is paid exactly once.
func TestFullBlockLeavesTheRestForTheNext(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("signs and verifies 50,000 receipts")
	}
	// Signing 50,500 receipts takes seconds, more on a loaded machine, and
	// they carry the epoch from before: long epochs keep them within the
	// skew until the second block.
	cl := newClusterEpoch(t, 5*time.Second)
	lead := cl.leader(t, 10*time.Second)
	root := testRoot("full")
	cl.register(t, lead, root, 100_000_000_000)
	// One (server, client, root, epoch) per receipt: a new client each.
	srv := newAccount(t)
	n := ledger.MaxBlockTxs + 500
	rs := make([]*pod.Receipt, n)
	epoch := cl.g.Params().EpochAt(time.Now())
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < n; i += runtime.GOMAXPROCS(0) {
				cli := newAccount(t)
				r := &pod.Receipt{Version: pod.Version, Network: cl.g.Network, Epoch: epoch, Server: srv.id, Client: cli.id,
					Root: root, Seq: 1, Bytes: 1000, Blocks: 1}
				if err := r.SignClient(cli.key); err != nil {
					t.Error(err)
					return
				}
				if err := r.SignServer(srv.key); err != nil {
					t.Error(err)
					return
				}
				rs[i] = r
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
	want := uint64(n) * 1000 // one base unit a byte at the default price
	waitFor(t, 60*time.Second, "every receipt paid", func() bool { return lead.c.State().Balance(srv.id) >= want })
	if got := lead.c.State().Balance(srv.id); got != want {
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
	waitFor(t, 10*time.Second, "the pools emptied", func() bool {
		for _, m := range cl.members {
			if m.pool.Len() != 0 {
				return false
			}
		}
		return true
	})
}
