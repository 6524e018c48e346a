package node

import (
	"bytes"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multicodec"
)

// Plain json and cbor, which go-cid names no constant for.
const (
	codecJSON = uint64(multicodec.Json)
	codecCBOR = uint64(multicodec.Cbor)
)

// The codecs a box fetches, stores and serves, as the IPFS gateway specs
// list them: UnixFS (dag-pb) and raw blocks, and the IPLD data codecs
// dag-cbor and dag-json (whose links a fetch follows) and plain json and
// cbor (which have no links). Other codecs are refused with ErrUnsupported.
func checkCodec(c cid.Cid) error {
	switch c.Prefix().Codec {
	case cid.DagProtobuf, cid.Raw, cid.DagCBOR, cid.DagJSON, codecJSON, codecCBOR:
		return nil
	}
	return fmt.Errorf("%w: %s has codec 0x%x; ore serves dag-pb (UnixFS), raw, dag-cbor, dag-json, json and cbor blocks", ErrUnsupported, c, c.Prefix().Codec)
}

// hasLinks reports whether blocks of c's codec may link other blocks.
func hasLinks(c cid.Cid) bool {
	switch c.Prefix().Codec {
	case cid.DagProtobuf, cid.DagCBOR, cid.DagJSON:
		return true
	}
	return false
}

// isUnixFS reports whether c is read as a file or directory (UnixFS, or a
// raw block as a file); other codecs are IPLD documents.
func isUnixFS(c cid.Cid) bool {
	switch c.Prefix().Codec {
	case cid.DagProtobuf, cid.Raw:
		return true
	}
	return false
}

// linkCIDs returns the CIDs block b links, at most maxNodeLinks: a dag-pb
// node's links, the links anywhere in a dag-cbor or dag-json document
// (decoded within go-ipld-prime's allocation budget and depth limit), none
// for other codecs.
func linkCIDs(b blocks.Block) ([]cid.Cid, error) {
	switch b.Cid().Prefix().Codec {
	case cid.DagProtobuf:
		links, err := nodeLinks(b)
		if err != nil {
			return nil, err
		}
		out := make([]cid.Cid, len(links))
		for i, l := range links {
			out[i] = l.Cid
		}
		return out, nil
	case cid.DagCBOR, cid.DagJSON:
		return ipldLinks(b)
	}
	return nil, nil
}

// ipldLinks decodes a dag-cbor or dag-json block and lists its links, in
// document order, walking the decoded node with a stack of its own.
func ipldLinks(b blocks.Block) ([]cid.Cid, error) {
	nb := basicnode.Prototype.Any.NewBuilder()
	var err error
	if b.Cid().Prefix().Codec == cid.DagCBOR {
		err = dagcbor.Decode(nb, bytes.NewReader(b.RawData()))
	} else {
		err = dagjson.Decode(nb, bytes.NewReader(b.RawData()))
	}
	if err != nil {
		return nil, fmt.Errorf("block %s is not valid %s: %w", b.Cid(), codecName(b.Cid()), err)
	}
	var out []cid.Cid
	stack := []datamodel.Node{nb.Build()}
	for len(stack) > 0 {
		nd := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch nd.Kind() {
		case datamodel.Kind_Link:
			l, err := nd.AsLink()
			if err != nil {
				return nil, err
			}
			cl, ok := l.(cidlink.Link)
			if !ok {
				return nil, fmt.Errorf("block %s links something that is not a CID", b.Cid())
			}
			if len(out) == maxNodeLinks {
				return nil, fmt.Errorf("%w: block %s has more than %d links", ErrDAGTooLarge, b.Cid(), maxNodeLinks)
			}
			out = append(out, cl.Cid)
		case datamodel.Kind_Map, datamodel.Kind_List:
			// Children pushed in reverse, so they pop in document order.
			var kids []datamodel.Node
			if nd.Kind() == datamodel.Kind_Map {
				for it := nd.MapIterator(); !it.Done(); {
					_, v, err := it.Next()
					if err != nil {
						return nil, err
					}
					kids = append(kids, v)
				}
			} else {
				for it := nd.ListIterator(); !it.Done(); {
					_, v, err := it.Next()
					if err != nil {
						return nil, err
					}
					kids = append(kids, v)
				}
			}
			for i := len(kids) - 1; i >= 0; i-- {
				stack = append(stack, kids[i])
			}
		}
	}
	return out, nil
}

func codecName(c cid.Cid) string {
	return multicodec.Code(c.Prefix().Codec).String()
}
