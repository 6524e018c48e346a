package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/store"
)

// childMainEnv makes the test binary run ore's main instead of the tests:
// the power-loss and shutdown tests run `ore daemon` as a real process by
// re-executing this binary.
const childMainEnv = "ORE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// childCmd runs this test binary as the ore command.
func childCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childMainEnv+"=1")
	return cmd
}

// startChild runs `ore daemon` on repo in its own process; the test kills
// it at the end if it still runs.
func startChild(t *testing.T, repo string) *childDaemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childReadyTimeout)
	defer cancel()
	d, err := startChildDaemon(ctx, childCmd, repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.kill)
	return d
}

// initRepoWith is initRepo with more `ore init` flags.
func initRepoWith(t *testing.T, extra ...string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	args := append([]string{"init", "--repo", repo, "--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--api", "127.0.0.1:0", "--dht", "server"}, extra...)
	if code, _, errs := ore(t, args...); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	return repo
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 't'})
	_, _ = r.Read(b)
	return b
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// leafCIDs are the CIDs of data's raw 256 KiB leaves, in file order.
func leafCIDs(data []byte) []cid.Cid {
	var out []cid.Cid
	for off := 0; off < len(data); off += node.DefaultChunkSize {
		chunk := data[off:min(off+node.DefaultChunkSize, len(data))]
		h := sha256.Sum256(chunk)
		m, _ := mh.Encode(h[:], mh.SHA2_256)
		out = append(out, cid.NewCidV1(cid.Raw, m))
	}
	return out
}

func chunkOf(data []byte, i int) []byte {
	off := i * node.DefaultChunkSize
	return data[off:min(off+node.DefaultChunkSize, len(data))]
}

// openStore opens a stopped box's block store in the test.
func openStore(t *testing.T, repo string) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(repo, node.BlocksDir))
	if err != nil {
		t.Fatalf("the repo's store does not open after the daemon died: %v", err)
	}
	return s
}

func addCLI(t *testing.T, repo, path string) string {
	t.Helper()
	code, out, errs := ore(t, "add", "-q", "--repo", repo, path)
	if code != 0 {
		t.Fatalf("add %s: exit %d: %s", path, code, errs)
	}
	return strings.TrimSpace(out)
}

func getCLI(t *testing.T, repo, root string) []byte {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "got")
	if code, _, errs := ore(t, "get", "--repo", repo, "-o", dst, root); code != 0 {
		t.Fatalf("get %s: exit %d: %s", root, code, errs)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func status(t *testing.T, repo string) statusInfo {
	t.Helper()
	c, err := newClient(repo)
	if err != nil {
		t.Fatal(err)
	}
	var st statusInfo
	if err := c.getJSON(context.Background(), apiStatus, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// stalledAdd starts an add through the control API whose file the test
// writes into w: the add stays in flight until w is closed.
func stalledAdd(t *testing.T, repo string) (w *io.PipeWriter, done <-chan error) {
	t.Helper()
	c, err := newClient(repo)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	body := files.NewMultiFileReader(files.NewSliceDirectory([]files.DirEntry{files.FileEntry("big.bin", files.NewReaderFile(pr))}), true, false)
	req, err := http.NewRequest(http.MethodPost, c.base+apiAdd, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+body.Boundary())
	ch := make(chan error, 1)
	go func() {
		resp, err := c.do(req)
		if err == nil {
			_, err = readStream(resp.Body, nil)
			resp.Body.Close()
		}
		ch <- err
	}()
	t.Cleanup(func() { pw.CloseWithError(io.ErrClosedPipe) })
	return pw, ch
}

// TestDaemonGracefulShutdown: SIGTERM and SIGINT stop a daemon with an add
// in flight cleanly (exit 0, structured log lines, api file removed), and
// the repo opens again.
func TestDaemonGracefulShutdown(t *testing.T) {
	repo := initRepoWith(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		d := startChild(t, repo)
		pw, addDone := stalledAdd(t, repo)
		if _, err := pw.Write(randomBytes(3<<20, 1)); err != nil {
			t.Fatal(err)
		}
		took, err := d.stop(sig, time.Minute)
		if err != nil {
			t.Fatalf("%v: daemon exit: %v\n%s", sig, err, d.stderr.String())
		}
		t.Logf("%v: stopped in %s with an add in flight", sig, took.Round(time.Millisecond))
		pw.CloseWithError(io.ErrClosedPipe) // net/http waits for the body before it reports the lost connection
		if err := <-addDone; err == nil {
			t.Errorf("%v: the add in flight reported success from a stopping daemon", sig)
		}
		logs := d.stderr.String()
		for _, want := range []string{"level=INFO msg=\"daemon ready\"", "msg=\"shutting down\"", "msg=\"box stopped\""} {
			if !strings.Contains(logs, want) {
				t.Errorf("%v: daemon log lacks %s:\n%s", sig, want, logs)
			}
		}
		if _, err := os.Stat(filepath.Join(repo, node.APIFile)); !os.IsNotExist(err) {
			t.Errorf("%v: api file left behind: %v", sig, err)
		}
	}
	d := startChild(t, repo)
	if _, err := d.stop(syscall.SIGTERM, time.Minute); err != nil {
		t.Fatalf("restart after graceful stops: %v", err)
	}
}

// TestPowerLossDuringAdd kills the daemon (SIGKILL) while an add is half
// written: the repo opens again, the blocks that were written are intact and
// served, no pin points at a missing block, and the add can be redone.
func TestPowerLossDuringAdd(t *testing.T) {
	repo := initRepoWith(t)
	a := startChild(t, repo)
	first := randomBytes(1<<20+77, 2)
	root1 := addCLI(t, repo, writeTemp(t, "first.bin", first))

	// An add that never finishes: 20 MiB written, the rest never comes.
	partial := randomBytes(20<<20, 3)
	pw, _ := stalledAdd(t, repo)
	if _, err := pw.Write(partial); err != nil {
		t.Fatal(err)
	}
	used0 := int64(len(first))
	testkit.WaitFor(t, time.Minute, "the daemon to store part of the add", func() bool { return status(t, repo).StoreUsed >= used0+8<<20 })
	a.kill()

	s := openStore(t, repo)
	ctx := context.Background()
	pins, err := s.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins[0].String() != root1 {
		t.Fatalf("pins after a killed add: %v, want only %s", pins, root1)
	}
	leaves := leafCIDs(partial)
	lastPresent := -1
	for i, c := range leaves {
		b, err := s.Get(ctx, c)
		if err != nil {
			continue
		}
		if !bytes.Equal(b.RawData(), chunkOf(partial, i)) {
			t.Fatalf("block %d of the killed add is damaged", i)
		}
		lastPresent = i
	}
	if lastPresent < 0 {
		t.Fatal("no block of the killed add survived, though the daemon reported them stored")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted, the box serves the finished add and the blocks that were
	// written of the killed one to another box.
	a = startChild(t, repo)
	b := startChild(t, initRepoWith(t, "--bootstrap", a.addrs[0]))
	if got := getCLI(t, b.repo, root1); !bytes.Equal(got, first) {
		t.Fatal("the add finished before the kill came back different")
	}
	if got := getCLI(t, b.repo, leaves[lastPresent].String()); !bytes.Equal(got, chunkOf(partial, lastPresent)) {
		t.Fatal("a block written before the kill came back different")
	}
	// And the add can be done again in full.
	root2 := addCLI(t, repo, writeTemp(t, "partial.bin", partial))
	if st := status(t, repo); len(st.Pins) != 2 {
		t.Fatalf("pins after redoing the add: %v (added %s)", st.Pins, root2)
	}
}

// fetchAPI runs a fetch through the control API, calling onProgress for
// each progress line.
func fetchAPI(t *testing.T, repo, root string, onProgress func(node.FetchProgress)) (*node.FetchResult, error) {
	t.Helper()
	c, err := newClient(repo)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+apiFetch+"?"+url.Values{"cid": {root}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	line, err := readStream(resp.Body, onProgress)
	if err != nil {
		return nil, err
	}
	return line.Fetched, nil
}

// TestPowerLossDuringGet kills a fetching daemon (SIGKILL) halfway: it
// restarts, and the get resumes: exactly the blocks not yet stored come
// from the network.
func TestPowerLossDuringGet(t *testing.T) {
	srcRepo := initRepoWith(t)
	a := startChild(t, srcRepo)
	data := randomBytes(40<<20+1234, 4)
	src := writeTemp(t, "movie.bin", data)
	root := addCLI(t, srcRepo, src)

	// The source loses the last 40% of the leaves, so the fetch cannot
	// finish before the kill.
	if _, err := a.stop(syscall.SIGTERM, time.Minute); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, srcRepo)
	leaves := leafCIDs(data)
	keep := len(leaves) * 6 / 10
	var kept int64
	for i, c := range leaves {
		if i < keep {
			kept += int64(len(chunkOf(data, i)))
			continue
		}
		if err := s.DeleteBlock(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a = startChild(t, srcRepo)

	dstRepo := initRepoWith(t, "--bootstrap", a.addrs[0])
	b := startChild(t, dstRepo)
	_, err := fetchAPI(t, dstRepo, root, func(p node.FetchProgress) {
		if p.Fetched >= kept {
			b.kill() // everything the source has arrived; some is not flushed yet
		}
	})
	if err == nil {
		t.Fatal("the fetch finished though the source lacks blocks")
	}
	select {
	case <-b.done:
	default:
		t.Fatalf("the fetch ended before the kill: %v", err)
	}

	s = openStore(t, dstRepo)
	stored := s.Used()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if stored == 0 {
		t.Fatal("nothing fetched before the kill was stored")
	}

	// Another box holds the whole file; the restarted box resumes from it.
	// (Not from a: a countersigned receipts the killed box never stored, so
	// a refuses its restarted receipts as stale until the epoch turns; see
	// the pod package's sequence rule.)
	if _, err := a.stop(syscall.SIGTERM, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, initRepoWith(t))
	if again := addCLI(t, c.repo, src); again != root {
		t.Fatalf("adding the file on another box gave %s, want %s", again, root)
	}
	cfg, err := node.LoadConfig(dstRepo)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bootstrap = []string{c.addrs[0]}
	if err := node.WriteConfig(dstRepo, cfg); err != nil {
		t.Fatal(err)
	}
	b = startChild(t, dstRepo)
	res, err := fetchAPI(t, dstRepo, root, nil)
	if err != nil {
		t.Fatalf("resumed fetch: %v", err)
	}
	if res.Fetched != res.Bytes-stored {
		t.Fatalf("resumed fetch took %d bytes from the network; %d of %d were stored before the kill, so want %d",
			res.Fetched, stored, res.Bytes, res.Bytes-stored)
	}
	if got := getCLI(t, dstRepo, root); !bytes.Equal(got, data) {
		t.Fatal("the resumed get wrote different bytes")
	}
}

// TestQuotaFullKeepsServing: a box whose quota is full refuses adds and
// replication with an error that says what to do, keeps what it has and
// keeps serving it.
func TestQuotaFullKeepsServing(t *testing.T) {
	a := startDaemon(t, initRepoWith(t, "--quota", "2 MiB"))
	b := startDaemon(t, initRepoWith(t, "--bootstrap", a.addrs[0]))
	small := randomBytes(1<<20, 5)
	root1 := addCLI(t, a.repo, writeTemp(t, "small.bin", small))

	big := writeTemp(t, "big.bin", randomBytes(3<<20, 6))
	code, _, errs := ore(t, "add", "-q", "--repo", a.repo, big)
	if code == 0 || !strings.Contains(errs, "quota is full") || !strings.Contains(errs, filepath.Join(a.repo, "config.json")) {
		t.Fatalf("add over the quota: exit %d, stderr %q: want a quota error naming config.json", code, errs)
	}
	// Replication onto the full box fails the same way.
	root3 := addCLI(t, b.repo, big)
	code, _, errs = ore(t, "get", "--repo", a.repo, "-o", filepath.Join(t.TempDir(), "x"), root3)
	if code == 0 || !strings.Contains(errs, "quota is full") {
		t.Fatalf("get onto a full box: exit %d, stderr %q", code, errs)
	}
	// It still serves what it had, intact.
	if got := getCLI(t, b.repo, root1); !bytes.Equal(got, small) {
		t.Fatal("the full box served different bytes")
	}
	st := status(t, a.repo)
	if len(st.Pins) != 1 || st.Pins[0] != root1 || st.StoreUsed > st.StoreQuota {
		t.Fatalf("full box: pins %v, used %d of %d", st.Pins, st.StoreUsed, st.StoreQuota)
	}
}

// TestBenchMemoryJSON runs `ore bench memory` small: the box is a child
// process and every figure is measured.
func TestBenchMemoryJSON(t *testing.T) {
	t.Setenv(childMainEnv, "1") // the bench re-executes this binary as `ore daemon`
	code, out, errs := ore(t, "bench", "memory", "--size", "2MiB", "--settle", "0s", "--json")
	if code != 0 {
		t.Fatalf("bench memory exit %d: %s", code, errs)
	}
	var rep memoryReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench memory JSON %q: %v", out, err)
	}
	if rep.Profile != "small" || rep.SizeBytes != 2<<20 {
		t.Errorf("report %+v", rep)
	}
	for name, v := range map[string]float64{"idle": rep.IdleRSSMiB, "add": rep.AddPeakRSSMiB, "serve": rep.ServePeakRSSMiB,
		"fetch": rep.FetchPeakRSSMiB, "idle anon": rep.IdleAnonMiB, "serve anon": rep.ServePeakAnonMiB} {
		if v <= 0 {
			t.Errorf("%s RSS not measured: %+v", name, rep)
		}
	}
	if rep.ServePeakAnonMiB > rep.ServePeakRSSMiB {
		t.Errorf("anon RSS above RSS: %+v", rep)
	}
}
