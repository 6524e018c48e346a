package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeCert(t *testing.T, dir, cn string, mod time.Time) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	c, k := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	_ = os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.Chtimes(c, mod, mod)
	return c, k
}

// A renewed certificate is served after the next check; a broken one is
// not, the old one stays.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	c, k := writeCert(t, dir, "first", time.Now().Add(-time.Hour))
	r, err := newCertReloader(c, k)
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		crt, _ := r.getCertificate(nil)
		x, _ := x509.ParseCertificate(crt.Certificate[0])
		return x.Subject.CommonName
	}
	writeCert(t, dir, "second", time.Now())
	if cn() != "first" {
		t.Fatal("reloaded before the minute's check")
	}
	r.checked = time.Now().Add(-2 * time.Minute)
	if got := cn(); got != "second" {
		t.Fatalf("after the check: %q", got)
	}
	_ = os.WriteFile(c, []byte("half-written"), 0o644)
	_ = os.Chtimes(c, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	r.checked = time.Now().Add(-2 * time.Minute)
	if got := cn(); got != "second" {
		t.Fatalf("a broken renewal replaced the certificate: %q", got)
	}
}
