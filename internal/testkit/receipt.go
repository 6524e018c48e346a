package testkit

import (
	"testing"

	"github.com/orecdn/ore/pod"
)

// Signed fills r's version and parties, signs it as the client and then
// as the server, and returns it. The caller sets everything else (network,
// epoch, root, seq, bytes, blocks) first.
func Signed(t testing.TB, r *pod.Receipt, srv, cli Party) *pod.Receipt {
	t.Helper()
	if r.Version == 0 {
		r.Version = pod.Version
	}
	r.Server, r.Client = srv.ID, cli.ID
	if err := r.SignClient(cli.Key); err != nil {
		t.Fatal(err)
	}
	if err := r.SignServer(srv.Key); err != nil {
		t.Fatal(err)
	}
	return r
}
