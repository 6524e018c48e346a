package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orecdn/ore/node"
)

// apiCall sends one request to a daemon's control API: token "" sends no
// Authorization header, host "" keeps the URL's. It returns the status and
// the body.
func apiCall(t *testing.T, base, method, path, token, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIRequiresToken: a real daemon refuses requests without the repo's
// token or with a wrong one (401, saying where the token lives), refuses a
// foreign Host even with the token (403), refuses GET on every route that
// changes the box (405), and the CLI, which reads the token, still works.
func TestAPIRequiresToken(t *testing.T) {
	repo := initRepo(t, "")
	tokenPath := filepath.Join(repo, node.APITokenFile)
	fi, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatalf("ore init wrote no control API token: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600: other users could read it", tokenPath, fi.Mode().Perm())
	}
	startDaemon(t, repo)
	base, err := node.ReadAPIFile(repo)
	if err != nil {
		t.Fatal(err)
	}
	token, err := node.ReadAPIToken(repo)
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", len(token))
	if wrong == token {
		wrong = strings.Repeat("1", len(token))
	}

	for _, path := range []string{apiStatus, apiCat + "?cid=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", apiLedgerState, apiMetrics} {
		for _, tok := range []string{"", wrong, token[:len(token)-1]} {
			code, body := apiCall(t, base, http.MethodGet, path, tok, "")
			if code != http.StatusUnauthorized || !strings.Contains(body, tokenPath) {
				t.Errorf("GET %s with token %q: %d %q, want 401 naming %s", path, tok, code, body, tokenPath)
			}
		}
	}
	if code, body := apiCall(t, base, http.MethodGet, apiStatus, token, ""); code != http.StatusOK || !strings.Contains(body, `"peer"`) {
		t.Errorf("GET status with the token: %d %q", code, body)
	}
	if code, body := apiCall(t, base, http.MethodGet, apiMetrics, token, ""); code != http.StatusOK || !strings.Contains(body, "# TYPE") {
		t.Errorf("GET /metrics with the token: %d %q", code, body)
	}

	// DNS rebinding: a page on a name that resolves to 127.0.0.1 sends its
	// own name as Host.
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1:1", "127.0.0.2:" + port} {
		if code, body := apiCall(t, base, http.MethodGet, apiStatus, token, host); code != http.StatusForbidden {
			t.Errorf("GET status with Host %q and the token: %d %q, want 403", host, code, body)
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LocalHost:" + port, "[::1]:" + port} {
		if code, body := apiCall(t, base, http.MethodGet, apiStatus, token, host); code != http.StatusOK {
			t.Errorf("GET status with Host %q and the token: %d %q, want 200", host, code, body)
		}
	}

	// Every route that stores, fetches, imports or signs is POST only.
	for _, path := range []string{apiAdd, apiFetch, apiDagImport, apiDagExport, apiLedgerTx} {
		if code, body := apiCall(t, base, http.MethodGet, path+"?cid=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", token, ""); code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s with the token: %d %q, want 405", path, code, body)
		}
	}

	// The CLI reads the token from the repo.
	src := writeTemp(t, "hello.txt", []byte("hello, ore"))
	root := addCLI(t, repo, src)
	if code, out, errs := ore(t, "status", "--repo", repo); code != 0 || !strings.Contains(out, root) {
		t.Fatalf("ore status: exit %d %q %q", code, out, errs)
	}
	if got := getCLI(t, repo, root); string(got) != "hello, ore" {
		t.Fatalf("ore get: %q", got)
	}

	// A CLI that cannot read the token says where it lives.
	if err := os.Remove(tokenPath); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := ore(t, "status", "--repo", repo); code == 0 || !strings.Contains(errs, tokenPath) {
		t.Errorf("ore status without the token file: exit %d %q", code, errs)
	}
}

// TestDaemonCreatesTokenForOldRepo: a repo made before the API required a
// token gets one (mode 0600) when its daemon starts, and the CLI works.
func TestDaemonCreatesTokenForOldRepo(t *testing.T) {
	repo := initRepo(t, "")
	tokenPath := filepath.Join(repo, node.APITokenFile)
	if err := os.Remove(tokenPath); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, repo)
	fi, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatalf("the daemon wrote no token for an old repo: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", tokenPath, fi.Mode().Perm())
	}
	if code, out, errs := ore(t, "status", "--repo", repo); code != 0 || !strings.Contains(out, "peer") {
		t.Fatalf("ore status on an old repo: exit %d %q %q", code, out, errs)
	}
}

// TestAPIGuard checks the guards alone, in front of a handler that answers
// 200: the Host names that are the API's own, the token's scheme, and
// browsers.
func TestAPIGuard(t *testing.T) {
	const token = "5e1f"
	srv := httptest.NewUnstartedServer(nil) // its listener's address goes into the guard
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := apiGuard{token: token, tokenPath: "/repo/api.token", hosts: apiHosts(srv.Listener.Addr(), "localhost:4501")}
	srv.Config.Handler = g.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Start()
	defer srv.Close()

	for _, tc := range []struct {
		name   string
		host   string
		header map[string]string
		want   int
	}{
		{"the token", "", map[string]string{"Authorization": "Bearer " + token}, 200},
		{"scheme in lower case", "", map[string]string{"Authorization": "bearer " + token}, 200},
		{"configured address", "localhost:4501", map[string]string{"Authorization": "Bearer " + token}, 200},
		{"[::1]", "[::1]:" + port, map[string]string{"Authorization": "Bearer " + token}, 200},
		{"no header", "", nil, 401},
		{"basic scheme", "", map[string]string{"Authorization": "Basic " + token}, 401},
		{"bare token", "", map[string]string{"Authorization": token}, 401},
		{"token with a suffix", "", map[string]string{"Authorization": "Bearer " + token + "0"}, 401},
		{"foreign host", "evil.example:" + port, map[string]string{"Authorization": "Bearer " + token}, 403},
		{"foreign host, no token", "evil.example:" + port, nil, 403},
		{"::1 without brackets", "::1:" + port, map[string]string{"Authorization": "Bearer " + token}, 403},
		{"browser", "", map[string]string{"Authorization": "Bearer " + token, "Origin": "http://127.0.0.1:" + port}, 403},
		{"fetch metadata", "", map[string]string{"Authorization": "Bearer " + token, "Sec-Fetch-Site": "same-origin"}, 403},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x", nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
