package testkit

import (
	"testing"

	"github.com/orecdn/ore/pod"
)

// Signed signs r as cli and then as srv, and returns it. Where r names no
// version, server or client it gets pod.Version, srv and cli; the caller
// sets everything else (network, epoch, root, seq, bytes, blocks) first. A
// receipt that names other parties than the signers is a forgery a test
// can make this way.
func Signed(t testing.TB, r *pod.Receipt, srv, cli Party) *pod.Receipt {
	t.Helper()
	if r.Version == 0 {
		r.Version = pod.Version
	}
	if r.Server == "" {
		r.Server = srv.ID
	}
	if r.Client == "" {
		r.Client = cli.ID
	}
	if err := r.SignClient(cli.Key); err != nil {
		t.Fatal(err)
	}
	if err := r.SignServer(srv.Key); err != nil {
		t.Fatal(err)
	}
	return r
}
