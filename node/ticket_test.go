package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/testnet"
)

// ticketNet is a network of rules version 4: boxes 0-2 coordinate, box 3
// publishes, box 4 fetches.
func ticketNet(t *testing.T) *testnet.Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := testnet.New(ctx, 5, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(20*time.Second)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 50},
			EpochLength: time.Second, Network: "ore-ticket-test", Rules: ledger.RulesV4}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	return nw
}

// submitFinal signs tx as n and waits until a final block holds it.
func submitFinal(t *testing.T, ctx context.Context, n *node.Node, tx ledger.Tx) {
	t.Helper()
	if err := testnet.SubmitFinal(ctx, n, tx, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// On a network of rules 4, a fetch under a ticket names it in every
// receipt and the serving boxes are paid from the publisher's escrow; the
// same fetch without one earns nothing; a ticket for another client is
// refused before the fetch starts.
func TestFetchUnderATicket(t *testing.T) {
	nw := ticketNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pub, cli := nw.Nodes[3], nw.Nodes[4]
	if err := cli.Connect(ctx, pub.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	paid, _ := randomFile(t, 2<<20)
	unpaid, _ := randomFile(t, 2<<20)
	var roots [2]node.AddResult
	for i, path := range []string{paid, unpaid} {
		res, err := pub.AddPath(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		roots[i] = res
	}
	submitFinal(t, ctx, pub, ledger.NewDeposit("", 0, 1<<40))
	for _, res := range roots {
		reg, err := pub.RegisterTx(ctx, res.Root, 1<<40, 0) // a high price: a MiB pays ~2^30
		if err != nil {
			t.Fatal(err)
		}
		submitFinal(t, ctx, pub, reg)
	}
	st, err := pub.LedgerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	escrow := st.Escrow(pub.ID())

	// A ticket for another client is refused at once.
	other := testkit.NewParty(t)
	foreign, err := pub.IssueTicket(ctx, node.TicketSpec{Root: roots[0].Root, Client: other.ID, Cap: 1 << 30, For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Fetch(node.WithTicket(ctx, foreign), roots[0].Root, nil); !errors.Is(err, node.ErrTicket) {
		t.Fatalf("a fetch under another client's ticket: %v", err)
	}
	// Unticketed: served, not paid.
	res, err := cli.Fetch(ctx, roots[1].Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Receipts {
		if r.Ticket != ([32]byte{}) || r.Version != pod.Version {
			t.Fatalf("an unticketed fetch's receipt names a ticket: %+v", r)
		}
	}
	// Ticketed: every receipt names it; the servers are paid.
	tk, err := pub.IssueTicket(ctx, node.TicketSpec{Root: roots[0].Root, Client: cli.ID(), Cap: 1 << 30, For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	res, err = cli.Fetch(node.WithTicket(ctx, tk), roots[0].Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Receipts) == 0 {
		t.Fatal("the ticketed fetch kept no countersigned receipt")
	}
	var claimed uint64
	for _, r := range res.Receipts {
		if r.Ticket != tk.ID() || r.Version != pod.VersionTicket {
			t.Fatalf("a receipt of the ticketed fetch does not name its ticket: %+v", r)
		}
		claimed += r.Bytes
	}
	// The publisher's escrow pays the ticketed bytes, and only those: its
	// drop is the price of what the ticketed receipts claim, once every
	// receipt of both fetches can no longer be paid.
	end := pub.Network().EpochAt(time.Now()) + pub.Network().MaxSkew + 1
	testkit.WaitFor(t, time.Minute, "the receipts' epochs past the skew", func() bool { return pub.Network().EpochAt(time.Now()) >= end })
	submitFinal(t, ctx, pub, ledger.NewDeposit("", 0, 1)) // a block after every block that can pay them
	st, err = pub.LedgerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spent := escrow + 1 - st.Escrow(pub.ID())
	if want := ledger.Owed(claimed, 1<<40); spent == 0 || spent > want {
		t.Fatalf("the publisher's escrow paid %d for %d ticketed bytes (owed %d)", spent, claimed, want)
	}
	if _, capBytes, used, _, ok := st.Ticket(tk.ID()); !ok || used != claimed || capBytes != 1<<30 {
		t.Fatalf("the ledger's ticket: known %v, %d of %d bytes paid; the receipts claim %d", ok, used, capBytes, claimed)
	}
}

// Through the gateway, a ticket in the URL pays the request's fetches,
// the way a CDN's signed URL does; a ticket for another client is a 403.
func TestGatewayRequestUnderATicket(t *testing.T) {
	nw := ticketNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pub := nw.Nodes[3]
	gw, err := nw.Restart(ctx, 4, node.WithGenesis(nw.Genesis), node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Connect(ctx, pub.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	path, _ := randomFile(t, 1<<20)
	res, err := pub.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	submitFinal(t, ctx, pub, ledger.NewDeposit("", 0, 1<<40))
	reg, err := pub.RegisterTx(ctx, res.Root, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	submitFinal(t, ctx, pub, reg)
	foreign, err := pub.IssueTicket(ctx, node.TicketSpec{Root: res.Root, Client: testkit.NewParty(t).ID, Cap: 1 << 30, For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + gw.GatewayAddr() + "/ipfs/" + res.Root.String() + "?" + gateway.TicketParam + "="
	if resp, _ := httpGet(t, base+foreign.String()); resp.StatusCode != 403 {
		t.Fatalf("a request under another client's ticket: %d", resp.StatusCode)
	}
	tk, err := pub.IssueTicket(ctx, node.TicketSpec{Root: res.Root, Client: gw.ID(), Cap: 1 << 30, For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := httpGet(t, base+tk.String()); resp.StatusCode != 200 || len(body) != 1<<20 {
		t.Fatalf("a request under the gateway's ticket: %d, %d bytes", resp.StatusCode, len(body))
	}
	// The publisher's box served it: the receipts it countersigned name
	// the ticket.
	var named int
	testkit.WaitFor(t, time.Minute, "receipts naming the ticket on the serving box", func() bool {
		rs, err := pub.ServedReceipts(ctx, 0)
		if err != nil {
			return false
		}
		named = 0
		for _, r := range rs {
			if r.Client == gw.ID() && r.Ticket == tk.ID() {
				named++
			}
		}
		return named > 0
	})
}
