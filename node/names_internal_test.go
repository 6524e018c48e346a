package node

import (
	"context"
	"testing"
	"time"
)

// The box republishes its name: a record past half its lifetime is signed
// again with the next sequence and a full lifetime; a fresh one is put
// again as it is.
func TestRepublishNameResigns(t *testing.T) {
	n := newTestBox(t)
	ctx := context.Background()
	root := addBytes(t, n, []byte("named"))
	rec, err := n.signName(root, 7, time.Hour) // under half of DefaultNameLifetime left
	if err != nil {
		t.Fatal(err)
	}
	_ = n.putName(ctx, rec) // no DHT peers: kept, not put
	n.republishName(ctx)
	kept, ok := n.keptRecord(ctx)
	if !ok {
		t.Fatal("no kept record")
	}
	seq, _ := kept.Sequence()
	eol, _ := kept.Validity()
	if seq != 8 || time.Until(eol) < DefaultNameLifetime-time.Minute {
		t.Fatalf("after republishing: sequence %d, valid for %s; want 8 and %s", seq, time.Until(eol), DefaultNameLifetime)
	}
	if res, err := nameResult(nameOf(n), kept); err != nil || !res.Root.Equals(root) {
		t.Fatalf("re-signed record names %v (%v), want %s", res.Root, err, root)
	}
	n.republishName(ctx) // fresh now: put as it is
	again, _ := n.keptRecord(ctx)
	if s, _ := again.Sequence(); s != 8 {
		t.Errorf("a fresh record was re-signed: sequence %d", s)
	}
}
