package committee

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// A receipt under a ticket that no block holds yet waits in the pool, and
// is paid once a block learned the ticket: the ticket travels on its own
// and may come after the receipts that name it.
func TestReceiptWaitsForItsTicket(t *testing.T) {
	cl := newClusterRules(t, time.Second, ledger.RulesV4)
	lead := cl.leader(t, 10*time.Second)
	nd := merkledag.NodeWithData([]byte("ticketed content"))
	nd.SetCidBuilder(merkledag.V1CidPrefix())
	root, block := nd.Cid(), nd.RawData()
	cl.submit(t, ledger.NewDeposit(cl.pub.ID, 1, 1<<39))
	cl.submit(t, ledger.NewRegisterRoot(cl.pub.ID, 2, root, block, 1<<40, 0))
	waitFor(t, 45*time.Second, "the registration in a block", func() bool {
		_, ok := lead.c.State().RegistrationOf(cl.pub.ID, root)
		return ok
	})
	srv, cli := newAccount(t), newAccount(t)
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: cl.g.Network, Publisher: cl.pub.ID, Root: root, Client: cli.ID,
		Cap: 1 << 30, Expires: cl.g.Params().EpochAt(cl.clock.Now()) + 60}
	if err := tk.Sign(cl.pub.Key); err != nil {
		t.Fatal(err)
	}
	r := testkit.Signed(t, &pod.Receipt{Version: pod.VersionTicket, Network: cl.g.Network, Epoch: cl.g.Params().EpochAt(cl.clock.Now()),
		Root: root, Seq: 1, Bytes: uint64(len(block)), Blocks: 1, Ticket: tk.ID()}, srv, cli)
	for _, m := range cl.members {
		m.pool.Add(r)
	}
	// The leader tries the receipt at its epoch's close and leaves it in
	// the pool (unknown_ticket); the ticket comes after.
	waitFor(t, 30*time.Second, "a leader to leave the receipt out once", func() bool {
		for _, m := range cl.members {
			if m.c != nil && testutil.ToFloat64(m.c.metrics.refused.WithLabelValues(string(ledger.ReasonUnknownTicket))) > 0 {
				return true
			}
		}
		return false
	})
	if lead.c.State().Balance(srv.ID) != 0 {
		t.Fatal("a receipt was paid before the ledger knew its ticket")
	}
	for _, m := range cl.members {
		if m.c != nil {
			if err := m.c.Submit(context.Background(), ledger.NewTicketTx(tk)); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	want := ledger.Owed(uint64(len(block)), 1<<40)
	waitFor(t, 30*time.Second, "the receipt paid under its ticket", func() bool { return lead.c.State().Balance(srv.ID) == want })
}
