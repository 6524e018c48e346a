package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ipfs/boxo/files"
	boxogw "github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
)

// GetAll is what a TAR response reads (?format=tar, Accept:
// application/x-tar). A TAR holds UnixFS files and directories: asked of
// a dag-json, dag-cbor, json or cbor block, boxo fails with a 500 ("unknown
// node type"), a server error a client or a monitor would retry or count
// against the gateway; it is the client's request the content cannot
// answer, so the gateway answers 406 Not Acceptable, as boxo does for a
// codec conversion it cannot make, and says which formats can.
func (b listingLimit) GetAll(ctx context.Context, p path.ImmutablePath) (boxogw.ContentPathMetadata, files.Node, error) {
	md, n, err := b.BlocksBackend.GetAll(ctx, p)
	if err == nil {
		return md, n, nil
	}
	// boxo returns the path's metadata with an error only once it holds
	// the last block: the error is then about what that block is, not
	// about finding it.
	c := md.LastSegment.RootCid()
	if !c.Defined() {
		return md, n, err
	}
	switch codec := c.Prefix().Codec; codec {
	case cid.DagProtobuf, cid.Raw:
		return md, n, err
	default:
		return md, n, boxogw.NewErrorStatusCode(fmt.Errorf(
			"a TAR holds UnixFS files and directories, and %s is %s: fetch it with ?format=raw, ?format=car or as itself (%w)",
			c, multicodec.Code(codec), err), http.StatusNotAcceptable)
	}
}
