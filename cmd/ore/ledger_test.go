package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/testnet"
	"github.com/orecdn/ore/web"
)

// freeTCPPort is a coordinator's port (testnet.FreePort: below the
// kernel's ephemeral range).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	port, err := testnet.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// joinGenesis gives a repo the network's genesis, as `ore init --genesis` does.
func joinGenesis(t *testing.T, repo string, g *ledger.Genesis) {
	t.Helper()
	if err := g.Save(filepath.Join(repo, node.GenesisFile)); err != nil {
		t.Fatal(err)
	}
	fc, err := node.LoadConfig(repo)
	if err != nil {
		t.Fatal(err)
	}
	fc.Genesis = node.GenesisFile
	if err := node.WriteConfig(repo, fc); err != nil {
		t.Fatal(err)
	}
}

func repoID(t *testing.T, repo string) peer.ID {
	k, err := node.LoadIdentity(repo)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

// ledgerNet starts 3 coordinator daemons and a publisher daemon (1,000
// ore) on a genesis of the given rules version (0: NewGenesis's), with 2 s
// epochs, and returns the publisher's repo and every daemon.
func ledgerNet(t *testing.T, rules uint8) (string, []*daemon) {
	t.Helper()
	var coords []string
	var members []ledger.Member
	for i := 0; i < 3; i++ {
		port := freeTCPPort(t)
		repo := filepath.Join(t.TempDir(), "coord")
		addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
		if code, _, errs := ore(t, "init", "--repo", repo, "--role", "coordinator", "--listen", addr,
			"--api", "127.0.0.1:0", "--dht", "server"); code != 0 {
			t.Fatal(errs)
		}
		coords = append(coords, repo)
		members = append(members, ledger.Member{ID: repoID(t, repo), Addrs: []string{addr}})
	}
	pub := filepath.Join(t.TempDir(), "pub")
	if code, _, errs := ore(t, "init", "--repo", pub, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--dht", "server"); code != 0 {
		t.Fatal(errs)
	}
	g, err := ledger.NewGenesis("ore-cli-test", time.Now().Truncate(time.Second), members,
		map[peer.ID]uint64{repoID(t, pub): 1000 * oreUnit}, oreUnit)
	if err != nil {
		t.Fatal(err)
	}
	g.EpochLength = 2 * time.Second
	if rules != 0 {
		g.Rules = rules
	}
	genesisFile := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(genesisFile); err != nil {
		t.Fatal(err)
	}
	for _, r := range append(coords, pub) {
		joinGenesis(t, r, g)
	}
	var ds []*daemon
	for _, r := range coords {
		ds = append(ds, startBox(t, r, "daemon", "--log-level", "info"))
	}
	ds = append(ds, startDaemon(t, pub))

	return pub, ds
}

func TestCLILedger(t *testing.T) {
	pub, ds := ledgerNet(t, 0)
	code, out, errs := ore(t, "ledger", "deposit", "--repo", pub, "10")
	if code != 0 || !strings.Contains(out, "is in block") {
		for _, d := range ds {
			t.Logf("daemon %s:\n%s", d.repo, d.stderr.String())
		}
		t.Fatalf("deposit: %d %s %s", code, out, errs)
	}
	code, out, errs = ore(t, "ledger", "balance", "--repo", pub)
	if code != 0 || !strings.Contains(out, "escrow   10.000000000 ore") || !strings.Contains(out, "balance  990.000000000 ore") {
		t.Fatalf("balance: %d %s %s", code, out, errs)
	}
	// A spending cap and a withdrawal show in the balance; the withdrawal
	// waits out its notice, so the escrow is still whole.
	for _, args := range [][]string{{"cap", "0.5"}, {"withdraw", "4"}} {
		if code, out, errs := ore(t, append([]string{"ledger"}, append(args, "--repo", pub)...)...); code != 0 || !strings.Contains(out, "is in block") {
			t.Fatalf("%v: %d %s %s", args, code, out, errs)
		}
	}
	code, out, errs = ore(t, "ledger", "balance", "--repo", pub)
	if code != 0 || !strings.Contains(out, "cap      0.500000000 ore an epoch") || !strings.Contains(out, "withdraw 4.000000000 ore moves from escrow to balance at epoch") {
		t.Fatalf("balance after cap and withdraw: %d %s %s", code, out, errs)
	}
	src := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(src, []byte("published content"), 0o644)
	code, out, _ = ore(t, "add", "-q", "--repo", pub, src)
	if code != 0 {
		t.Fatal("add")
	}
	root := strings.TrimSpace(out)
	if code, out, errs := ore(t, "ledger", "register", "--repo", pub, root, "--price", "2"); code != 0 || !strings.Contains(out, "is in block") {
		t.Fatalf("register: %d %s %s", code, out, errs)
	}
	// Pre-warm: 1m of 2s epochs is 30 epochs after the current one.
	code, out, errs = ore(t, "ledger", "prewarm", "--repo", pub, root, "--replicas", "3", "--for", "1m")
	if code != 0 || !strings.Contains(out, "prewarm of "+root+" on 3 boxes until epoch") || !strings.Contains(out, "is in block") {
		t.Fatalf("prewarm: %d %s %s", code, out, errs)
	}
	code, out, errs = ore(t, "ledger", "balance", "--repo", pub)
	if code != 0 || !strings.Contains(out, "prewarm  "+root+" on 3 boxes until epoch") {
		t.Fatalf("balance after prewarm: %d %s %s", code, out, errs)
	}
	_ = os.WriteFile(src, []byte("unregistered content"), 0o644)
	code, out, _ = ore(t, "add", "-q", "--repo", pub, src)
	if code != 0 {
		t.Fatal("add")
	}
	other := strings.TrimSpace(out)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{other}, 1, "register it first with `ore ledger register " + other + "`"},
		{[]string{root, "--replicas", "0"}, 2, "ask for 1 to 64 boxes"},
		{[]string{root, "--for", "0s"}, 2, "positive duration"},
		{[]string{root, "--for", "200h"}, 1, "at most 60480 epochs"},
	} {
		code, _, errs := ore(t, append([]string{"ledger", "prewarm", "--repo", pub}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("prewarm %v: %d %s, want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
	if code, _, errs := ore(t, "ledger", "storage", "--repo", pub, root); code != 2 || !strings.Contains(errs, "storage needs --price") {
		t.Errorf("storage without a price: %d %s", code, errs)
	}
	code, out, _ = ore(t, "ledger", "blocks", "--repo", pub)
	if code != 0 || strings.Count(out, "final")+strings.Count(out, "signing") < 3 {
		t.Fatalf("blocks: %s", out)
	}
	hashRe := regexp.MustCompile(`state hash ([0-9a-f]{64})`)
	var hashes []string
	for _, r := range []string{pub, ds[0].repo, ds[2].repo} {
		code, out, errs := ore(t, "ledger", "verify", "--repo", r)
		if code != 0 {
			t.Fatalf("verify on %s: %s", r, errs)
		}
		m := hashRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("verify printed %q", out)
		}
		hashes = append(hashes, m[1])
	}
	// The peers may stand at different final heights for an instant; the
	// replay of the same chain gives the same hash.
	if hashes[0] != hashes[1] && hashes[1] != hashes[2] {
		t.Logf("state hashes %v (peers at different heights)", hashes)
	}
	if code, _, errs := ore(t, "ledger", "deposit", "--repo", pub, "1.5x"); code == 0 || !strings.Contains(errs, "not an amount") {
		t.Fatalf("bad amount: %d %s", code, errs)
	}
	if code, _, errs := ore(t, "ledger", "deposit", "--repo", pub, "--wait=false", "99999"); code != 0 {
		t.Fatalf("overdraw submit: %s", errs)
	}
}

// On a network of rules 4, a publisher registers a root with its block
// (and so its size) and issues tickets; the ledger learns each.
func TestCLITickets(t *testing.T) {
	pub, ds := ledgerNet(t, ledger.RulesV4)
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, bytes.Repeat([]byte("ticketed content "), 20_000), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ore(t, "add", "-q", "--repo", pub, src)
	if code != 0 {
		t.Fatalf("add: %s", errs)
	}
	root := strings.TrimSpace(out)
	// A ticket of a root the box did not register is refused.
	if code, _, errs := ore(t, "ticket", "--repo", pub, root); code == 0 || !strings.Contains(errs, "register it first") {
		for _, d := range ds {
			t.Logf("daemon %s:\n%s", d.repo, d.stderr.String())
		}
		t.Fatalf("ticket before register: %d %s", code, errs)
	}
	for _, args := range [][]string{{"deposit", "10"}, {"register", root, "--open", "0.5"}} {
		if code, out, errs := ore(t, append([]string{"ledger"}, append(args, "--repo", pub)...)...); code != 0 || !strings.Contains(out, "is in block") {
			t.Fatalf("%v: %d %s %s", args, code, out, errs)
		}
	}
	cli := repoID(t, ds[0].repo).String()
	code, out, errs = ore(t, "ticket", "--repo", pub, root, "--client", cli, "--cap", "64MiB", "--for", "10m", "--json")
	if code != 0 {
		t.Fatalf("ticket: %d %s", code, errs)
	}
	var info ticketInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	tk, err := pod.ParseTicket(info.Ticket)
	if err != nil || tk.Root.String() != root || tk.Client.String() != cli || tk.Cap != 64<<20 || tk.Publisher != repoID(t, pub) || tk.Verify() != nil {
		t.Fatalf("ticket %+v (%v), want one for %s to %s of 64 MiB signed by the publisher", tk, err, root, cli)
	}
	// The ledger learns it: the publisher's box syncs the chain until a
	// block holds it.
	if !testkit.Eventually(time.Minute, func() bool {
		_, out, _ := ore(t, "ledger", "ticket", "--repo", pub, info.Ticket)
		return strings.Contains(out, "paid     0 of 67108864 bytes")
	}) {
		_, out, errs := ore(t, "ledger", "ticket", "--repo", pub, info.ID)
		t.Fatalf("no block took the ticket: %s %s", out, errs)
	}
	// Rules 4 take no registration without the root's block: the CLI
	// sends it, and a flag no rules take is refused clearly.
	if code, _, errs := ore(t, "ticket", "--repo", pub, "--cap", "0B"); code != 2 {
		t.Fatalf("a ticket of 0 bytes: %d %s", code, errs)
	}
	// The dashboard's publisher tab shows the ticket and the sized, open
	// registration, as the chain holds them.
	c, base := dashboardClient(t, pub)
	var pv web.PublisherView
	testkit.WaitFor(t, time.Minute, "the dashboard shows the ticket", func() bool {
		dashJSON(t, c, base+"/api/publisher", &pv)
		return len(pv.Tickets) == 1 && len(pv.Roots) == 1
	})
	if tv := pv.Tickets[0]; tv.ID != info.ID || !tv.Known || tv.Cap != 64<<20 || tv.Root != root || tv.Spent != 0 {
		t.Fatalf("dashboard ticket %+v, want %s for %s, 64 MiB", tv, info.ID, root)
	}
	// The size is the DAG's, which the ledger read from the root's block:
	// the content and its nodes' framing.
	content := uint64(len("ticketed content ")) * 20_000
	if r := pv.Roots[0]; r.Root != root || r.Size < content || r.Size > content+content/50 || r.Open != oreUnit/2 {
		t.Fatalf("dashboard root %+v", r)
	}
	// A key the publisher delegates (an app server's box) signs tickets
	// paid from the publisher's escrow; before the delegation it cannot.
	hot, pubID := ds[1].repo, repoID(t, pub).String()
	if code, _, errs := ore(t, "ticket", "--repo", hot, "--publisher", pubID, root, "--client", cli); code == 0 || !strings.Contains(errs, "has not delegated") {
		t.Fatalf("a ticket by a key not delegated: %d %s", code, errs)
	}
	if code, out, errs := ore(t, "ledger", "delegate", repoID(t, hot).String(), "--for", "1h", "--repo", pub); code != 0 || !strings.Contains(out, "is in block") {
		t.Fatalf("delegate: %d %s %s", code, out, errs)
	}
	var dtk *pod.Ticket
	if !testkit.Eventually(time.Minute, func() bool {
		code, out, _ := ore(t, "ticket", "--repo", hot, "--publisher", pubID, root, "--client", cli, "--cap", "1MiB", "--json")
		var info ticketInfo
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
			return false
		}
		dtk, _ = pod.ParseTicket(info.Ticket)
		return dtk != nil
	}) {
		t.Fatal("the delegated box issued no ticket")
	}
	if dtk.Publisher.String() != pubID || dtk.Signer != repoID(t, hot) || dtk.Verify() != nil {
		t.Fatalf("delegated ticket %+v: want the publisher's, signed by the delegate", dtk)
	}
}
