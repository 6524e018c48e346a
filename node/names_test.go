package node_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/path"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

// A box publishes its name for one CID, then another; other boxes resolve
// the latest and get it by name; a record for the name signed by another
// key is refused by the DHT's validator; the gateway serves /ipns/NAME and
// the record itself.
func TestNamesPublishResolveUpdate(t *testing.T) {
	nw, gw, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	pub := nw.Nodes[0]
	dir := t.TempDir()
	var roots []node.AddResult
	for i, text := range []string{"site v1", "site v2"} {
		p := filepath.Join(dir, "v"+string(rune('1'+i)))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := pub.AddPath(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, res)
	}
	first, err := pub.PublishName(ctx, node.SelfKey, roots[0].Root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := nw.Nodes[1].ResolveName(ctx, "/ipns/"+first.Name)
	if err != nil || !got.Root.Equals(roots[0].Root) {
		t.Fatalf("resolve: %+v, %v", got, err)
	}
	second, err := pub.PublishName(ctx, "", roots[1].Root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if second.Name != first.Name || second.Sequence <= first.Sequence {
		t.Fatalf("update: %+v after %+v", second, first)
	}
	got, err = nw.Nodes[1].ResolveName(ctx, pub.ID().String()) // the peer ID form
	if err != nil || !got.Root.Equals(roots[1].Root) {
		t.Fatalf("resolve after the update: %+v, %v", got, err)
	}
	out := filepath.Join(t.TempDir(), "got")
	if _, err := nw.Nodes[1].Get(ctx, got.Root, out, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "site v2" {
		t.Fatalf("got %q", b)
	}

	// A name of its own for another site, under a key kept in the repo.
	site, err := pub.PublishName(ctx, "blog", roots[0].Root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if site.Name == first.Name {
		t.Fatal("a named key published under the box's own name")
	}
	if got, err := nw.Nodes[1].ResolveName(ctx, site.Name); err != nil || !got.Root.Equals(roots[0].Root) {
		t.Fatalf("resolve the named key's name: %+v, %v", got, err)
	}

	// A forged record: the name's routing key, another key's signature,
	// a higher sequence.
	other, _, _ := crypto.GenerateEd25519Key(nil)
	forged, err := ipns.NewRecord(other, path.FromCid(roots[0].Root), second.Sequence+10, time.Now().Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := ipns.MarshalRecord(forged)
	name := ipns.NameFromPeer(pub.ID())
	if err := nw.Nodes[1].DHT().Routing().PutValue(ctx, string(name.RoutingKey()), data); err == nil {
		t.Error("the DHT took a record signed by another key")
	}
	if got, err := nw.Nodes[1].ResolveName(ctx, first.Name); err != nil || !got.Root.Equals(roots[1].Root) {
		t.Errorf("after a forgery: %+v, %v", got, err)
	}

	// The gateway: content by name, with caching from the record's TTL,
	// and the signed record itself.
	resp, body := httpGet(t, base+"/ipns/"+first.Name)
	if resp.StatusCode != 200 || string(body) != "site v2" {
		t.Fatalf("gateway /ipns/: %d %q", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Errorf("Cache-Control %q: want the record's 5 min TTL", cc)
	}
	resp, body = httpGet(t, base+"/ipns/"+first.Name+"?format=ipns-record")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.ipfs.ipns-record" {
		t.Fatalf("ipns-record: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rec, err := ipns.UnmarshalRecord(body)
	if err != nil || ipns.ValidateWithName(rec, name) != nil {
		t.Fatalf("the gateway's record does not validate: %v", err)
	}
	if v, _ := rec.Value(); !bytes.Contains([]byte(v.String()), []byte(roots[1].Root.String())) {
		t.Errorf("record value %s", v)
	}
	if resp, _ := httpGet(t, base+"/ipns/not-a-name"); resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("/ipns/not-a-name: %d", resp.StatusCode)
	}
	_ = gw
}
