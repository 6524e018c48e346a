package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	mbase "github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"
)

// countLocate makes the fake's Locate count its calls and answer as a box
// that finds no provider.
func countLocate(fb *fakeBackend) *atomic.Int32 {
	var n atomic.Int32
	fb.locate = func(context.Context, cid.Cid) error { n.Add(1); return ErrNotFound }
	return &n
}

func hostGet(t *testing.T, h http.Handler, method, host, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Every response carries the CORS headers boxo's gateway sends (content,
// errors, the fast path), and a preflight is answered 200 before any
// lookup: a page on another origin can use the gateway.
func TestCORS(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	fb.local = map[cid.Cid][]byte{b.Cid(): b.RawData()}
	root := b.Cid().String()
	other := cid.NewCidV1(cid.Raw, must(mh.Sum(b.RawData()[:3], mh.SHA2_256, -1))).String() // nowhere
	for name, rec := range map[string]*httptest.ResponseRecorder{
		"fast path":  get(t, gw, "GET", "/ipfs/"+root),
		"boxo":       get(t, gw, "GET", "/ipfs/"+root, "Accept", "application/vnd.ipld.raw"),
		"not found":  get(t, gw, "GET", "/ipfs/"+other),
		"bad CID":    get(t, gw, "GET", "/ipfs/nope"),
		"HEAD":       get(t, gw, "HEAD", "/ipfs/"+root),
		"wrong verb": get(t, gw, "POST", "/ipfs/"+root),
	} {
		h := rec.Header()
		if h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s (%d): Access-Control-Allow-Origin %q", name, rec.Code, h.Get("Access-Control-Allow-Origin"))
		}
		exposed := strings.Join(h.Values("Access-Control-Expose-Headers"), ",")
		for _, want := range []string{"Content-Range", "X-Ipfs-Path", "X-Ipfs-Roots", "Ipfs-Uri"} {
			if !strings.Contains(exposed, want) {
				t.Errorf("%s: %s not in Access-Control-Expose-Headers %q", name, want, exposed)
			}
		}
	}
	if rec := get(t, gw, "POST", "/ipfs/"+root); rec.Code != 405 || !strings.Contains(rec.Header().Get("Allow"), "OPTIONS") {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	located := countLocate(fb)
	for _, target := range []string{"/ipfs/" + root, "/ipfs/" + other + "/a/b"} {
		rec := get(t, gw, "OPTIONS", target,
			"Origin", "https://app.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "Range")
		h := rec.Header()
		if rec.Code != 200 {
			t.Errorf("preflight of %s: %d %s", target, rec.Code, rec.Body.String())
		}
		if h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(strings.Join(h.Values("Access-Control-Allow-Methods"), ","), "GET") ||
			!strings.Contains(strings.Join(h.Values("Access-Control-Allow-Headers"), ","), "Range") ||
			!strings.Contains(strings.Join(h.Values("Allow"), ","), "OPTIONS") {
			t.Errorf("preflight of %s: headers %v", target, h)
		}
	}
	if located.Load() != 0 {
		t.Errorf("a preflight looked content up %d times", located.Load())
	}
}

// Cache-Control: only-if-cached answers 412 at once when the block is not
// local (no Locate: no wait on the DHT) and serves it when it is.
func TestOnlyIfCached(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	root := b.Cid().String()
	missing := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte("not here"), mh.SHA2_256, -1))).String()
	located := countLocate(fb)
	for _, method := range []string{"GET", "HEAD"} {
		if rec := get(t, gw, method, "/ipfs/"+missing, "Cache-Control", "only-if-cached"); rec.Code != http.StatusPreconditionFailed {
			t.Errorf("%s of a missing block: %d, want 412", method, rec.Code)
		}
		if rec := get(t, gw, method, "/ipfs/"+missing+"/sub/path", "Cache-Control", "only-if-cached"); rec.Code != http.StatusPreconditionFailed {
			t.Errorf("%s of a path under a missing block: %d, want 412", method, rec.Code)
		}
		rec := get(t, gw, method, "/ipfs/"+root, "Cache-Control", "only-if-cached")
		if rec.Code != 200 {
			t.Errorf("%s of a local block: %d, want 200", method, rec.Code)
		}
		if method == "GET" && !bytes.Equal(rec.Body.Bytes(), b.RawData()) {
			t.Errorf("GET of a local block: body %q", rec.Body.String())
		}
	}
	if located.Load() != 0 {
		t.Errorf("only-if-cached looked content up in the network %d times", located.Load())
	}
	// Without the header, the missing block is looked for.
	if rec := get(t, gw, "GET", "/ipfs/"+missing); rec.Code != 404 || located.Load() != 1 {
		t.Errorf("plain GET of a missing block: %d after %d lookups", rec.Code, located.Load())
	}
}

// An identity CID carries its block: it is served from the CID, with no
// lookup, and an oversized one is refused.
func TestIdentityCID(t *testing.T) {
	gw, fb, _ := newFake(t, Config{})
	located := countLocate(fb)
	data := []byte("hello\n")
	id := cid.NewCidV1(cid.Raw, must(mh.Sum(data, mh.IDENTITY, -1)))
	if id.String() != "bafkqabtimvwgy3yk" {
		t.Fatalf("identity CID %s", id)
	}
	for _, tc := range [][]string{nil, {"Accept", "application/vnd.ipld.raw"}, {"Accept", "application/vnd.ipld.car"}} {
		rec := get(t, gw, "GET", "/ipfs/"+id.String(), tc...)
		if rec.Code != 200 {
			t.Fatalf("%v: %d %s", tc, rec.Code, rec.Body.String())
		}
		if tc == nil && !bytes.Equal(rec.Body.Bytes(), data) {
			t.Errorf("body %q", rec.Body.String())
		}
		if !bytes.Contains(rec.Body.Bytes(), data) {
			t.Errorf("%v: body %q lacks the data", tc, rec.Body.String())
		}
	}
	if located.Load() != 0 {
		t.Errorf("an identity CID was looked up %d times", located.Load())
	}
	huge := cid.NewCidV1(cid.Raw, must(mh.Sum(bytes.Repeat([]byte("x"), 4096), mh.IDENTITY, -1)))
	if rec := get(t, gw, "GET", "/ipfs/"+huge.String()); rec.Code != 400 {
		t.Errorf("oversized identity CID: %d", rec.Code)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// X-Ipfs-Path names the content path, on boxo's responses and the fast
// path's alike.
func TestXIpfsPath(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	root := b.Cid().String()
	if rec := get(t, gw, "GET", "/ipfs/"+root); rec.Header().Get("X-Ipfs-Path") != "/ipfs/"+root {
		t.Errorf("boxo: X-Ipfs-Path %q", rec.Header().Get("X-Ipfs-Path"))
	}
	fb.local = map[cid.Cid][]byte{b.Cid(): b.RawData()}
	before := counter(t, gw, "ore_gateway_local_responses_total")
	for _, hdr := range [][]string{nil, {"If-None-Match", `"` + root + `"`}} {
		if rec := get(t, gw, "GET", "/ipfs/"+root, hdr...); rec.Header().Get("X-Ipfs-Path") != "/ipfs/"+root {
			t.Errorf("fast path %v: %d, X-Ipfs-Path %q", hdr, rec.Code, rec.Header().Get("X-Ipfs-Path"))
		}
	}
	if n := counter(t, gw, "ore_gateway_local_responses_total") - before; n != 2 {
		t.Errorf("the fast path answered %v requests, want 2", n)
	}
}

func counter(t *testing.T, gw *Gateway, name string) float64 {
	t.Helper()
	mfs, err := gw.cfg.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A subdomain gateway: /ipfs/{cid} on a configured domain redirects to
// {cidv1b32}.ipfs.{domain}, which serves the content; other hosts are path
// gateways; localhost is one by default.
func TestSubdomainGateway(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	fb.local = map[cid.Cid][]byte{b.Cid(): b.RawData()}
	v1 := b.Cid().String()
	v0 := cid.NewCidV0(must(mh.Sum(b.RawData(), mh.SHA2_256, -1))) // same multihash, dag-pb codec
	v0b32 := cid.NewCidV1(cid.DagProtobuf, v0.Hash()).String()
	for _, tc := range []struct{ host, target, want string }{
		{"localhost:8080", "/ipfs/" + v1, "http://" + v1 + ".ipfs.localhost:8080/"},
		{"localhost:8080", "/ipfs/" + v1 + "/a/b?x=1", "http://" + v1 + ".ipfs.localhost:8080/a/b?x=1"},
		{"localhost", "/ipfs/" + v0.String(), "http://" + v0b32 + ".ipfs.localhost/"},
	} {
		rec := hostGet(t, gw, "GET", tc.host, tc.target)
		if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != tc.want {
			t.Errorf("%s%s: %d to %q, want 301 to %q", tc.host, tc.target, rec.Code, rec.Header().Get("Location"), tc.want)
		}
		if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s%s: no CORS headers on the redirect", tc.host, tc.target)
		}
	}
	for _, host := range []string{v1 + ".ipfs.localhost:8080", v1 + ".ipfs.localhost"} {
		rec := hostGet(t, gw, "GET", host, "/")
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), b.RawData()) {
			t.Errorf("%s/: %d %q", host, rec.Code, rec.Body.String())
		}
		if rec := hostGet(t, gw, "GET", host, "/healthz"); rec.Body.String() == "ok\n" {
			t.Errorf("%s/healthz answered the gateway's health: a site's path is its own", host)
		}
	}
	for _, host := range []string{"127.0.0.1:8080", "[::1]:8080", "example.com"} {
		if rec := hostGet(t, gw, "GET", host, "/ipfs/"+v1); rec.Code != 200 {
			t.Errorf("path gateway %s: %d", host, rec.Code)
		}
	}
	if rec := hostGet(t, gw, "GET", "localhost:8080", "/healthz"); rec.Code != 200 {
		t.Errorf("localhost/healthz: %d", rec.Code)
	}

	// Named domains replace localhost.
	gw2, fb2, _ := newFake(t, Config{Domains: []string{"gw.example.net"}})
	fb2.local = fb.local
	if rec := hostGet(t, gw2, "GET", "gw.example.net", "/ipfs/"+v1); rec.Code != 301 || rec.Header().Get("Location") != "http://"+v1+".ipfs.gw.example.net/" {
		t.Errorf("gw.example.net: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := hostGet(t, gw2, "GET", "localhost:8080", "/ipfs/"+v1); rec.Code != 200 {
		t.Errorf("localhost without subdomains: %d", rec.Code)
	}
	if rec := hostGet(t, gw2, "GET", v1+".ipfs.gw.example.net", "/", "X-Forwarded-Proto", "https"); rec.Code != 200 {
		t.Errorf("subdomain of gw.example.net: %d", rec.Code)
	}
	for _, bad := range []string{"127.0.0.1", "::1", "gw.example.net:8080", "", "*.x"} {
		reg := prometheus.NewRegistry()
		if _, err := New(Config{Domains: []string{bad}, Registry: reg}, fb2); err == nil {
			t.Errorf("domain %q accepted", bad)
		}
	}
}

// The trustless formats and their parameters pass through to boxo's
// handler: ?format= and Accept for raw and CAR, CAR order and dups.
func TestTrustlessParameters(t *testing.T) {
	gw, _, b := newFake(t, Config{})
	root := "/ipfs/" + b.Cid().String()
	for _, tc := range []struct {
		target string
		hdr    []string
		code   int
		ctype  string
	}{
		{root + "?format=raw", nil, 200, "application/vnd.ipld.raw"},
		{root, []string{"Accept", "application/vnd.ipld.raw"}, 200, "application/vnd.ipld.raw"},
		{root + "?format=car", nil, 200, "application/vnd.ipld.car; version=1; order=dfs; dups=n"},
		{root, []string{"Accept", "application/vnd.ipld.car; version=1; order=dfs; dups=y"}, 200, "application/vnd.ipld.car; version=1; order=dfs; dups=y"},
		{root + "?format=car&dag-scope=block&car-dups=y", nil, 200, "application/vnd.ipld.car; version=1; order=dfs; dups=y"},
		{root, []string{"Accept", "application/vnd.ipld.car; order=nonsense"}, 400, ""},
	} {
		rec := get(t, gw, "GET", tc.target, tc.hdr...)
		if rec.Code != tc.code || (tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype) {
			t.Errorf("%s %v: %d %q, want %d %q", tc.target, tc.hdr, rec.Code, rec.Header().Get("Content-Type"), tc.code, tc.ctype)
		}
	}
}

// The compact denylist format: CID, CID/*, /ipns/ names, legacy and
// modern double hashes, allow rules, a header and comments; the gateway
// answers 410 for what it blocks, by any CID form of the multihash.
func TestDenylist(t *testing.T) {
	blocked := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte("blocked"), mh.SHA2_256, -1)))
	wild := cid.NewCidV1(cid.DagProtobuf, must(mh.Sum([]byte("wild"), mh.SHA2_256, -1)))
	legacy := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte("legacy"), mh.SHA2_256, -1)))
	modern := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte("modern"), mh.SHA2_256, -1)))
	excepted := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte("excepted"), mh.SHA2_256, -1)))
	fine := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte("fine"), mh.SHA2_256, -1)))
	lh := sha256.Sum256([]byte(legacy.String() + "/"))
	mhash := must(mh.Sum([]byte(modern.Hash().B58String()), mh.SHA2_256, -1))
	list := "version: 1\nname: test\n---\n# comment\n" +
		"/ipfs/" + blocked.String() + "\n" +
		"/ipfs/" + wild.String() + "/* gateway_status:410\n" +
		"//" + hex.EncodeToString(lh[:]) + "\n" +
		"//" + mhash.B58String() + "\n" +
		"/ipfs/" + excepted.String() + "\n" +
		"!/ipfs/" + excepted.String() + "\n" +
		"/ipns/bad.example\n" +
		"/ipfs/" + fine.String() + "/some/path\n" +
		"nonsense\n"
	d, err := ReadDenylist(nil, strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	if d.Rules != 8 || d.Skipped != 1 {
		t.Errorf("%d rules, %d skipped; want 8 and 1", d.Rules, d.Skipped)
	}
	v0 := cid.NewCidV0(wild.Hash())
	for c, want := range map[cid.Cid]bool{blocked: true, wild: true, v0: true, legacy: true, modern: true,
		excepted: false, fine: false, cid.NewCidV1(cid.DagCBOR, blocked.Hash()): true} {
		if d.Denied(c) != want {
			t.Errorf("Denied(%s) = %v, want %v", c, !want, want)
		}
	}
	if !d.DeniedPath(fine, "some/path") || d.DeniedPath(fine, "some") || d.DeniedPath(fine, "") {
		t.Error("a path rule blocks its path alone")
	}
	if !d.DeniedName("bad.example") || d.DeniedName("good.example") {
		t.Error("DNSLink name rules")
	}
	gw, _, b := newFake(t, Config{Denylist: d})
	for _, c := range []cid.Cid{blocked, v0, legacy} {
		if rec := get(t, gw, "GET", "/ipfs/"+c.String()+"/any/path"); rec.Code != http.StatusGone {
			t.Errorf("%s: %d, want 410", c, rec.Code)
		}
	}
	if rec := get(t, gw, "GET", "/ipfs/"+b.Cid().String()); rec.Code != 200 {
		t.Errorf("unlisted content: %d", rec.Code)
	}
	// A header without a "---" is read as rules: the list above without
	// its header still blocks.
	d2, err := ReadDenylist(nil, strings.NewReader("/ipfs/"+blocked.String()+"\n"))
	if err != nil || !d2.Denied(blocked) {
		t.Errorf("a list without header: %v", err)
	}
}

// An unknown ?format= answers 400 saying which formats there are (boxo
// would answer the default response, which a client asking for a format
// would take for the one it asked for), on every path to content; the
// known ones pass.
func TestUnknownFormat(t *testing.T) {
	gw, _, b := newFake(t, Config{})
	root := b.Cid().String()
	for _, tc := range []struct {
		method, host, target string
		want                 int
	}{
		{"GET", "example.com", "/ipfs/" + root + "?format=nonsense", 400},
		{"HEAD", "example.com", "/ipfs/" + root + "?format=nonsense", 400},
		{"GET", "example.com", "/ipfs/" + root + "/?format=CAR", 400},
		{"GET", root + ".ipfs.localhost", "/?format=nonsense", 400},
		{"GET", "example.com", "/ipfs/" + root + "?format=raw", 200},
		{"GET", "example.com", "/ipfs/" + root + "?format=car", 200},
		{"GET", "example.com", "/ipfs/" + root + "?format=", 200},
		{"GET", root + ".ipfs.localhost", "/?format=raw", 200},
	} {
		rec := hostGet(t, gw, tc.method, tc.host, tc.target)
		if rec.Code != tc.want {
			t.Errorf("%s %s%s: %d, want %d (%s)", tc.method, tc.host, tc.target, rec.Code, tc.want, rec.Body.String())
		}
		if tc.want == 400 && (rec.Header().Get("Access-Control-Allow-Origin") != "*" || tc.method == "GET" && !strings.Contains(rec.Body.String(), "dag-json")) {
			t.Errorf("%s %s: the refusal lacks CORS or the list of formats: %v %q", tc.method, tc.target, rec.Header(), rec.Body.String())
		}
	}
}

// Path rules of the denylist: a path, every path under a prefix (PATH*
// and PATH/*), allow rules that except a path, percent-encoded paths,
// legacy double hashes of a path; and a listed CID met through a path
// (a blocked file in an open directory) answers 410 as well.
func TestDenylistPaths(t *testing.T) {
	ctx := context.Background()
	bstore := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	dag := merkledag.NewDAGService(blockservice.New(bstore, offline.Exchange(bstore)))
	file := func(s string) ipld.Node {
		f := merkledag.NodeWithData(ft.FilePBData([]byte(s), uint64(len(s))))
		if err := dag.Add(ctx, f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	dirOf := func(children map[string]ipld.Node) ipld.Node {
		dir, err := uio.NewDirectory(dag)
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range children {
			if err := dir.AddChild(ctx, name, c); err != nil {
				t.Fatal(err)
			}
		}
		nd, err := dir.GetNode()
		if err != nil {
			t.Fatal(err)
		}
		if err := dag.Add(ctx, nd); err != nil {
			t.Fatal(err)
		}
		return nd
	}
	bad := file("listed file")
	root := dirOf(map[string]ipld.Node{
		"ok.txt": file("ok"), "exact.txt": file("exact"), "exact.txt.bak": file("bak"),
		"secret":     dirOf(map[string]ipld.Node{"a.txt": file("a"), "b.txt": file("b")}),
		"open":       dirOf(map[string]ipld.Node{"bad.txt": bad, "good.txt": file("good")}),
		"with space": file("space"), "hashed.txt": file("hashed"),
	}).Cid()
	v1, _ := cid.NewCidV1(root.Type(), root.Hash()).StringOfBase(mbase.Base32)
	dh := sha256.Sum256([]byte(v1 + "/hashed.txt"))
	list := "/ipfs/" + root.String() + "/exact.txt\n" +
		"/ipfs/" + root.String() + "/secret/*\n" +
		"!/ipfs/" + root.String() + "/secret/b.txt\n" +
		"/ipfs/" + root.String() + "/with%20space\n" +
		"//" + hex.EncodeToString(dh[:]) + "\n" +
		"/ipfs/" + bad.Cid().String() + "\n"
	d, err := ReadDenylist(nil, strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{bs: blockservice.New(bstore, offline.Exchange(bstore))}
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Denylist: d, Registry: reg, Gatherer: reg}, fb)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]int{
		"ok.txt": 200, "exact.txt": 410, "exact.txt.bak": 200,
		"secret/a.txt": 410, "secret": 410, "secret/b.txt": 200,
		"with space": 410, "hashed.txt": 410,
		"open/bad.txt": 410, "open/good.txt": 200,
	} {
		rec := get(t, gw, "GET", "/ipfs/"+root.String()+"/"+strings.ReplaceAll(p, " ", "%20"))
		if rec.Code != want {
			t.Errorf("/ipfs/{root}/%s: %d, want %d (%s)", p, rec.Code, want, rec.Body.String())
		}
	}
	// The subdomain form of the same paths.
	b32, _ := cid.NewCidV1(root.Type(), root.Hash()).StringOfBase(mbase.Base32)
	if rec := hostGet(t, gw, "GET", b32+".ipfs.localhost", "/secret/a.txt"); rec.Code != 410 {
		t.Errorf("{root}.ipfs.localhost/secret/a.txt: %d, want 410", rec.Code)
	}
	if rec := get(t, gw, "GET", "/ipfs/"+bad.Cid().String()); rec.Code != 410 {
		t.Errorf("the listed file by its own CID: %d", rec.Code)
	}
}

// A TAR asked of a block that is not UnixFS (dag-cbor here) answers 406
// and names the formats that can carry it; boxo answers 500. A raw block
// is a file and its TAR holds it.
func TestTARNotUnixFS(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	doc, _ := blocks.NewBlockWithCid([]byte{0xa1, 0x61, 0x61, 0x01}, cid.NewCidV1(cid.DagCBOR, must(mh.Sum([]byte{0xa1, 0x61, 0x61, 0x01}, mh.SHA2_256, -1))))
	if err := fb.bs.Blockstore().Put(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
	for _, hdr := range [][]string{nil, {"Accept", "application/x-tar"}} {
		target := "/ipfs/" + doc.Cid().String()
		if hdr == nil {
			target += "?format=tar"
		}
		rec := get(t, gw, "GET", target, hdr...)
		if rec.Code != http.StatusNotAcceptable || !strings.Contains(rec.Body.String(), "?format=car") {
			t.Errorf("%s %v: %d %q, want 406 naming ?format=car", target, hdr, rec.Code, rec.Body.String())
		}
	}
	rec := get(t, gw, "GET", "/ipfs/"+b.Cid().String()+"?format=tar")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-tar" || !bytes.Contains(rec.Body.Bytes(), b.RawData()) {
		t.Errorf("TAR of a raw block: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}
