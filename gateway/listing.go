package gateway

import (
	"context"
	"fmt"
	"net/http"

	boxogw "github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// listingLimit is boxo's blocks backend with a bound on the entries of a
// directory listing. boxo lists a directory by gathering every entry, then
// rendering them all as one HTML page: a 100,000-entry directory (a HAMT,
// as any UnixFS writer shards one that large) is 85 MiB of HTML and
// seconds of CPU for one short request, a lever for anyone who wants the
// gateway's cores. Past MaxListingEntries the listing stops gathering and
// the request fails with 501, saying to fetch the directory as a CAR (the
// trustless formats are unaffected). Everything that is not a directory
// takes boxo's own path. Its GetAll (tar.go) answers a TAR asked of a
// block that is not UnixFS with a 406.
type listingLimit struct {
	*boxogw.BlocksBackend
	dag ipld.DAGService
	max int
}

// errListingTooLarge says a directory has more entries than a listing shows.
type errListingTooLarge struct{ max int }

func (e errListingTooLarge) Error() string {
	return fmt.Sprintf("gateway: this directory has more than %d entries, too many to list: fetch it with ?format=car, or ask for a path inside it", e.max)
}

func (b listingLimit) Get(ctx context.Context, p path.ImmutablePath, ranges ...boxogw.ByteRange) (boxogw.ContentPathMetadata, *boxogw.GetResponse, error) {
	md, nd, fsn, ok := b.directory(ctx, p)
	if !ok {
		return b.BlocksBackend.Get(ctx, p, ranges...)
	}
	// What boxo's backend answers for a directory, but for the entries.
	size, err := nd.Size()
	if err != nil {
		return md, nil, fmt.Errorf("gateway: directory size: %w", err)
	}
	dir, err := uio.NewDirectoryFromNode(b.dag, nd)
	if err != nil {
		return md, nil, err
	}
	if mt := fsn.ModTime(); !mt.IsZero() {
		md.ModTime = mt
	}
	ectx, cancel := context.WithCancel(ctx)
	entries := capEntries(ectx, cancel, dir.EnumLinksAsync(ectx), b.max)
	return md, boxogw.NewGetResponseFromDirectoryListing(size, entries, func() error { cancel(); return nil }), nil
}

// directory resolves p and reports whether it ends at a UnixFS directory.
// Any failure reports false: boxo's own path then answers with its errors.
func (b listingLimit) directory(ctx context.Context, p path.ImmutablePath) (boxogw.ContentPathMetadata, *merkledag.ProtoNode, *ft.FSNode, bool) {
	md, err := b.ResolvePath(ctx, p)
	if err != nil {
		return md, nil, nil, false
	}
	c := md.LastSegment.RootCid()
	if c.Prefix().Codec != cid.DagProtobuf {
		return md, nil, nil, false
	}
	nd, err := b.dag.Get(ctx, c)
	if err != nil {
		return md, nil, nil, false
	}
	pn, ok := nd.(*merkledag.ProtoNode)
	if !ok {
		return md, nil, nil, false
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil || !fsn.IsDir() {
		return md, nil, nil, false
	}
	return md, pn, fsn, true
}

// capEntries passes on at most max entries of in; at the next one it sends
// an error (501, which boxo answers before writing any of the listing) and
// stops the enumeration.
func capEntries(ctx context.Context, stop context.CancelFunc, in <-chan ft.LinkResult, max int) <-chan ft.LinkResult {
	out := make(chan ft.LinkResult)
	go func() {
		defer close(out)
		defer stop()
		n := 0
		for l := range in {
			if l.Err == nil {
				if n++; n > max {
					l = ft.LinkResult{Err: boxogw.NewErrorStatusCode(errListingTooLarge{max}, http.StatusNotImplemented)}
				}
			}
			select {
			case out <- l:
			case <-ctx.Done():
				return
			}
			if l.Err != nil {
				return
			}
		}
	}()
	return out
}
