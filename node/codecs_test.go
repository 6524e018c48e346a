package node_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	mh "github.com/multiformats/go-multihash"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

func codecBlock(t *testing.T, codec uint64, data []byte) blocks.Block {
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

// ipldDAG is a dag-json root linking a dag-cbor document (which links a
// raw leaf), a plain json block, a plain cbor block and a raw leaf: every
// codec the gateway specs list but UnixFS.
type ipldDAG struct {
	root   blocks.Block
	all    []blocks.Block
	linked map[string]blocks.Block
}

func newIPLDDAG(t *testing.T) ipldDAG {
	t.Helper()
	leaf := codecBlock(t, cid.Raw, []byte("a raw leaf"))
	deep := codecBlock(t, cid.Raw, []byte("a leaf under the dag-cbor document"))
	nd, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "deep", qp.Link(cidlink.Link{Cid: deep.Cid()}))
		qp.MapEntry(ma, "n", qp.Int(42))
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(nd, &buf); err != nil {
		t.Fatal(err)
	}
	doc := codecBlock(t, cid.DagCBOR, buf.Bytes())
	plainJSON := codecBlock(t, 0x0200, []byte(`{"hello":"json"}`))
	plainCBOR := codecBlock(t, 0x51, []byte{0xa1, 0x61, 0x61, 0x01}) // {"a": 1}
	rootJSON := `{"cbor":{"/":"` + plainCBOR.Cid().String() + `"},"doc":{"/":"` + doc.Cid().String() +
		`"},"json":{"/":"` + plainJSON.Cid().String() + `"},"leaf":{"/":"` + leaf.Cid().String() + `"}}`
	root := codecBlock(t, cid.DagJSON, []byte(rootJSON))
	return ipldDAG{root: root, all: []blocks.Block{root, doc, deep, plainJSON, plainCBOR, leaf},
		linked: map[string]blocks.Block{"doc": doc, "json": plainJSON, "cbor": plainCBOR, "leaf": leaf}}
}

func (d ipldDAG) car(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := storage.NewWritable(&buf, []cid.Cid{d.root.Cid()}, car.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range d.all {
		if err := w.Put(context.Background(), b.Cid().KeyString(), b.RawData()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// `ore dag import` takes a CAR of dag-json, dag-cbor, json and cbor blocks
// and pins its root; another box's `ore get` fetches the whole DAG by
// following links of every codec and writes the root document; a CAR
// missing a block linked from a dag-cbor document is refused.
func TestIPLDCodecsImportAndGet(t *testing.T) {
	nw := newNet(t, 2)
	ctx := testCtx(t)
	d := newIPLDDAG(t)
	res, err := nw.Nodes[0].ImportCAR(ctx, bytes.NewReader(d.car(t)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != len(d.all) || !res.Roots[0].Equals(d.root.Cid()) {
		t.Fatalf("import: %+v", res)
	}
	if c, err := node.ParseCID(d.root.Cid().String()); err != nil || !c.Equals(d.root.Cid()) {
		t.Fatalf("ParseCID of a dag-json CID: %v", err)
	}
	out := filepath.Join(t.TempDir(), "doc.json")
	fr, err := nw.Nodes[1].Get(ctx, d.root.Cid(), out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, d.root.RawData()) {
		t.Errorf("get wrote %q, want the root document", got)
	}
	if fr.Blocks != int64(len(d.all)) {
		t.Errorf("fetched %d blocks, want %d", fr.Blocks, len(d.all))
	}
	for _, b := range d.all {
		if has, _ := nw.Nodes[1].Store().Has(ctx, b.Cid()); !has {
			t.Errorf("block %s (codec 0x%x) not fetched", b.Cid(), b.Cid().Prefix().Codec)
		}
	}
	// A CAR without the leaf under the dag-cbor document stores its
	// blocks but pins nothing.
	partial := ipldDAG{root: d.root, all: []blocks.Block{d.root, d.linked["doc"], d.linked["json"], d.linked["cbor"], d.linked["leaf"]}}
	other := newNet(t, 1).Nodes[0]
	if _, err := other.ImportCAR(ctx, bytes.NewReader(partial.car(t))); err == nil {
		t.Error("a CAR missing a block linked from dag-cbor was imported whole")
	}
	if pinned, _ := other.Store().IsPinned(ctx, d.root.Cid()); pinned {
		t.Error("a partial DAG was pinned")
	}
	// A codec ore does not serve is refused by name.
	gitRaw := codecBlock(t, 0x78, []byte("tree"))
	if _, err := node.ParseCID(gitRaw.Cid().String()); !errors.Is(err, node.ErrUnsupported) {
		t.Errorf("git-raw CID: %v", err)
	}
}

// The gateway fetches dag-json, dag-cbor, json and cbor content from
// another box and serves it as the trustless and path gateway specs say.
func TestGatewayServesIPLDCodecsFromAnotherBox(t *testing.T) {
	nw, _, base := gatewayNet(t, gateway.Config{})
	ctx := testCtx(t)
	d := newIPLDDAG(t)
	if _, err := nw.Nodes[0].ImportCAR(ctx, bytes.NewReader(d.car(t))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		b      blocks.Block
		hdr    []string
		ctype  string
		sameAs []byte
	}{
		{d.root, nil, "application/vnd.ipld.dag-json", d.root.RawData()},
		{d.root, []string{"Accept", "application/vnd.ipld.dag-json"}, "application/vnd.ipld.dag-json", d.root.RawData()},
		{d.linked["doc"], []string{"Accept", "application/vnd.ipld.dag-cbor"}, "application/vnd.ipld.dag-cbor", d.linked["doc"].RawData()},
		{d.linked["json"], nil, "application/json", d.linked["json"].RawData()},
		{d.linked["cbor"], []string{"Accept", "application/cbor"}, "application/cbor", d.linked["cbor"].RawData()},
		{d.linked["doc"], []string{"Accept", "application/vnd.ipld.raw"}, "application/vnd.ipld.raw", d.linked["doc"].RawData()},
	} {
		resp, body := httpGet(t, base+"/ipfs/"+tc.b.Cid().String(), tc.hdr...)
		if resp.StatusCode != 200 || !bytes.Equal(body, tc.sameAs) || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %v: %d %q %q", tc.b.Cid(), tc.hdr, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// A path through a dag-json link.
	resp, body := httpGet(t, base+"/ipfs/"+d.root.Cid().String()+"/doc/deep", "Accept", "application/vnd.ipld.raw")
	if resp.StatusCode != 200 || string(body) != "a leaf under the dag-cbor document" {
		t.Errorf("path through links: %d %q", resp.StatusCode, body)
	}
	// The whole DAG as a CAR.
	resp, body = httpGet(t, base+"/ipfs/"+d.root.Cid().String(), "Accept", "application/vnd.ipld.car")
	if resp.StatusCode != 200 {
		t.Fatalf("CAR: %d %s", resp.StatusCode, body)
	}
	br, err := car.NewBlockReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got := map[cid.Cid]bool{}
	for {
		b, err := br.Next()
		if err != nil {
			break
		}
		got[b.Cid()] = true
	}
	for _, b := range d.all {
		if !got[b.Cid()] {
			t.Errorf("the CAR lacks %s", b.Cid())
		}
	}
}
