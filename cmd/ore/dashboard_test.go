package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/web"
)

// earningNet is a ledger network where the publisher's box has served its
// registered content to a second box and been paid for it in a final
// block: it returns the publisher's repo, the client's repo, the root and
// a coordinator's repo.
func earningNet(t *testing.T) (pub, box, root, coord string) {
	t.Helper()
	pub, ds := ledgerNet(t, 0)
	coord = ds[0].repo
	if code, out, errs := ore(t, "ledger", "deposit", "--repo", pub, "10"); code != 0 || !strings.Contains(out, "is in block") {
		t.Fatalf("deposit: %d %s %s", code, out, errs)
	}
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, randomBytes(3<<20, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := ore(t, "add", "-q", "--repo", pub, src)
	if code != 0 {
		t.Fatal("add")
	}
	root = strings.TrimSpace(out)
	if code, out, errs := ore(t, "ledger", "register", "--repo", pub, root, "--price", "100"); code != 0 || !strings.Contains(out, "is in block") {
		t.Fatalf("register: %d %s %s", code, out, errs)
	}
	box = initRepo(t, ds[len(ds)-1].addrs[0])
	g, err := ledger.LoadGenesis(filepath.Join(pub, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	joinGenesis(t, box, g)
	startDaemon(t, box)
	// Rules 4 pay delivery the publisher authorized: a ticket for the box,
	// once the publisher's box sees its registration final.
	var tk string
	testkit.WaitFor(t, 60*time.Second, "a ticket for the box", func() bool {
		code, out, _ := ore(t, "ticket", "--repo", pub, root, "--client", repoID(t, box).String(), "--cap", "64MiB", "--json")
		var info ticketInfo
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
			return false
		}
		tk = info.Ticket
		return true
	})
	dst := filepath.Join(t.TempDir(), "got")
	if code, _, errs := ore(t, "get", "--repo", box, "-o", dst, "--ticket", tk, root); code != 0 {
		t.Fatalf("get %s under a ticket: exit %d: %s", root, code, errs)
	}
	// The publisher's box served and is paid from its own escrow (a server
	// may deliver its own content; only a client may not be its server).
	testkit.WaitFor(t, 60*time.Second, "a block that pays the publisher's box", func() bool {
		return ledgerBalance(t, pub).Balance > 990*oreUnit
	})
	return pub, box, root, coord
}

func ledgerBalance(t *testing.T, repo string) node.AccountView {
	t.Helper()
	code, out, errs := ore(t, "ledger", "balance", "--json", "--repo", repo)
	if code != 0 {
		t.Fatalf("ledger balance: %s", errs)
	}
	var v ledgerStateInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v.AccountView
}

// dashboardClient logs in through `ore dashboard`'s one-time link.
func dashboardClient(t *testing.T, repo string) (*http.Client, string) {
	t.Helper()
	code, out, errs := ore(t, "dashboard", "--open=false", "--repo", repo)
	if code != 0 {
		t.Fatalf("ore dashboard: %s", errs)
	}
	link := strings.TrimSpace(out)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" || resp.Request.URL.RawQuery != "" {
		t.Fatalf("login landed on %s with %s", resp.Request.URL, resp.Status)
	}
	return c, strings.SplitN(link, "/login", 2)[0]
}

func dashJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardMatchesCLI: the dashboard's figures are the CLI's, for the
// same box: `ore status` and `ore ledger balance` against its JSON, and
// the earnings it read from the chain add up to the balance.
func TestDashboardMatchesCLI(t *testing.T) {
	pub, _, root, coord := earningNet(t)
	c, base := dashboardClient(t, pub)

	// A field may move between two readings (a block lands); read the CLI
	// before and after the dashboard and compare only what held still.
	testkit.WaitFor(t, 60*time.Second, "the dashboard and the CLI agree", func() bool {
		before := status(t, pub)
		balBefore := ledgerBalance(t, pub)
		var ov web.OwnerView
		dashJSON(t, c, base+"/api/owner", &ov)
		var pv web.PublisherView
		dashJSON(t, c, base+"/api/publisher", &pv)
		after := status(t, pub)
		balAfter := ledgerBalance(t, pub)
		if before.Ledger == nil || after.Ledger == nil || ov.Status.Ledger == nil || pv.Account == nil ||
			before.Ledger.Height != after.Ledger.Height || !reflect.DeepEqual(balBefore, balAfter) ||
			before.BytesSent != after.BytesSent || before.StoreUsed != after.StoreUsed {
			return false // something moved: read again
		}
		d := ov.Status
		for _, chk := range []struct {
			what      string
			dash, cli any
		}{
			{"peer", d.Peer, after.Peer},
			{"role", d.Role, after.Role},
			{"store used", d.StoreUsed, after.StoreUsed},
			{"store quota", d.StoreQuota, after.StoreQuota},
			{"pins", strings.Join(d.Pins, ","), strings.Join(after.Pins, ",")},
			{"bytes sent", d.BytesSent, after.BytesSent},
			{"bytes received", d.BytesRecvd, after.BytesRecvd},
			{"ledger height", d.Ledger.Height, after.Ledger.Height},
			{"balance", d.Ledger.Balance, after.Ledger.Balance},
			{"escrow", d.Ledger.Escrow, after.Ledger.Escrow},
			{"state hash", d.Ledger.StateHash, after.Ledger.StateHash},
			{"data cap", d.DataCap, after.DataCap},
			{"publisher account", *pv.Account, balAfter},
		} {
			if !reflect.DeepEqual(chk.dash, chk.cli) {
				t.Fatalf("%s: dashboard %v, CLI %v", chk.what, chk.dash, chk.cli)
			}
		}
		// The chain's figures, once the dashboard read as far as the CLI:
		// what it says each block paid adds up to the balance.
		if ov.ChainHeight != after.Ledger.Height {
			return false
		}
		var earned, spent uint64
		for _, f := range ov.Epochs {
			earned += f.Earned
			spent += f.Spent
		}
		if earned != balAfter.Balance-990*oreUnit || spent != 10*oreUnit-balAfter.Escrow || earned != spent {
			t.Fatalf("earned %d and spent %d over %d epochs; the ledger: balance %d, escrow %d", earned, spent, len(ov.Epochs), balAfter.Balance, balAfter.Escrow)
		}
		if len(pv.Roots) != 1 || pv.Roots[0].Root != root || pv.Roots[0].Price != 100*oreUnit || pv.Roots[0].Own == 0 || pv.Roots[0].Boxes != 0 {
			t.Fatalf("publisher's roots: %+v", pv.Roots)
		}
		return true
	})
	// A coordinator's dashboard reads its own applied chain: it follows
	// to the height its status shows and, having served nothing, earned
	// nothing.
	cc, cbase := dashboardClient(t, coord)
	testkit.WaitFor(t, 60*time.Second, "the coordinator's dashboard follows its chain", func() bool {
		st := status(t, coord)
		var ov web.OwnerView
		dashJSON(t, cc, cbase+"/api/owner", &ov)
		if ov.ChainError != "" || len(ov.Epochs) != 0 {
			t.Fatalf("coordinator's figures: error %q, %d epochs with earnings", ov.ChainError, len(ov.Epochs))
		}
		return st.Ledger != nil && st.Ledger.Height > 0 && ov.ChainHeight == st.Ledger.Height
	})
	// Its coordinator tab shows what `ore status` shows: the head, its
	// finality, the leader and the pools (read before and after the tab;
	// a block may land between).
	testkit.WaitFor(t, 60*time.Second, "the coordinator tab equals `ore status`", func() bool {
		before := status(t, coord)
		var cv web.CoordinatorView
		dashJSON(t, cc, cbase+"/api/coordinator", &cv)
		after := status(t, coord)
		if cv.Error != "" || cv.Ledger == nil || cv.Ledger.Coordinator == nil {
			t.Fatalf("the coordinator tab: %+v", cv)
		}
		if after.Ledger == nil || after.Ledger.Coordinator == nil {
			t.Fatalf("`ore status` on a coordinator has no chain part: %+v", after.Ledger)
		}
		if !reflect.DeepEqual(before.Ledger, after.Ledger) {
			return false // a block landed: read again
		}
		a, d := after.Ledger.Coordinator, cv.Ledger.Coordinator
		if !reflect.DeepEqual(cv.Ledger, after.Ledger) {
			t.Fatalf("coordinator tab %+v (%+v), `ore status` %+v (%+v)", cv.Ledger, d, after.Ledger, a)
		}
		if a.Head == 0 || a.Final == 0 || a.Final > a.Head || a.Quorum < 2 || a.Members != len(cv.Members) {
			t.Fatalf("a coordinator's chain: %+v, %d members listed", a, len(cv.Members))
		}
		if len(cv.Blocks) == 0 || cv.Blocks[0].Height != a.Head {
			t.Fatalf("recent blocks %+v, head %d", cv.Blocks, a.Head)
		}
		return true
	})
	// A box that is not a coordinator says so, and has no such tab.
	var cv web.CoordinatorView
	dashJSON(t, c, base+"/api/coordinator", &cv)
	if cv.Error == "" || cv.Ledger != nil {
		t.Fatalf("a publisher's box's coordinator tab: %+v", cv)
	}
}

// TestConfigDataCap: `ore config data-cap` sets the cap in config.json
// without a daemon, and on a running one applies it at once and keeps it.
func TestConfigDataCap(t *testing.T) {
	repo := initRepo(t, "")
	if code, out, errs := ore(t, "config", "data-cap", "--repo", repo, "2GiB"); code != 0 || !strings.Contains(out, "in config.json") {
		t.Fatalf("set without a daemon: %d %s %s", code, out, errs)
	}
	d := startDaemon(t, repo)
	if got := status(t, repo).DataCap.Cap; got != 2<<30 {
		t.Fatalf("the daemon started with a cap of %d, want 2 GiB from config.json", got)
	}
	code, out, errs := ore(t, "config", "data-cap", "--repo", repo, "1 GiB")
	if code != 0 || !strings.Contains(out, "of 1.0 GiB used in") {
		t.Fatalf("set on a running daemon: %d %s %s", code, out, errs)
	}
	if got := status(t, repo).DataCap.Cap; got != 1<<30 {
		t.Fatalf("the running box's cap is %d, want 1 GiB", got)
	}
	if code, _, errs := ore(t, "config", "data-cap", "--repo", repo, "lots"); code != 2 || !strings.Contains(errs, "not a size") {
		t.Fatalf("a bad size: %d %s", code, errs)
	}
	if code, out, _ := ore(t, "config", "data-cap", "--repo", repo, "off"); code != 0 || !strings.Contains(out, "data cap  none") {
		t.Fatalf("off: %d %s", code, out)
	}
	d.stop(t)
	fc, err := node.LoadConfig(repo)
	if err != nil || fc.DataCap != "" {
		t.Fatalf("config.json after off: %q %v", fc.DataCap, err)
	}
	if code, _, _ := ore(t, "config", "data-cap", "--repo", repo, "1GiB"); code != 0 {
		t.Fatal("set after the daemon stopped")
	}
	if fc, _ := node.LoadConfig(repo); fc.DataCap != "1.0 GiB" {
		t.Fatalf("config.json keeps %q, want 1.0 GiB", fc.DataCap)
	}
}
