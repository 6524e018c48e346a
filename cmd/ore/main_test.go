package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/node"
)

// syncBuffer is a log sink goroutines write while the test reads it.
type syncBuffer = testkit.SyncBuffer

func testEnv(stdout, stderr io.Writer) *env {
	return &env{stdout: stdout, stderr: stderr, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
}

// ore runs one command in-process and returns its exit code and output;
// the command has 2 minutes.
func ore(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return oreWithin(t, 2*time.Minute, args...)
}

// oreWithin is ore for a command that may take up to d.
func oreWithin(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	code := run(ctx, testEnv(&out, &errb), args)
	return code, out.String(), errb.String()
}

type daemon struct {
	repo    string
	addrs   []string
	gateway string // http://host:port when it runs a gateway
	stderr  *syncBuffer
	done    chan int
	cancel  context.CancelFunc
}

// startDaemon runs `ore daemon` in-process and waits for its ready lines.
func startDaemon(t *testing.T, repo string) *daemon {
	t.Helper()
	return startBox(t, repo, "daemon")
}

// startBox runs `ore CMD --repo REPO ARGS...` (daemon or gateway) in-process.
func startBox(t *testing.T, repo, cmd string, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	d := &daemon{repo: repo, stderr: &syncBuffer{}, done: make(chan int, 1), cancel: cancel}
	go func() {
		code := run(ctx, testEnv(pw, d.stderr), append([]string{cmd, "--repo", repo, "--log-level", "warn"}, args...))
		pw.Close()
		d.done <- code
	}()
	type readyInfo struct {
		addrs   []string
		gateway string
	}
	ready := make(chan readyInfo, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		var info readyInfo
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "listening "); ok {
				info.addrs = append(info.addrs, a)
			}
			if a, ok := strings.CutPrefix(line, "gateway "); ok {
				info.gateway = strings.TrimSuffix(a, "/ipfs/{cid}")
			}
			if line == "ore daemon ready" {
				ready <- info
				info = readyInfo{}
			}
		}
		close(ready)
	}()
	select {
	case info, ok := <-ready:
		if !ok || len(info.addrs) == 0 {
			t.Fatalf("daemon on %s did not start\n%s", repo, d.stderr.String())
		}
		d.addrs, d.gateway = info.addrs, info.gateway
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon on %s not ready after 30s\n%s", repo, d.stderr.String())
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	d.cancel()
	select {
	case code := <-d.done:
		if code != 0 {
			t.Errorf("daemon exited %d: %s", code, d.stderr.String())
		}
		d.done <- code
	case <-time.After(30 * time.Second):
		t.Errorf("daemon did not stop within 30s")
	}
}

func initRepo(t *testing.T, bootstrap string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	args := []string{"init", "--repo", repo, "--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--api", "127.0.0.1:0", "--dht", "server"}
	if bootstrap != "" {
		args = append(args, "--bootstrap", bootstrap)
	}
	if code, _, errs := ore(t, args...); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	return repo
}

func TestCLIAddGetStatusPeers(t *testing.T) {
	a := startDaemon(t, initRepo(t, ""))
	b := startDaemon(t, initRepo(t, a.addrs[0]))

	data := make([]byte, 3<<20+123)
	_, _ = rand.Read(data)
	src := filepath.Join(t.TempDir(), "clip.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ore(t, "add", "--repo", a.repo, src)
	if code != 0 {
		t.Fatalf("add exit %d: %s", code, errs)
	}
	fields := strings.Fields(out)
	if len(fields) < 2 || fields[0] != "added" {
		t.Fatalf("add printed %q", out)
	}
	root := fields[1]
	if !strings.Contains(errs, "add ") {
		t.Errorf("add showed no progress: %q", errs)
	}

	dst := filepath.Join(t.TempDir(), "got.bin")
	code, out, errs = ore(t, "get", root, "-o", dst, "--repo", b.repo)
	if code != 0 {
		t.Fatalf("get exit %d: %s", code, errs)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("get wrote different bytes")
	}
	if !strings.Contains(out, "saved "+root) || !strings.Contains(errs, "get ") {
		t.Errorf("get output %q / %q", out, errs)
	}

	code, out, _ = ore(t, "status", "--repo", a.repo)
	if code != 0 || !strings.Contains(out, root) || !strings.Contains(out, "storage") {
		t.Errorf("status exit %d: %s", code, out)
	}
	// b fetched from a: a countersigned receipts for it.
	if !strings.Contains(out, "receipts") || strings.Contains(out, "0 countersigned as server") {
		t.Errorf("status shows no countersigned receipts after serving a get:\n%s", out)
	}
	// b stores the root it fetched, with the request it made.
	code, out, _ = ore(t, "status", "--repo", b.repo)
	if code != 0 || !strings.Contains(out, "stored    1 roots") || !strings.Contains(out, root+"  ") || !strings.Contains(out, "1.0 req") {
		t.Errorf("status of the fetching box does not show the stored root with its request:\n%s", out)
	}
	code, out, _ = ore(t, "peers", "--repo", b.repo)
	if code != 0 || !strings.Contains(out, "/p2p/") {
		t.Errorf("peers exit %d: %s", code, out)
	}

	// A directory round trip through the CLI.
	dir := filepath.Join(t.TempDir(), "site")
	_ = os.MkdirAll(filepath.Join(dir, "css"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>ore</h1>"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "css", "a.css"), []byte("h1{}"), 0o644)
	code, out, errs = ore(t, "add", "-q", "--repo", a.repo, dir)
	if code != 0 {
		t.Fatalf("add dir: %s", errs)
	}
	dirRoot := strings.TrimSpace(out)
	dirOut := filepath.Join(t.TempDir(), "site-copy")
	if code, _, errs := ore(t, "get", "--repo", b.repo, "-o", dirOut, dirRoot); code != 0 {
		t.Fatalf("get dir: %s", errs)
	}
	if b, err := os.ReadFile(filepath.Join(dirOut, "css", "a.css")); err != nil || string(b) != "h1{}" {
		t.Fatalf("dir copy: %q %v", b, err)
	}

	// A name: a publishes the directory under its peer ID, b gets it by
	// name.
	code, out, errs = ore(t, "name", "publish", "--repo", a.repo, "--json", dirRoot)
	if code != 0 {
		t.Fatalf("name publish: %s", errs)
	}
	var named node.NameResult
	if err := json.Unmarshal([]byte(out), &named); err != nil || named.Root.String() != dirRoot || !strings.HasPrefix(named.Name, "k51") {
		t.Fatalf("name publish printed %q (%v)", out, err)
	}
	if code, out, errs := ore(t, "name", "resolve", "--repo", b.repo, named.Name); code != 0 || strings.TrimSpace(out) != "/ipfs/"+dirRoot {
		t.Fatalf("name resolve: %d %q %s", code, out, errs)
	}
	if code, out, errs := ore(t, "name", "publish", "--repo", a.repo, "--key", "site", "--json", root); code != 0 || strings.Contains(out, named.Name) {
		t.Fatalf("name publish --key: %d %q %s", code, out, errs)
	}
	byName := filepath.Join(t.TempDir(), "by-name")
	if code, _, errs := ore(t, "get", "--repo", b.repo, "-o", byName, "/ipns/"+named.Name); code != 0 {
		t.Fatalf("get /ipns/: %s", errs)
	}
	if b, err := os.ReadFile(filepath.Join(byName, "index.html")); err != nil || string(b) != "<h1>ore</h1>" {
		t.Fatalf("got by name: %q %v", b, err)
	}

	// Pins: b pins the directory it fetched, lists it, lets it go.
	if code, out, errs := ore(t, "pin", "add", "--repo", b.repo, dirRoot); code != 0 || !strings.Contains(out, "pinned "+dirRoot) {
		t.Fatalf("pin add: %d %q %s", code, out, errs)
	}
	if code, out, _ := ore(t, "pin", "ls", "--repo", b.repo); code != 0 || !strings.Contains(out, dirRoot) {
		t.Fatalf("pin ls: %d %q", code, out)
	}
	if code, out, _ := ore(t, "pin", "rm", "--repo", b.repo, dirRoot); code != 0 || !strings.Contains(out, "unpinned "+dirRoot) {
		t.Fatalf("pin rm: %d %q", code, out)
	}
	if code, out, _ := ore(t, "pin", "ls", "--repo", b.repo); code != 0 || strings.Contains(out, dirRoot) {
		t.Fatalf("pin ls after rm: %d %q", code, out)
	}

	// Bad input: clear errors, and the daemon keeps running.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "--repo", b.repo, "not-a-cid"}, "is not a CID"},
		{[]string{"get", "--repo", b.repo, "--timeout", "3s", "-o", filepath.Join(t.TempDir(), "x"),
			"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "timeout"},
		{[]string{"add", "--repo", a.repo, filepath.Join(t.TempDir(), "missing")}, "cannot read"},
		{[]string{"get", "--repo", b.repo, "-o", dst, root}, "already exists"},
		{[]string{"status", "--repo", t.TempDir()}, "no ore daemon is running"},
		{[]string{"add"}, "expected one PATH"},
		{[]string{"init", "--repo", filepath.Join(t.TempDir(), "r"), "--upload-limit", "fast"}, "not a rate"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"name", "resolve", "--repo", b.repo, "not-a-name"}, "not an IPNS name"},
		{[]string{"name", "frob"}, "ore name publish"},
		{[]string{"pin", "ls", "--repo", b.repo, "extra"}, "no arguments"},
		{[]string{"pin", "add", "--repo", b.repo, "not-a-cid"}, "is not a CID"},
	} {
		code, _, errs := ore(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("ore %v: exit %d, stderr %q, want it to say %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := ore(t, "status", "--repo", b.repo); code != 0 {
		t.Fatalf("daemon gone after bad input: %s", errs)
	}

	// Stopping the daemon removes its api file.
	a.stop(t)
	if _, err := os.Stat(filepath.Join(a.repo, "api")); !os.IsNotExist(err) {
		t.Errorf("api file left behind: %v", err)
	}
	if code, _, errs := ore(t, "status", "--repo", a.repo); code == 0 || !strings.Contains(errs, "no ore daemon") {
		t.Errorf("status after stop: %d %q", code, errs)
	}
}

func TestInitRefusesExistingRepo(t *testing.T) {
	repo := initRepo(t, "")
	code, _, errs := ore(t, "init", "--repo", repo)
	if code == 0 || !strings.Contains(errs, "already holds an ore repo") {
		t.Fatalf("second init: exit %d %q", code, errs)
	}
	info, err := os.Stat(filepath.Join(repo, "identity.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("identity key mode %v %v", info.Mode(), err)
	}
}

func TestDemo(t *testing.T) {
	// The demo's 13 steps take ~100 s on 2 cores, and over 2 minutes
	// under the race detector (CI's race run).
	code, out, errs := oreWithin(t, 8*time.Minute, "demo", "--boxes", "7", "--size", "2MiB")
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, out, errs)
	}
	for _, want := range []string{"provider found", "matches the published file", "its ticketed bytes at the price", "earned its servers nothing", "the ledger records the order", "verify from genesis", "Ore-Job-Cache: hit", "the same output CID and work units", "to the base unit; escrow now", "demo passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchTransferJSON(t *testing.T) {
	code, out, errs := ore(t, "bench", "transfer", "--size", "4MiB", "--json")
	if code != 0 {
		t.Fatalf("bench exit %d: %s", code, errs)
	}
	for _, k := range []string{`"ore_mb_per_s"`, `"raw_mb_per_s"`, `"ratio"`, `"serve_cpu_ratio"`, `"fetch_cpu_ratio"`} {
		if !strings.Contains(out, k) {
			t.Errorf("bench JSON lacks %s: %s", k, out)
		}
	}
}

// ore bench compute runs end to end on small inputs and reports every
// figure, the gateway's among them.
func TestBenchComputeJSON(t *testing.T) {
	code, out, errs := ore(t, "bench", "compute", "--size", "64KiB", "--jobs", "2", "--rounds", "1", "--json")
	if code != 0 {
		t.Fatalf("bench exit %d: %s", code, errs)
	}
	var rep computeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench JSON: %v: %s", err, out)
	}
	r := rep.Runtime
	if r.Work == 0 || r.MeteredNative <= 0 || r.MeterOverhead <= -1 || rep.RunMs <= 0 || rep.CheckMs <= 0 ||
		rep.ColdTTFB[0] <= 0 || rep.CachedTTFB[0] <= 0 || rep.PlainTTFB[0] <= 0 || len(rep.Rows) < 7 {
		t.Fatalf("bench figures: %s", out)
	}
}
