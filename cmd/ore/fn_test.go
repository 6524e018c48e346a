package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

// ore fn register and ore fn run on a gateway box, then the same job
// through the gateway's URL: a redirect to the output, from the index
// the second time.
func TestCLIFunctionsAndGateway(t *testing.T) {
	gw := startBox(t, initRepo(t, ""), "gateway", "--listen", "127.0.0.1:0")
	zf, err := os.Open("../../compute/testdata/fn.wasm.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(zf)
	if err != nil {
		t.Fatal(err)
	}
	mod, _ := io.ReadAll(zr)
	zf.Close()
	dir := t.TempDir()
	modPath := filepath.Join(dir, "fn.wasm")
	_ = os.WriteFile(modPath, mod, 0o644)
	code, out, errs := ore(t, "fn", "register", "--repo", gw.repo, "--json", "--output", "1MiB", modPath)
	if code != 0 {
		t.Fatalf("fn register: %s", errs)
	}
	var parsed node.FunctionInfo
	if err := json.Unmarshal([]byte(out), &parsed); err != nil || !parsed.Fn.Defined() {
		t.Fatalf("fn register printed %q: %v", out, err)
	}
	info := struct{ Fn string }{parsed.Fn.String()}
	if code, _, errs := ore(t, "fn", "register", "--repo", gw.repo, filepath.Join("..", "..", "README.md")); code == 0 || !strings.Contains(errs, "bad module") {
		t.Fatalf("registering a README: %d %s", code, errs)
	}
	// A price registers on the ledger, which this box has none of: the
	// function is published and the command says why it is not registered.
	if code, _, errs := ore(t, "fn", "register", "--repo", gw.repo, "--price", "0.001", modPath); code == 0 || !strings.Contains(errs, "needs a ledger network") {
		t.Fatalf("fn register --price without a ledger: %d %s", code, errs)
	}
	in := filepath.Join(dir, "in.txt")
	_ = os.WriteFile(in, []byte("hello, ore\n"), 0o644)
	code, out, errs = ore(t, "add", "-q", "--repo", gw.repo, in)
	if code != 0 {
		t.Fatalf("add: %s", errs)
	}
	input := strings.TrimSpace(out)
	code, out, errs = ore(t, "fn", "run", "--repo", gw.repo, info.Fn, input, "--", "upper")
	if code != 0 || !strings.Contains(out, "run on this box") {
		t.Fatalf("fn run: %d %s %s", code, out, errs)
	}
	code, out, errs = ore(t, "fn", "run", "--repo", gw.repo, info.Fn, input, "--", "upper")
	if code != 0 || !strings.Contains(out, "cached") {
		t.Fatalf("fn run again: %d %s %s", code, out, errs)
	}
	if code, _, errs := ore(t, "fn", "run", "--repo", gw.repo, info.Fn, input, "--", "flood"); code == 0 || !strings.Contains(errs, "output size") {
		t.Fatalf("fn run flood: %d %s", code, errs)
	}

	url := gw.gateway + "/ipfs/" + input + "?" + gateway.FnParam + "=" + info.Fn + "&" + gateway.ArgParam + "=upper"
	resp, err := http.Get(url) // follows the redirect to the output
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, []byte("HELLO, ORE\n")) {
		t.Fatalf("through the gateway: %d %q", resp.StatusCode, body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get(gateway.CacheHeader) != "hit" {
		t.Fatalf("asked again: %d, %s %q", resp.StatusCode, gateway.CacheHeader, resp.Header.Get(gateway.CacheHeader))
	}
	resp, err = noFollow.Get(strings.Replace(url, "=upper", "=loop", 1))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get(gateway.LimitHeader) != "work" {
		t.Fatalf("a job over its work limit: %d %q", resp.StatusCode, msg)
	}
}
