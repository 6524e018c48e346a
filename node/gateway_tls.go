package node

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certReloader serves the gateway's TLS certificate from files, read again
// when they change (a renewal by certbot or an ACME client replaces them):
// the files are looked at no more than once a minute, on a handshake.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	fi, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("node: gateway TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("node: gateway TLS certificate %s with key %s (PEM files, the key unencrypted): %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.modTime, r.checked = &cert, fi.ModTime(), time.Now()
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= time.Minute {
		r.checked = time.Now()
		if fi, err := os.Stat(r.certFile); err == nil && !fi.ModTime().Equal(r.modTime) {
			// A half-written renewal fails to load: keep serving the old
			// certificate and try again at the next check.
			_ = r.load()
		}
	}
	return r.cert, nil
}

// gatewayTLS is the gateway's TLS configuration (nil: plain HTTP).
func (n *Node) gatewayTLS() (*tls.Config, error) {
	if n.cfg.GatewayTLSCert == "" && n.cfg.GatewayTLSKey == "" {
		return nil, nil
	}
	if n.cfg.GatewayTLSCert == "" || n.cfg.GatewayTLSKey == "" {
		return nil, fmt.Errorf("node: gateway TLS needs both a certificate and a key file")
	}
	r, err := newCertReloader(n.cfg.GatewayTLSCert, n.cfg.GatewayTLSKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{GetCertificate: r.getCertificate, MinVersion: tls.VersionTLS12}, nil
}
