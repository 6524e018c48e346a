package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/internal/testkit"
)

// The dashboard in a real browser: Debian's chromium, headless, driven by
// its command line (--dump-dom prints the page after its scripts ran,
// --screenshot saves a PNG), each run with a profile of its own, so every
// run is a browser that never logged in.

// findChromium is the browser's path, or "" with the reason.
func findChromium() (string, string) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", "no chromium on PATH (Debian: apt-get install chromium); the dashboard's browser test needs a real browser"
}

type browser struct {
	bin string
	t   *testing.T
}

// run runs chromium headless on url with extra flags and returns stdout.
func (b browser) run(url string, flags ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--user-data-dir=" + b.t.TempDir(), "--virtual-time-budget=3000"}, flags...)
	cmd := exec.CommandContext(ctx, b.bin, append(args, url)...)
	var out strings.Builder
	cmd.Stdout = &out
	var errb testkit.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("chromium %s: %v\n%s", url, err, errb.String())
	}
	return out.String()
}

func (b browser) dom(url string) string { return b.run(url, "--dump-dom") }

func (b browser) shot(url, file string) {
	b.run(url, "--hide-scrollbars", "--window-size=1200,1700", "--screenshot="+file)
	if fi, err := os.Stat(file); err != nil || fi.Size() < 1000 {
		b.t.Fatalf("screenshot %s: %v", file, err)
	}
}

// figure reads the data-value of the element with id in a page.
func figure(t *testing.T, page, id string) (string, bool) {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `" data-value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func loginLink(t *testing.T, repo string) string {
	t.Helper()
	code, out, errs := ore(t, "dashboard", "--open=false", "--repo", repo)
	if code != 0 {
		t.Fatalf("ore dashboard: %s", errs)
	}
	return strings.TrimSpace(out)
}

// TestDashboardInBrowser logs in through `ore dashboard`'s link in
// chromium and checks that the page shows the node's and the ledger's
// figures, that a page without the login is refused, and that a fetch
// moves the traffic figures; it saves a screenshot of each tab in
// $ORE_DASHBOARD_SHOTS (or a temporary folder, logged). -short (or
// ORE_BROWSER_TEST=short, as CI's race run sets) checks the login and the
// figures only.
func TestDashboardInBrowser(t *testing.T) {
	bin, why := findChromium()
	if bin == "" {
		t.Skip("SKIPPED: " + why)
	}
	b := browser{bin: bin, t: t}
	pub, box, _, coord := earningNet(t)
	link := loginLink(t, pub)
	base := strings.SplitN(link, "/login", 2)[0]

	// No login: the page says how to log in and shows no figure.
	page := b.dom(base + "/")
	if !strings.Contains(page, `id="login-required"`) || strings.Contains(page, `id="balance"`) {
		t.Fatalf("the dashboard without a login showed:\n%s", page)
	}
	// A used link is refused too.
	page = b.dom(link)
	if _, ok := figure(t, page, "balance"); !ok {
		t.Fatalf("the login link did not show the dashboard:\n%s", page)
	}
	if page := b.dom(link); !strings.Contains(page, "used already") {
		t.Fatalf("a used login link was not refused:\n%s", page)
	}

	// The figures are the CLI's (read before and after the page; a block
	// may land in between, then read again).
	testkit.WaitFor(t, 60*time.Second, "the page's figures equal the CLI's", func() bool {
		st, bal := status(t, pub), ledgerBalance(t, pub)
		page := b.dom(loginLink(t, pub))
		st2, bal2 := status(t, pub), ledgerBalance(t, pub)
		if st.BytesSent != st2.BytesSent || bal.Balance != bal2.Balance || bal.Escrow != bal2.Escrow {
			return false
		}
		for id, want := range map[string]uint64{"balance": bal2.Balance, "escrow": bal2.Escrow, "bytes-sent": st2.BytesSent, "store-quota": uint64(st2.StoreQuota)} {
			got, ok := figure(t, page, id)
			if !ok {
				t.Fatalf("the page has no %s", id)
			}
			if got != strconv.FormatUint(want, 10) {
				t.Logf("%s: page %s, CLI %d", id, got, want)
				return false
			}
		}
		return true
	})
	if testing.Short() || os.Getenv("ORE_BROWSER_TEST") == "short" {
		return
	}

	dir := os.Getenv("ORE_DASHBOARD_SHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A fetch from the publisher's box moves its traffic: the served
	// figure grows and the traffic chart draws a bar.
	sent0, _ := figure(t, b.dom(loginLink(t, pub)), "bytes-sent")
	src := filepath.Join(t.TempDir(), "g")
	if err := os.WriteFile(src, randomBytes(2<<20, 11), 0o644); err != nil {
		t.Fatal(err)
	}
	root2 := addCLI(t, pub, src)
	getCLI(t, box, root2)
	testkit.WaitFor(t, 60*time.Second, "the traffic chart moves after a fetch", func() bool {
		page := b.dom(loginLink(t, pub))
		sent, _ := figure(t, page, "bytes-sent")
		s0, _ := strconv.ParseUint(sent0, 10, 64)
		s1, _ := strconv.ParseUint(sent, 10, 64)
		i := strings.Index(page, `aria-label="bytes served and fetched"`)
		return s1 >= s0+2<<20 && i >= 0 && strings.Contains(page[i:], `<rect class="s1"`)
	})
	owner, publisher := filepath.Join(dir, "dashboard-box.png"), filepath.Join(dir, "dashboard-publisher.png")
	b.shot(loginLink(t, pub), owner)
	b.shot(loginLink(t, pub)+"&tab=publisher", publisher)
	page = b.dom(loginLink(t, pub) + "&tab=publisher")
	if _, ok := figure(t, page, "pub-escrow"); !ok || !strings.Contains(page, `id="roots"`) {
		t.Fatalf("the publisher's tab:\n%s", page)
	}
	if strings.Contains(page, `href="/coordinator"`) {
		t.Fatal("a box that is not a coordinator shows the coordinator tab")
	}
	coordShot := filepath.Join(dir, "dashboard-coordinator.png")
	b.shot(loginLink(t, coord)+"&tab=coordinator", coordShot)
	page = b.dom(loginLink(t, coord) + "&tab=coordinator")
	if _, ok := figure(t, page, "coord-final"); !ok || !strings.Contains(page, `href="/coordinator" class="on"`) || !strings.Contains(page, `id="members"`) {
		t.Fatalf("the coordinator's tab:\n%s", page)
	}

	// On a phone's screen no tab is wider than the screen.
	ph := openPhone(t, bin)
	phone := filepath.Join(dir, "dashboard-phone.png")
	ph.load(loginLink(t, pub), "balance")
	ph.checkPhone("the box tab", phone)
	ph.load(base+"/publisher", "tickets")
	ph.checkPhone("the publisher tab", "")
	ph.load(loginLink(t, coord)+"&tab=coordinator", "coord-final")
	ph.checkPhone("the coordinator tab", "")
	t.Logf("screenshots: %s, %s, %s, %s", owner, publisher, coordShot, phone)
}
