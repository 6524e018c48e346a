package node_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

// selfSigned writes a certificate for localhost and 127.0.0.1 and its key
// as PEM files, and returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost", "*.ipfs.localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// A gateway with certificate files serves HTTPS (HTTP/2 too), and its
// subdomain redirects keep the https scheme; a missing key is a clear
// error at start.
func TestGatewayTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	nw, gw, _ := gatewayNet(t, gateway.Config{}, node.WithGatewayTLS(certFile, keyFile))
	ctx := testCtx(t)
	base := gw.GatewayURL()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("gateway URL %q", base)
	}
	src, _ := randomFile(t, 100<<10)
	res, err := nw.Nodes[0].AddPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/ipfs/" + res.Root.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(want) || resp.ProtoMajor != 2 {
		t.Fatalf("https GET: %d %s, %d bytes", resp.StatusCode, resp.Proto, len(body))
	}
	if _, err := http.Get("http://" + gw.GatewayAddr() + "/healthz"); err == nil {
		// Plain HTTP to a TLS port gets a 400 from net/http, not content.
		if r, _ := http.Get("http://" + gw.GatewayAddr() + "/ipfs/" + res.Root.String()); r != nil && r.StatusCode == 200 {
			t.Error("the TLS gateway served plain HTTP")
		}
	}
	_, port, _ := net.SplitHostPort(gw.GatewayAddr())
	req, _ := http.NewRequest("GET", base+"/ipfs/"+res.Root.String(), nil)
	req.Host = "localhost:" + port
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 301 || !strings.HasPrefix(loc, "https://"+res.Root.String()+".ipfs.localhost:") {
		t.Errorf("subdomain redirect over TLS: %d to %q", resp.StatusCode, loc)
	}

	if _, err := nw.Restart(ctx, 2, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0"),
		node.WithGatewayTLS(certFile, filepath.Join(t.TempDir(), "missing.pem"))); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("a missing key: %v", err)
	}
}
