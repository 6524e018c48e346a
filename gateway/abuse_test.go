package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// from sends a request from a given client address.
func from(t *testing.T, h http.Handler, remote, target string) int {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// A reader that stops reading loses its slot after the write deadline,
// on the local fast path and through boxo's handler alike, and the client
// waiting for that slot is served.
func TestSlowReaderIsCut(t *testing.T) {
	big := make([]byte, 16<<20) // far more than loopback's socket buffers hold
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, path := range []string{"fast from memory", "fast from disk", "boxo"} {
		t.Run(path, func(t *testing.T) {
			gw, fb, small := newFake(t, Config{WriteTimeout: 300 * time.Millisecond, MinSendRate: -1,
				MaxConcurrentFetches: 1, NoLocalFastPath: path == "boxo"})
			blk, _ := blocks.NewBlockWithCid(big, cid.NewCidV1(cid.Raw, blocks.NewBlock(big).Cid().Hash()))
			if err := fb.bs.AddBlock(context.Background(), blk); err != nil {
				t.Fatal(err)
			}
			fb.local = map[cid.Cid][]byte{blk.Cid(): big}
			if path == "fast from disk" {
				fb.disk = newDiskFiles(t, fb.local)
			}
			// The server reports each connection it closes.
			srv := httptest.NewUnstartedServer(gw)
			closed := make(chan string, 16)
			srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed <- c.RemoteAddr().String()
				}
			}
			srv.Start()
			defer srv.Close()

			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			if _, err := fmt.Fprintf(conn, "GET /ipfs/%s HTTP/1.1\r\nHost: gw\r\n\r\n", blk.Cid()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the slow reader never took the slot", func() bool { return len(gw.slots) == 1 })
			honest := srv.URL + "/ipfs/" + small.Cid().String() + "?format=raw"
			if code := httpCode(t, honest); code != 503 {
				t.Fatalf("while the slow reader holds the only slot: %d, want 503", code)
			}
			waitFor(t, 10*time.Second, "the slow reader was never cut", func() bool { return testutil.ToFloat64(gw.writeTimeouts) == 1 })
			waitFor(t, 10*time.Second, "the slow reader's slot was never freed", func() bool { return len(gw.slots) == 0 })
			if code := httpCode(t, honest); code != 200 {
				t.Fatalf("honest client after the slow reader was cut: %d", code)
			}
			// The gateway closed the slow reader's connection (what it had
			// queued in the kernel's socket buffer still drains to it).
			select {
			case c := <-closed:
				if c != conn.LocalAddr().String() {
					t.Fatalf("the gateway closed %s, not the slow reader %s", c, conn.LocalAddr())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the slow reader's connection is still open")
			}
		})
	}
}

func httpCode(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// recordingWriter records the write deadlines set on it, and advances a
// fake clock by the time each write blocks.
type recordingWriter struct {
	httptest.ResponseRecorder
	clock     *time.Time
	blocks    []time.Duration // how long each write blocks
	deadlines []time.Duration // each deadline, from the write's start
}

func (r *recordingWriter) SetWriteDeadline(d time.Time) error {
	r.deadlines = append(r.deadlines, d.Sub(*r.clock))
	return nil
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	*r.clock = r.clock.Add(r.blocks[0])
	r.blocks = r.blocks[1:]
	return len(p), nil
}

// The deadline of each write: WriteTimeout, shortened once the client's
// average rate over the time it kept the gateway waiting is below
// MinSendRate; time between writes (the gateway's own) does not count.
func TestWriteDeadlines(t *testing.T) {
	clock := time.Unix(1000, 0)
	rw := &recordingWriter{clock: &clock}
	// 1,000 bytes a write; the first two return at once, the next ones
	// block 5 s each (200 bytes/s).
	rw.blocks = []time.Duration{0, 0, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	d := newDeadlineWriter(rw, 10*time.Second, 1000, func() time.Time { return clock }, nil)
	for range len(rw.blocks) {
		clock = clock.Add(time.Minute) // the gateway fetching: not the client's time
		if _, err := d.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	d.finish()
	// Allowed: 10 s + sent/1000 per s - blocked; at most 10 s a write.
	want := []time.Duration{10 * time.Second, // armed at the start
		10 * time.Second, 10 * time.Second, 10 * time.Second, // 10+3-0
		9 * time.Second, 5 * time.Second, 1 * time.Second, -3 * time.Second, // 10+4-5, 10+5-10, 10+6-15, 10+7-20
		-8 * time.Second} // finish: 10+7-25
	if fmt.Sprint(rw.deadlines) != fmt.Sprint(want) {
		t.Fatalf("deadlines %v, want %v", rw.deadlines, want)
	}
}

// One client with MaxPerClient requests in flight is refused (429) at
// once, while another client is served.
func TestPerClientCap(t *testing.T) {
	gw, fb, b := newFake(t, Config{MaxPerClient: 2})
	entered, release := make(chan struct{}, 2), make(chan struct{})
	fb.locate = func(ctx context.Context, _ cid.Cid) error {
		entered <- struct{}{}
		<-release
		return nil
	}
	path := "/ipfs/" + b.Cid().String() + "?format=raw"
	first := make(chan int, 2)
	for range 2 {
		go func() { first <- from(t, gw, "192.0.2.1:1000", path) }()
	}
	<-entered
	<-entered
	fb.locate = nil
	if code := from(t, gw, "192.0.2.1:1001", path); code != 429 {
		t.Fatalf("a third request from a client with 2 in flight: %d, want 429", code)
	}
	if code := from(t, gw, "192.0.2.2:1000", path); code != 200 {
		t.Fatalf("another client: %d, want 200", code)
	}
	if got := testutil.ToFloat64(gw.refused.WithLabelValues(refusedCap)); got != 1 {
		t.Errorf("refused for the client cap: %v, want 1", got)
	}
	close(release)
	for range 2 {
		if code := <-first; code != 200 {
			t.Fatalf("a request within the cap: %d", code)
		}
	}
	if code := from(t, gw, "192.0.2.1:1002", path); code != 200 {
		t.Fatalf("the first client once its requests are done: %d", code)
	}
}

// Two IPv6 addresses in one /64 share a rate limiter; another /64 and an
// IPv4 client (plain or mapped) have their own.
func TestLimiterKeysIPv6By64(t *testing.T) {
	gw, _, b := newFake(t, Config{RatePerClient: 0.001, BurstPerClient: 1})
	path := "/ipfs/" + b.Cid().String() + "?format=raw"
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"[2001:db8:1:2::1]:1000", 200},
		{"[2001:db8:1:2:ffff:ffff:ffff:fffe]:1000", 429}, // the same /64
		{"[2001:db8:1:3::1]:1000", 200},                  // the next /64
		{"192.0.2.9:1000", 200},
		{"[::ffff:192.0.2.9]:1000", 429}, // the same IPv4 client
		{"192.0.2.10:1000", 200},
	} {
		if code := from(t, gw, tc.remote, path); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.remote, code, tc.want)
		}
	}
	for in, want := range map[string]string{
		"[2001:db8::1%eth0]:1": "2001:db8::/64",
		"[fe80::1:2:3:4]:1":    "fe80::/64",
		"203.0.113.5:80":       "203.0.113.5",
		"[::ffff:10.0.0.1]:80": "10.0.0.1",
		"not an address":       "not an address",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// When the limiters are full, the clients seen least recently are
// forgotten, one by one: a client that keeps coming stays limited however
// many new clients arrive. (Before, every limiter was dropped at once at
// 65,536 clients, and every client came back with a full bucket.)
func TestLimiterKeepsRecentClients(t *testing.T) {
	gw, _, _ := newFake(t, Config{RatePerClient: 0.001, BurstPerClient: 1})
	const limited = "198.51.100.1:1"
	// An invalid CID costs a token but nothing else: cheap requests.
	if code := from(t, gw, limited, "/ipfs/x"); code != 400 {
		t.Fatalf("first request: %d", code)
	}
	for i := range 3 * gw.cfg.ClientEntries / 2 {
		remote := fmt.Sprintf("10.%d.%d.%d:1", i>>16&0xff, i>>8&0xff, i&0xff)
		if code := from(t, gw, remote, "/ipfs/x"); code != 400 {
			t.Fatalf("client %d: %d", i, code)
		}
		if i%1000 == 0 {
			if code := from(t, gw, limited, "/ipfs/x"); code != 429 {
				t.Fatalf("the recent client after %d others: %d, want 429 (forgotten)", i+1, code)
			}
		}
	}
	if got, max := gw.clients.entries(), gw.cfg.ClientEntries; got != max {
		t.Errorf("%d limiters held, want the bound %d", got, max)
	}
	if got := testutil.ToFloat64(gw.refused.WithLabelValues(refusedRate)); got < 90 {
		t.Errorf("refused for the rate: %v", got)
	}
	// The first of the others, seen least recently, was forgotten.
	if code := from(t, gw, "10.0.0.0:1", "/ipfs/x"); code != 400 {
		t.Errorf("the least recent client: %d, want a fresh bucket", code)
	}
}

// /metrics is not on the public gateway unless asked for.
func TestMetricsNotPublicByDefault(t *testing.T) {
	gw, _, _ := newFake(t, Config{})
	if rec := get(t, gw, "GET", "/metrics"); rec.Code != 404 {
		t.Fatalf("/metrics on the public gateway: %d, want 404", rec.Code)
	}
	gw, _, _ = newFake(t, Config{PublicMetrics: true})
	get(t, gw, "GET", "/healthz")
	rec := get(t, gw, "GET", "/metrics")
	if rec.Code != 200 {
		t.Fatalf("/metrics with PublicMetrics: %d", rec.Code)
	}
	for _, m := range []string{"ore_gateway_responses_total", "ore_gateway_refused_total", "ore_gateway_slots_in_use",
		"ore_gateway_write_timeouts_total", "ore_gateway_client_limiters"} {
		if !strings.Contains(rec.Body.String(), m) {
			t.Errorf("no %s in /metrics", m)
		}
	}
}

// A directory listing shows at most MaxListingEntries entries: beyond, 501
// at once, while the same directory's CAR and its index.html (when it has
// one) are served as before.
func TestListingLimit(t *testing.T) {
	for _, tc := range []struct {
		max, entries int
		index        bool
		want         int
	}{
		{max: 5, entries: 5, want: 200},
		{max: 4, entries: 5, want: 501},
		{max: 2, entries: 5, index: true, want: 200},
	} {
		gw, fb, _ := newFake(t, Config{MaxListingEntries: tc.max})
		dag := merkledag.NewDAGService(fb.bs)
		dir, err := uio.NewDirectory(dag)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.entries {
			f := merkledag.NodeWithData(ft.FilePBData([]byte(fmt.Sprint("file ", i)), uint64(len(fmt.Sprint("file ", i)))))
			if err := dag.Add(context.Background(), f); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("entry-%d.txt", i)
			if tc.index && i == 0 {
				name = "index.html"
			}
			if err := dir.AddChild(context.Background(), name, f); err != nil {
				t.Fatal(err)
			}
		}
		nd, err := dir.GetNode()
		if err != nil {
			t.Fatal(err)
		}
		if err := dag.Add(context.Background(), nd); err != nil {
			t.Fatal(err)
		}
		rec := get(t, gw, "GET", "/ipfs/"+nd.Cid().String()+"/")
		if rec.Code != tc.want {
			t.Errorf("%+v: listing %d, want %d (%s)", tc, rec.Code, tc.want, rec.Body.String())
		}
		switch {
		case tc.want == 501 && !strings.Contains(rec.Body.String(), "format=car"):
			t.Errorf("%+v: the refusal does not say what to do: %s", tc, rec.Body.String())
		case tc.want == 200 && !tc.index && !strings.Contains(rec.Body.String(), fmt.Sprintf("entry-%d.txt", tc.entries-1)):
			t.Errorf("%+v: the listing misses entries", tc)
		case tc.index && rec.Body.String() != "file 0":
			t.Errorf("%+v: index.html not served: %q", tc, rec.Body.String())
		}
		if rec := get(t, gw, "GET", "/ipfs/"+nd.Cid().String()+"?format=car"); rec.Code != 200 {
			t.Errorf("%+v: CAR %d", tc, rec.Code)
		}
	}
}
