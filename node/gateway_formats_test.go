package node_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange/offline"
	boxogw "github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

// The responses no other test compares: a UnixFS directory (and a path
// in it, and a file) as a TAR by ?format=tar and by Accept:
// application/x-tar, and dag-json, dag-cbor, json and cbor by ?format=
// (including the conversions between dag-json and dag-cbor, and dag-pb
// as either), GET and HEAD. The gateway fetches the content from another
// box; each answer is then compared with what boxo's own handler answers
// over the gateway's store (offline, with the gateway's boxo
// configuration and headers), and the main ones with the path and
// trustless gateway specs' tables.
func TestGatewayFormatsMatchBoxo(t *testing.T) {
	nw, gw, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	site := t.TempDir()
	files := map[string][]byte{
		"index.html":    []byte("<html><body>ore site</body></html>"),
		"css/a.css":     []byte("body{}"),
		"css/deep/b.js": []byte("console.log(1)\n"),
		"big.bin":       bytes.Repeat([]byte("0123456789abcdef"), 40_000), // several leaves
	}
	for name, data := range files {
		p := filepath.Join(site, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := nw.Nodes[0].AddPath(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	dir := res.Root.String()
	d := newIPLDDAG(t)
	if _, err := nw.Nodes[0].ImportCAR(ctx, bytes.NewReader(d.car(t))); err != nil {
		t.Fatal(err)
	}
	root, doc := d.root.Cid().String(), d.linked["doc"].Cid().String()
	plainJSON, plainCBOR := d.linked["json"].Cid().String(), d.linked["cbor"].Cid().String()

	type request struct {
		target string
		hdr    []string
	}
	var reqs []request
	for _, target := range []string{
		// TAR of a directory, of a directory in it, of a file.
		"/ipfs/" + dir + "?format=tar",
		"/ipfs/" + dir + "/css?format=tar",
		"/ipfs/" + dir + "/big.bin?format=tar",
		// Each codec as itself, by ?format=.
		"/ipfs/" + root + "?format=dag-json",
		"/ipfs/" + doc + "?format=dag-cbor",
		"/ipfs/" + plainJSON + "?format=json",
		"/ipfs/" + plainCBOR + "?format=cbor",
		// Conversions, and the ones the specs do not define.
		"/ipfs/" + root + "?format=dag-cbor",
		"/ipfs/" + doc + "?format=dag-json",
		"/ipfs/" + dir + "?format=dag-json",
		"/ipfs/" + dir + "?format=dag-cbor",
		"/ipfs/" + plainJSON + "?format=dag-json",
		"/ipfs/" + plainCBOR + "?format=dag-cbor",
		"/ipfs/" + plainJSON + "?format=cbor",
		"/ipfs/" + doc + "?format=json",
		// A TAR of what is not UnixFS: 406 (boxo: 500); of a raw leaf
		// reached through a dag-json link: the leaf as a file.
		"/ipfs/" + root + "?format=tar",
		"/ipfs/" + root + "/doc?format=tar",
		"/ipfs/" + root + "/leaf?format=tar",
		// A path through IPLD links, asked by ?format=.
		"/ipfs/" + root + "/doc?format=dag-json",
	} {
		reqs = append(reqs, request{target, nil})
	}
	reqs = append(reqs,
		request{"/ipfs/" + dir, []string{"Accept", "application/x-tar"}},
		request{"/ipfs/" + dir + "/css/deep", []string{"Accept", "application/x-tar"}},
		// ?format= wins over Accept, as the specs say.
		request{"/ipfs/" + doc + "?format=dag-cbor", []string{"Accept", "application/vnd.ipld.dag-json"}},
	)

	type answer struct {
		status int
		header http.Header
		body   []byte
	}
	ask := func(h http.Handler, method string, rq request) answer {
		req := httptest.NewRequest(method, base+rq.target, nil)
		for i := 0; i+1 < len(rq.hdr); i += 2 {
			req.Header.Set(rq.hdr[i], rq.hdr[i+1])
		}
		if h == nil {
			// Ore's gateway, over HTTP.
			req.RequestURI = ""
			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return answer{resp.StatusCode, resp.Header, body}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		return answer{rec.Code, rec.Result().Header, rec.Body.Bytes()}
	}
	ore := map[string]answer{}
	for _, method := range []string{"GET", "HEAD"} {
		for _, rq := range reqs {
			ore[fmt.Sprint(method, " ", rq.target, " ", rq.hdr)] = ask(nil, method, rq)
		}
	}

	// What the specs' tables say of the main responses.
	for _, tc := range []struct {
		target, ctype, disposition string
		body                       []byte // nil: a TAR, checked below
	}{
		{"/ipfs/" + dir + "?format=tar", "application/x-tar", "attachment", nil},
		{"/ipfs/" + root + "?format=dag-json", "application/vnd.ipld.dag-json", "inline", d.root.RawData()},
		{"/ipfs/" + doc + "?format=dag-cbor", "application/vnd.ipld.dag-cbor", "attachment", d.linked["doc"].RawData()},
		{"/ipfs/" + plainJSON + "?format=json", "application/json", "inline", d.linked["json"].RawData()},
		{"/ipfs/" + plainCBOR + "?format=cbor", "application/cbor", "attachment", d.linked["cbor"].RawData()},
	} {
		// A JSON document is shown (inline), a binary one saved
		// (attachment), under the name {cid}.{json,cbor,tar}.
		c, _, _ := strings.Cut(strings.TrimPrefix(tc.target, "/ipfs/"), "?")
		ext := map[string]string{"application/x-tar": ".tar", "application/vnd.ipld.dag-json": ".json",
			"application/json": ".json", "application/vnd.ipld.dag-cbor": ".cbor", "application/cbor": ".cbor"}[tc.ctype]
		tc.disposition += fmt.Sprintf(`; filename="%s%s"; filename*=UTF-8''%[1]s%[2]s`, c, ext)
		a := ore[fmt.Sprint("GET ", tc.target, " ", []string(nil))]
		if a.status != 200 || a.header.Get("Content-Type") != tc.ctype || a.header.Get("Content-Disposition") != tc.disposition {
			t.Errorf("%s: %d, Content-Type %q, Content-Disposition %q; want 200, %q, %q",
				tc.target, a.status, a.header.Get("Content-Type"), a.header.Get("Content-Disposition"), tc.ctype, tc.disposition)
		}
		if tc.body != nil && !bytes.Equal(a.body, tc.body) {
			t.Errorf("%s: body %q, want the block %q", tc.target, a.body, tc.body)
		}
	}
	for _, tc := range []struct {
		key  string
		top  string // the TAR's top entry: the CID the path reaches
		want map[string][]byte
	}{
		{fmt.Sprint("GET /ipfs/", dir, "?format=tar ", []string(nil)), dir, files},
		{fmt.Sprint("GET /ipfs/", dir, " ", []string{"Accept", "application/x-tar"}), dir, files},
		{fmt.Sprint("GET /ipfs/", dir, "/css?format=tar ", []string(nil)), cidAt(t, gw, dir+"/css"),
			map[string][]byte{"a.css": files["css/a.css"], "deep/b.js": files["css/deep/b.js"]}},
		{fmt.Sprint("GET /ipfs/", dir, "/big.bin?format=tar ", []string(nil)), cidAt(t, gw, dir+"/big.bin"),
			map[string][]byte{"": files["big.bin"]}},
	} {
		key, want := tc.key, tc.want
		a := ore[key]
		if a.status != 200 || a.header.Get("Content-Type") != "application/x-tar" {
			t.Errorf("%s: %d %q", key, a.status, a.header.Get("Content-Type"))
			continue
		}
		top, got, err := untar(a.body)
		if err == nil && top != tc.top {
			err = fmt.Errorf("the top entry is %q, want %s", top, tc.top)
		}
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("%s: files %v, want %v", key, names(got), names(want))
		}
		for name, data := range want {
			if !bytes.Equal(got[name], data) {
				t.Errorf("%s: %s has %d bytes, want %d", key, name, len(got[name]), len(data))
			}
		}
	}

	// boxo's handler over the same blocks, configured as the gateway
	// configures it (path requests: no subdomain or DNSLink handling).
	bsvc := blockservice.New(gw.Store(), offline.Exchange(gw.Store()))
	bb, err := boxogw.NewBlocksBackend(bsvc)
	if err != nil {
		t.Fatal(err)
	}
	boxo := boxogw.NewHeaders(nil).WithDeprecatedXIpfsPath().ApplyCors().Wrap(boxogw.NewHandler(boxogw.Config{
		DeserializedResponses: true, NoDNSLink: true, DisableHTMLErrors: true, DeprecatedXIpfsPath: true,
	}, bb))
	tarDeviations := 0
	for _, method := range []string{"GET", "HEAD"} {
		for _, rq := range reqs {
			k := fmt.Sprint(method, " ", rq.target, " ", rq.hdr)
			got, want := ore[k], ask(boxo, method, rq)
			if method == "HEAD" {
				want.body = nil // net/http sends no body to a HEAD
			}
			if strings.Contains(rq.target, "format=tar") && want.status == 500 &&
				(strings.HasPrefix(rq.target, "/ipfs/"+root) && !strings.Contains(rq.target, "/leaf")) {
				// A TAR of a dag-json or dag-cbor block: boxo fails with
				// a 500, ore answers 406 and names the formats that can.
				if got.status != http.StatusNotAcceptable || method == "GET" && !bytes.Contains(got.body, []byte("?format=car")) {
					t.Errorf("%s: ore %d %q, want 406 naming ?format=car", k, got.status, got.body)
				}
				tarDeviations++
				continue
			}
			if want.header.Get("Content-Type") == "application/x-tar" && want.status == 200 && got.status == 200 {
				g, gerr := tarEntries(got.body)
				w, werr := tarEntries(want.body)
				if gerr != nil || werr != nil || g != w {
					t.Errorf("%s: ore's TAR (%v):\n%s\nboxo's (%v):\n%s", k, gerr, g, werr, w)
				}
				got.body, want.body = nil, nil
			}
			if got.status != want.status || !bytes.Equal(got.body, want.body) {
				t.Errorf("%s: ore %d with %d bytes, boxo %d with %d bytes (%.200q)", k, got.status, len(got.body), want.status, len(want.body), want.body)
				continue
			}
			for h := range want.header {
				if h != "Date" && got.header.Get(h) != want.header.Get(h) {
					t.Errorf("%s: %s is %q from ore, %q from boxo", k, h, got.header.Get(h), want.header.Get(h))
				}
			}
			for h := range got.header {
				if h != "Date" && h != "Content-Length" && want.header.Get(h) == "" {
					t.Errorf("%s: ore sends %s: %q, boxo does not", k, h, got.header.Get(h))
				}
			}
		}
	}
	if tarDeviations != 4 { // root and root/doc, GET and HEAD
		t.Errorf("%d TARs of non-UnixFS blocks met, want 4: boxo no longer fails them with a 500?", tarDeviations)
	}
}

func names(m map[string][]byte) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// untar returns the name of a TAR's first entry and its regular files by
// their names under that entry ("" for the entry itself).
func untar(b []byte) (top string, files map[string][]byte, err error) {
	files = map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return top, files, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("the TAR after %v: %w", names(files), err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if top == "" {
			top = name
		}
		rel, ok := strings.CutPrefix(name, top)
		if !ok || rel != "" && rel[0] != '/' {
			return "", nil, fmt.Errorf("entry %q is not under the first one, %q", h.Name, top)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return "", nil, err
		}
		files[strings.TrimPrefix(rel, "/")] = data
	}
}

// tarEntries lists a TAR's entries with everything but their times, which
// boxo sets to the time of the response when UnixFS records none.
func tarEntries(b []byte) (string, error) {
	var out strings.Builder
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out.String(), nil
		}
		if err != nil {
			return "", err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "%q %c %o %d %d/%d %q %x\n", h.Name, h.Typeflag, h.Mode, h.Size, h.Uid, h.Gid, h.Linkname, sum.Sum(nil))
	}
}

// cidAt follows a UnixFS path (root/name/...) through the dag-pb links in
// n's store and returns the CID it reaches.
func cidAt(t *testing.T, n *node.Node, p string) string {
	t.Helper()
	segs := strings.Split(p, "/")
	c, err := cid.Decode(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range segs[1:] {
		b, err := n.Store().Get(testCtx(t), c)
		if err != nil {
			t.Fatal(err)
		}
		nd, err := merkledag.DecodeProtobuf(b.RawData())
		if err != nil {
			t.Fatal(err)
		}
		l, _, err := nd.ResolveLink([]string{name})
		if err != nil {
			t.Fatalf("%s in %s: %v", name, c, err)
		}
		c = l.Cid
	}
	return c.String()
}
