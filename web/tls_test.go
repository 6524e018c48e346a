package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// selfSigned is a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ore box"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// Over TLS the session cookie is Secure and a change must come from the
// https origin.
func TestTLSCookieIsSecure(t *testing.T) {
	cert, pool := selfSigned(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t)
	s, err := New(Config{Node: n, Listener: l, TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		SetDataCap: n.SetDataCap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !strings.HasPrefix(s.BaseURL(), "https://") {
		t.Fatalf("base URL %s over TLS", s.BaseURL())
	}
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	resp, _ := get(t, c, s.LoginURL())
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Fatalf("login over TLS: %s, cookie %q", resp.Status, resp.Header.Get("Set-Cookie"))
	}
	_, page := get(t, c, s.BaseURL()+"/")
	i := strings.Index(page, `data-csrf="`)
	if i < 0 {
		t.Fatal("no CSRF token on the page")
	}
	csrf := page[i+len(`data-csrf="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	httpOrigin := "http://" + strings.TrimPrefix(s.BaseURL(), "https://")
	if resp := post(t, c, s.BaseURL()+"/datacap", url.Values{"cap": {"1GiB"}, csrfField: {csrf}}, "Origin", httpOrigin); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an http Origin on an https dashboard: %s", resp.Status)
	}
	if resp := post(t, c, s.BaseURL()+"/datacap", url.Values{"cap": {"1GiB"}, csrfField: {csrf}}, "Origin", s.BaseURL()); resp.StatusCode != http.StatusSeeOther || n.DataCap().Cap != 1<<30 {
		t.Fatalf("a change from the https origin: %s, cap %d", resp.Status, n.DataCap().Cap)
	}
}
