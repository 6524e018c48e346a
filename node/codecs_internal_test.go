package node

import (
	"errors"
	"strings"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func blockOf(t *testing.T, codec uint64, data []byte) blocks.Block {
	t.Helper()
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, cid.NewCidV1(codec, h))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Links are read from dag-json and dag-cbor documents in document order,
// nested anywhere; a malformed document or one with more links than a
// node may hold is refused; json and cbor have none.
func TestIPLDLinks(t *testing.T) {
	a := blockOf(t, cid.Raw, []byte("a")).Cid()
	b := blockOf(t, cid.Raw, []byte("b")).Cid()
	doc := `{"x":[{"/":"` + a.String() + `"},{"y":{"/":"` + b.String() + `"}}],"z":1}`
	got, err := linkCIDs(blockOf(t, cid.DagJSON, []byte(doc)))
	if err != nil || len(got) != 2 || !got[0].Equals(a) || !got[1].Equals(b) {
		t.Fatalf("links %v, %v; want [%s %s]", got, err, a, b)
	}
	for _, codec := range []uint64{codecJSON, codecCBOR, cid.Raw} {
		if got, err := linkCIDs(blockOf(t, codec, []byte(doc))); err != nil || len(got) != 0 {
			t.Errorf("codec 0x%x: links %v, %v; want none", codec, got, err)
		}
	}
	for name, bad := range map[string]blocks.Block{
		"truncated dag-json": blockOf(t, cid.DagJSON, []byte(doc[:20])),
		"dag-cbor garbage":   blockOf(t, cid.DagCBOR, []byte{0xff, 0x00, 0x13}),
		"deep nesting":       blockOf(t, cid.DagJSON, []byte(strings.Repeat("[", 1<<16)+strings.Repeat("]", 1<<16))),
	} {
		if _, err := linkCIDs(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	many := "[" + strings.Repeat(`{"/":"`+a.String()+`"},`, maxNodeLinks) + `{"/":"` + a.String() + `"}]`
	if _, err := linkCIDs(blockOf(t, cid.DagJSON, []byte(many))); !errors.Is(err, ErrDAGTooLarge) {
		t.Errorf("%d links: %v, want ErrDAGTooLarge", maxNodeLinks+1, err)
	}
}
