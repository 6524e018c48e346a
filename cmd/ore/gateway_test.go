package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orecdn/ore/node"
)

func TestCLIGatewayAndDag(t *testing.T) {
	a := startDaemon(t, initRepo(t, ""))
	gw := startBox(t, initRepo(t, a.addrs[0]), "gateway", "--listen", "127.0.0.1:0")
	if gw.gateway == "" {
		t.Fatal("ore gateway printed no gateway address")
	}
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	src := filepath.Join(t.TempDir(), "f.bin")
	_ = os.WriteFile(src, data, 0o644)
	code, out, errs := ore(t, "add", "-q", "--repo", a.repo, src)
	if code != 0 {
		t.Fatalf("add: %s", errs)
	}
	root := strings.TrimSpace(out)

	resp, err := http.Get(gw.gateway + "/ipfs/" + root)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("gateway: %d, %d bytes", resp.StatusCode, len(body))
	}

	// The gateway's metrics are on the daemon's API address, not on the
	// public gateway, unless --gateway-metrics.
	if code := getCode(t, gw.gateway+"/metrics"); code != 404 {
		t.Errorf("/metrics on the gateway: %d, want 404", code)
	}
	api, err := node.ReadAPIFile(gw.repo)
	if err != nil {
		t.Fatal(err)
	}
	token, err := node.ReadAPIToken(gw.repo)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, api+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token) // the API's metrics need its token
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("/metrics on the API: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	pub := startBox(t, initRepo(t, a.addrs[0]), "gateway", "--listen", "127.0.0.1:0", "--gateway-metrics")
	if code := getCode(t, pub.gateway+"/metrics"); code != 200 {
		t.Errorf("/metrics on a gateway run with --gateway-metrics: %d", code)
	}

	// dag export on one box, import on the other.
	var carBuf, errBuf bytes.Buffer
	if code := run(t.Context(), testEnv(&carBuf, &errBuf), []string{"dag", "export", "--repo", a.repo, root}); code != 0 {
		t.Fatalf("dag export: %s", errBuf.String())
	}
	carFile := filepath.Join(t.TempDir(), "f.car")
	_ = os.WriteFile(carFile, carBuf.Bytes(), 0o644)
	code, out, errs = ore(t, "dag", "import", "--repo", gw.repo, carFile)
	if code != 0 || !strings.Contains(out, "imported "+root) {
		t.Fatalf("dag import: %d %s %s", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.car")
	_ = os.WriteFile(bad, []byte("not a car"), 0o644)
	if code, _, errs := ore(t, "dag", "import", "--repo", gw.repo, bad); code == 0 || !strings.Contains(errs, "not a CAR") {
		t.Fatalf("bad CAR: %d %s", code, errs)
	}
}

func getCode(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
