package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// gatewayNet: box 0 publishes, box 2 is a gateway that has not fetched
// anything.
func gatewayNet(t *testing.T, gc gateway.Config, opts ...node.Option) (*testnet.Network, *node.Node, string) {
	t.Helper()
	nw := newNet(t, 3, opts...)
	ctx := testCtx(t)
	gw, err := nw.Restart(ctx, 2, append(opts, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"), node.WithGateway(gc))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	return nw, gw, "http://" + gw.GatewayAddr()
}

func httpGet(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestGatewayServesContent(t *testing.T) {
	nw, gw, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	site := t.TempDir()
	page := []byte("<html><body>ore</body></html>")
	video := make([]byte, 3<<20+17)
	_, _ = rand.Read(video)
	_ = os.WriteFile(filepath.Join(site, "index.html"), page, 0o644)
	_ = os.MkdirAll(filepath.Join(site, "media"), 0o755)
	_ = os.WriteFile(filepath.Join(site, "media", "clip.bin"), video, 0o644)
	_ = os.WriteFile(filepath.Join(site, "media", "notes.txt"), []byte("notes"), 0o644)
	res, err := nw.Nodes[0].AddPath(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	root := res.Root.String()

	// A file inside a directory, whole.
	resp, body := httpGet(t, base+"/ipfs/"+root+"/media/clip.bin")
	if resp.StatusCode != 200 || !bytes.Equal(body, video) {
		t.Fatalf("file: %d, %d bytes", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("Etag")
	if etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("headers: Etag %q Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	// Conditional request.
	if resp, _ := httpGet(t, base+"/ipfs/"+root+"/media/clip.bin", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	// A byte range (video seeking).
	resp, body = httpGet(t, base+"/ipfs/"+root+"/media/clip.bin", "Range", "bytes=1000000-1000999")
	if resp.StatusCode != 206 || !bytes.Equal(body, video[1000000:1001000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	// index.html for the directory, with its type.
	resp, body = httpGet(t, base+"/ipfs/"+root+"/")
	if resp.StatusCode != 200 || !bytes.Equal(body, page) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("index: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// A listing of a directory without index.html.
	resp, body = httpGet(t, base+"/ipfs/"+root+"/media/")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "clip.bin") || !strings.Contains(string(body), "notes.txt") {
		t.Fatalf("listing: %d %s", resp.StatusCode, body)
	}
	// HEAD.
	hreq, _ := http.NewRequest("HEAD", base+"/ipfs/"+root+"/media/notes.txt", nil)
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil || hresp.StatusCode != 200 || hresp.ContentLength != 5 {
		t.Fatalf("HEAD: %v %v", hresp, err)
	}
	hresp.Body.Close()
	// A raw block, trustless.
	resp, body = httpGet(t, base+"/ipfs/"+root+"?format=raw")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.ipld.raw" {
		t.Fatalf("raw: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got, _ := res.Root.Prefix().Sum(body); !got.Equals(res.Root) {
		t.Fatal("raw block does not hash to its CID")
	}
	// A CAR, verified block by block against the root's DAG.
	resp, body = httpGet(t, base+"/ipfs/"+root, "Accept", "application/vnd.ipld.car")
	if resp.StatusCode != 200 {
		t.Fatalf("car: %d %s", resp.StatusCode, body)
	}
	verifyCAR(t, body, res.Root, len(video))

	// The gateway is a PoD client: it holds countersigned receipts for root.
	testkit.Eventually(10*time.Second, func() bool {
		rs, _ := gw.ReceivedReceipts(ctx, 0)
		return len(rs) > 0
	})
	rs, err := gw.ReceivedReceipts(ctx, 0)
	if err != nil || len(rs) == 0 {
		t.Fatalf("gateway holds no receipts: %v", err)
	}
	for _, r := range rs {
		if r.Root.String() != root || r.VerifyServer() != nil || r.Client != gw.ID() {
			t.Fatalf("bad gateway receipt %+v", r)
		}
	}
	// Heat was recorded for the root.
	if h := gw.Gateway().Heat().Get(res.Root, time.Now()); h.Requests < 5 {
		t.Errorf("heat of root: %+v", h)
	}
}

// verifyCAR checks every block against its CID, that the root is the CAR's
// root, and that the file's leaves add up to size bytes.
func verifyCAR(t *testing.T, data []byte, root cid.Cid, size int) {
	t.Helper()
	br, err := car.NewBlockReader(bytes.NewReader(data), car.WithTrustedCAR(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Roots) != 1 || !br.Roots[0].Equals(root) {
		t.Fatalf("CAR roots %v", br.Roots)
	}
	n, leafBytes := 0, 0
	for {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("CAR block %d: %v", n, err)
		}
		if b.Cid().Prefix().Codec == cid.Raw {
			leafBytes += len(b.RawData())
		}
		n++
	}
	if leafBytes < size {
		t.Fatalf("CAR holds %d leaf bytes, want at least %d", leafBytes, size)
	}
}

func TestGatewayCurlRange(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed: skipping the curl range test")
	}
	nw, _, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	src, _ := randomFile(t, 1<<20)
	data, _ := os.ReadFile(src)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, curl, "-sS", "-f", "-r", "500-1499", base+"/ipfs/"+res.Root.String()).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if !bytes.Equal(out, data[500:1500]) {
		t.Fatalf("curl range: got %d bytes", len(out))
	}
}

func TestGatewayErrors(t *testing.T) {
	// Bitswap only: over the bulk path the gateway's Locate brings the
	// first leaf with the root, and a response whose first bytes were
	// local starts (200) before the provider leaves; the 504 case below
	// needs the root alone local.
	nw, gw, base := gatewayNet(t, gateway.Config{}, node.WithStallTimeout(2*time.Second), node.WithBulk(false))
	ctx := testCtx(t)
	if resp, body := httpGet(t, base+"/ipfs/bafy-not-a-cid"); resp.StatusCode != 400 || len(body) == 0 {
		t.Errorf("malformed CID: %d", resp.StatusCode)
	}
	if resp, body := httpGet(t, base+"/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"); resp.StatusCode != 404 || !strings.Contains(string(body), "no box provides") {
		t.Errorf("absent content: %d %s", resp.StatusCode, body)
	}
	// 504: the gateway has the root block, then the only provider leaves.
	src, _ := randomFile(t, 2<<20)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := httpGet(t, base+"/ipfs/"+res.Root.String()+"?format=raw"); resp.StatusCode != 200 {
		t.Fatalf("raw root: %d", resp.StatusCode)
	}
	for _, i := range []int{0, 1} {
		if err := nw.Nodes[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
	if resp, _ := httpGet(t, base+"/ipfs/"+res.Root.String()); resp.StatusCode != 504 {
		t.Errorf("provider gone mid-transfer: %d, want 504", resp.StatusCode)
	}
	if resp, _ := httpGet(t, base+"/healthz"); resp.StatusCode != 200 {
		t.Fatal("gateway down after errors")
	}
	_ = gw
}

// The gateway spec cases a box answers without the network: CORS
// preflight, only-if-cached (412 at once, and nothing fetched), identity
// CIDs; and the subdomain gateway on localhost, end to end over HTTP.
func TestGatewaySpecCases(t *testing.T) {
	nw, gw, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	site := t.TempDir()
	page := []byte("<html><body>ore site</body></html>")
	_ = os.WriteFile(filepath.Join(site, "index.html"), page, 0o644)
	_ = os.MkdirAll(filepath.Join(site, "css"), 0o755)
	_ = os.WriteFile(filepath.Join(site, "css", "a.css"), []byte("body{}"), 0o644)
	res, err := nw.Nodes[0].AddPath(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	root := res.Root.String()
	for _, p := range []string{"/ipfs/" + root, "/ipfs/" + root + "/css/a.css"} {
		if resp, _ := httpGet(t, base+p, "Cache-Control", "only-if-cached"); resp.StatusCode != http.StatusPreconditionFailed {
			t.Errorf("only-if-cached %s, not on the gateway: %d, want 412", p, resp.StatusCode)
		}
	}
	if has, err := gw.Store().Has(ctx, res.Root); err != nil || has {
		t.Errorf("only-if-cached fetched the root (%v)", err)
	}
	if resp, body := httpGet(t, base+"/ipfs/"+root+"/"); resp.StatusCode != 200 || !bytes.Equal(body, page) {
		t.Fatalf("plain GET: %d %q", resp.StatusCode, body)
	}
	if resp, _ := httpGet(t, base+"/ipfs/"+root+"/css/a.css"); resp.StatusCode != 200 {
		t.Fatalf("plain GET of a.css: %d", resp.StatusCode)
	}
	if resp, body := httpGet(t, base+"/ipfs/"+root+"/css/a.css", "Cache-Control", "only-if-cached"); resp.StatusCode != 200 || string(body) != "body{}" {
		t.Errorf("only-if-cached, now local: %d %q", resp.StatusCode, body)
	}
	if resp, body := httpGet(t, base+"/ipfs/bafkqabtimvwgy3yk"); resp.StatusCode != 200 || string(body) != "hello\n" {
		t.Errorf("identity CID: %d %q", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("OPTIONS", base+"/ipfs/"+root, nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	// Subdomains: localhost:{port}/ipfs/{cid} → {cid}.ipfs.localhost:{port}/.
	_, port, _ := net.SplitHostPort(gw.GatewayAddr())
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ = http.NewRequest("GET", base+"/ipfs/"+root+"/css/a.css", nil)
	req.Host = "localhost:" + port
	if resp, err = noFollow.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sub := root + ".ipfs.localhost:" + port
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "http://"+sub+"/css/a.css" {
		t.Fatalf("localhost redirect: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for p, want := range map[string]string{"/": string(page), "/css/a.css": "body{}"} {
		req, _ = http.NewRequest("GET", base+p, nil)
		req.Host = sub
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("%s%s: %d %q", sub, p, resp.StatusCode, body)
		}
	}
}

func TestGatewayThousandConcurrentRequests(t *testing.T) {
	// All 1,000 come from one address: its rate and its cap rise with the slots.
	nw, _, base := gatewayNet(t, gateway.Config{MaxConcurrentFetches: 2000, RatePerClient: 1e6, BurstPerClient: 1e6, MaxPerClient: 2000})
	ctx := testCtx(t)
	const files = 20
	var roots []string
	var sums [][32]byte
	for i := 0; i < files; i++ {
		data := make([]byte, 64<<10+i)
		_, _ = rand.Read(data)
		p := filepath.Join(t.TempDir(), fmt.Sprint(i))
		_ = os.WriteFile(p, data, 0o644)
		res, err := nw.Nodes[i%2].AddPath(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, res.Root.String())
		sums = append(sums, sha256.Sum256(data))
	}
	before := runtime.NumGoroutine()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100, MaxConnsPerHost: 200}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := client.Get(base + "/ipfs/" + roots[i%files])
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || sha256.Sum256(b) != sums[i%files] {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("request %d: %d", i, resp.StatusCode))
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of 1000 requests failed, e.g. %s", len(failures), failures[0])
	}
	client.CloseIdleConnections()
	// Goroutines come back down once the requests are done.
	if !testkit.Eventually(10*time.Second, func() bool { return runtime.NumGoroutine() < before+200 }) {
		t.Fatalf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 1<<30 {
		t.Fatalf("heap in use %d MiB after the burst", ms.HeapInuse>>20)
	}
}

func TestCARExportImportRoundTrip(t *testing.T) {
	nw := newNet(t, 3)
	ctx := testCtx(t)
	src, want := randomFile(t, 3<<20)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := nw.Nodes[1].ExportCAR(ctx, res.Root, &buf); err != nil {
		t.Fatal(err)
	}
	// Box 2 takes the CAR with the publisher and box 1 gone.
	for _, i := range []int{0, 1} {
		_ = nw.Nodes[i].Close()
	}
	imp, err := nw.Nodes[2].ImportCAR(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Roots) != 1 || !imp.Roots[0].Equals(res.Root) {
		t.Fatalf("imported roots %v", imp.Roots)
	}
	if pinned, _ := nw.Nodes[2].Store().IsPinned(ctx, res.Root); !pinned {
		t.Fatal("imported root not pinned")
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := nw.Nodes[2].Get(ctx, res.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, out) != want {
		t.Fatal("content differs after CAR round trip")
	}
	// A CAR with a corrupted block is refused and pins nothing.
	var buf2 bytes.Buffer
	other, _ := randomFile(t, 1<<20)
	res2, err := nw.Nodes[2].AddPath(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Nodes[2].ExportCAR(ctx, res2.Root, &buf2); err != nil {
		t.Fatal(err)
	}
	bad := buf2.Bytes()
	bad[len(bad)-10] ^= 0xff
	nd := nw.Nodes[2]
	if _, err := nd.ImportCAR(context.Background(), bytes.NewReader(bad)); err == nil {
		t.Fatal("corrupt CAR accepted")
	}
}

// The local fast path answers exactly as boxo's handler does: every
// request is asked of the gateway with the fast path, then of the same box
// restarted without it, and the statuses, headers and bodies compared.
func TestGatewayLocalFastPathMatchesBoxo(t *testing.T) {
	nw, gwNode, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	dir := t.TempDir()
	big := make([]byte, 3<<20+17) // 13 leaves under one inner node: through the block cache
	_, _ = rand.Read(big)
	huge := make([]byte, 9<<20+5) // read leaf by leaf from the store
	_, _ = rand.Read(huge)
	files := map[string][]byte{
		"huge.bin":  huge,
		"page.html": []byte("<!doctype html><html><body>ore</body></html>"),
		"notes.txt": []byte("plain notes\n"),
		"empty":     {},
		"one":       {'x'},
		"big.bin":   big,
	}
	var roots []string
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := nw.Nodes[0].AddPath(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, res.Root.String())
		// A first request fills the gateway's store (through boxo).
		if resp, body := httpGet(t, base+"/ipfs/"+res.Root.String()); resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("%s: %d, %d bytes", name, resp.StatusCode, len(body))
		}
	}
	type answer struct {
		status int
		header http.Header
		body   []byte
	}
	ask := func(base string) map[string]answer {
		out := map[string]answer{}
		for _, root := range roots {
			etag := `"` + root + `"`
			for _, hdr := range [][]string{
				nil,
				{"Range", "bytes=0-0"},
				{"Range", "bytes=5-"},
				{"Range", "bytes=-7"},
				{"Range", "bytes=1000000-1000999"},
				{"Range", "bytes=99999999-"},
				{"If-None-Match", etag},
				{"If-None-Match", "W/" + etag},
				{"If-None-Match", `"something-else"`},
				{"Accept", "*/*"},
				{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"},
				{"Cache-Control", "only-if-cached"},
				{"Origin", "https://app.example"},
			} {
				for _, method := range []string{"GET", "HEAD"} {
					req, _ := http.NewRequest(method, base+"/ipfs/"+root, nil)
					if hdr != nil {
						req.Header.Set(hdr[0], hdr[1])
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatal(err)
					}
					resp.Header.Del("Date")
					out[fmt.Sprintf("%s %s %v", method, root, hdr)] = answer{resp.StatusCode, resp.Header, body}
				}
			}
		}
		return out
	}
	before := metricValue(t, gwNode, "ore_gateway_local_responses_total")
	local := ask(base)
	// All but the If-None-Match with a foreign validator (boxo also knows
	// directory-listing and DAG-index validators) and the HEAD with
	// only-if-cached (boxo answers a bare 200) take the fast path.
	if want, got := len(local)-3*len(roots), metricValue(t, gwNode, "ore_gateway_local_responses_total")-before; got != want {
		t.Errorf("the fast path answered %d requests, want %d", got, want)
	}
	// The leaves in the store's pack files went file to socket.
	if got := metricValue(t, gwNode, "ore_gateway_local_file_bytes_total"); got < len(huge) {
		t.Errorf("the fast path sent %d bytes from the store's files, less than one whole huge.bin", got)
	}
	gw, err := nw.Restart(ctx, 2, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"),
		node.WithGateway(gateway.Config{NoLocalFastPath: true}))
	if err != nil {
		t.Fatal(err)
	}
	boxo := ask("http://" + gw.GatewayAddr())
	for k, want := range boxo {
		got := local[k]
		if want.status >= 500 {
			// boxo fails some suffix ranges of tiny files (bytes=-7 of a
			// 1-byte file); the fast path answers them as RFC 9110 says.
			if got.status != 200 && got.status != 206 {
				t.Errorf("%s: fast path %d, boxo %d", k, got.status, want.status)
			}
			continue
		}
		if got.status != want.status || !bytes.Equal(got.body, want.body) {
			t.Errorf("%s: fast path %d with %d bytes, boxo %d with %d bytes", k, got.status, len(got.body), want.status, len(want.body))
			continue
		}
		for h := range want.header {
			if got.header.Get(h) != want.header.Get(h) {
				t.Errorf("%s: %s is %q on the fast path, %q from boxo", k, h, got.header.Get(h), want.header.Get(h))
			}
		}
		for h := range got.header {
			if want.header.Get(h) == "" {
				t.Errorf("%s: the fast path sends %s: %q, boxo does not", k, h, got.header.Get(h))
			}
		}
	}
}

// metricValue reads an unlabelled counter from a box's metrics (the
// daemon serves them on its API address, not on the gateway's).
func metricValue(t *testing.T, n *node.Node, m string) int {
	t.Helper()
	mfs, err := n.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == m && len(mf.GetMetric()) == 1 {
			return int(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatalf("no metric %s", m)
	return 0
}

// The gateway's metrics are the box's, not the public gateway's: /metrics
// there is 404 unless the box is told to publish them.
func TestGatewayMetricsNotPublic(t *testing.T) {
	nw, gw, base := gatewayNet(t, gateway.Config{})
	if resp, _ := httpGet(t, base+"/metrics"); resp.StatusCode != 404 {
		t.Fatalf("/metrics on the gateway: %d, want 404", resp.StatusCode)
	}
	if resp, _ := httpGet(t, base+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	if metricValue(t, gw, "ore_gateway_write_timeouts_total") != 0 {
		t.Fatal("write timeouts before any request")
	}
	ctx := testCtx(t)
	gw, err := nw.Restart(ctx, 2, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"), node.WithGatewayMetrics(true))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := httpGet(t, "http://"+gw.GatewayAddr()+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ore_gateway_slots_in_use") {
		t.Fatalf("/metrics with WithGatewayMetrics: %d", resp.StatusCode)
	}
}

// TestGatewayClientLimitsFromConfig: config.json's per-client limits reach
// the gateway (a reverse proxy or a test suite is one client): a rate of
// one request in 1000 s lets one request through and refuses the next.
func TestGatewayClientLimitsFromConfig(t *testing.T) {
	fc := node.DefaultFileConfig()
	fc.Role, fc.GatewayClientRate, fc.Listen = string(node.RoleGateway), 0.001, nil
	opts, err := fc.Options()
	if err != nil {
		t.Fatal(err)
	}
	nw := newNet(t, 1, append(opts, node.WithGatewayListen("127.0.0.1:0"))...)
	url := "http://" + nw.Nodes[0].GatewayAddr() + "/ipfs/bafkqabtimvwgy3yk"
	if resp, _ := httpGet(t, url); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %s", resp.Status)
	}
	if resp, _ := httpGet(t, url); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second request at a rate of 0.001/s: %s", resp.Status)
	}
	fc.GatewayClientCap = -1
	if _, err := fc.Options(); err == nil {
		t.Fatal("a negative per-client cap was taken")
	}
}
