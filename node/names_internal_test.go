package node

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipns"
)

// The box republishes its name: a record past half its lifetime is signed
// again with the next sequence and a full lifetime; a fresh one is put
// again as it is.
func TestRepublishNameResigns(t *testing.T) {
	n := newTestBox(t)
	ctx := context.Background()
	root := addBytes(t, n, []byte("named"))
	k, err := n.nameKeyOf("site")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := signName(k, root, 7, time.Hour) // under half of DefaultNameLifetime left
	if err != nil {
		t.Fatal(err)
	}
	_ = n.putName(ctx, k, rec) // no DHT peers: kept, not put
	n.republishName(ctx)
	kept, ok := n.keptRecord(ctx, "site")
	if !ok {
		t.Fatal("no kept record")
	}
	seq, _ := kept.Sequence()
	eol, _ := kept.Validity()
	if seq != 8 || time.Until(eol) < DefaultNameLifetime-time.Minute {
		t.Fatalf("after republishing: sequence %d, valid for %s; want 8 and %s", seq, time.Until(eol), DefaultNameLifetime)
	}
	if err := ipns.ValidateWithName(kept, k.name); err != nil {
		t.Fatalf("the re-signed record is not valid for the key's name: %v", err)
	}
	if res, err := nameResult(k.name, kept); err != nil || !res.Root.Equals(root) {
		t.Fatalf("re-signed record names %v (%v), want %s", res.Root, err, root)
	}
	n.republishName(ctx) // fresh now: put as it is
	again, _ := n.keptRecord(ctx, "site")
	if s, _ := again.Sequence(); s != 8 {
		t.Errorf("a fresh record was re-signed: sequence %d", s)
	}
}

// Named keys: made in the repo on first use, the same key the next time,
// names of their own; bad labels are refused.
func TestNamedKeys(t *testing.T) {
	n := newTestBox(t)
	a, err := n.nameKeyOf("site-a")
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.nameKeyOf("site-a")
	if err != nil || again.name.String() != a.name.String() {
		t.Fatalf("the key changed between uses: %v", err)
	}
	self, _ := n.nameKeyOf(SelfKey)
	b, _ := n.nameKeyOf("site-b")
	if a.name.String() == self.name.String() || a.name.String() == b.name.String() {
		t.Fatal("named keys share a name")
	}
	for _, bad := range []string{"../x", "A", "x/y", ".hidden", string(make([]byte, 65))} {
		if _, err := n.nameKeyOf(bad); err == nil {
			t.Errorf("key label %q accepted", bad)
		}
	}
}
