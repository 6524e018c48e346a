package node

import (
	"fmt"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
)

// Fetch limits: what a DAG someone else built can make a fetch hold.
//
// A fetch walks the DAG a level at a time but never holds a whole level:
// it holds the level above's nodes with links (local by then) and reads
// their links from the store a chunk at a time as it asks for them (see
// levelSource). A file of 256 KiB leaves linked 174 to a node (kubo's
// layout) holds one node with links for every 174 leaves: 24,000 for a
// 1 TiB file's ~4.2 million leaves. What a fetch holds grows with those
// nodes, and every block it visits counts towards Config.MaxFetchBlocks.
const (
	// maxNodeLinks bounds the links of one dag-pb node. UnixFS builders
	// link 174 leaves to a file node, 256 entries to a HAMT shard, and
	// shard a directory before its node reaches 256 KiB (kubo), which
	// holds at most ~6,200 links of ~42 bytes; 16,384 leaves room for
	// builders that shard later. A 2 MiB block (the most bitswap carries)
	// could hold ~50,000.
	maxNodeLinks = 1 << 14
	// maxLevelParents bounds the nodes with links of one level, what a
	// fetch holds for the next level: 2 TiB of 256 KiB leaves need
	// ~50,000 of them, a directory of a million multi-block files a
	// million.
	maxLevelParents = 1 << 20
	// maxDAGDepth bounds the levels a fetch or a walk (CAR export and
	// import) follows. UnixFS files are a few levels deep (174^5 leaves of
	// 256 KiB are 41 PB), a trickle DAG a few dozen, and each directory
	// adds one level (a few with HAMT shards): 4,096 holds any path a file
	// system allows (4,096 bytes). A chain deeper than that is built to
	// make a box walk it a level at a time.
	maxDAGDepth = 1 << 12
	// DefaultMaxFetchBlocks is the most blocks a fetch visits (repeats
	// counted): 2 TiB of 256 KiB leaves. See WithMaxFetchBlocks.
	DefaultMaxFetchBlocks = 1 << 23
)

// levelSource yields the CIDs of one level of a fetch a chunk at a time,
// read from the links of the level above's nodes with links (parents), so
// that a level of millions of CIDs costs the links of one node at a time,
// not the whole level. It is used from the fetch's goroutine only.
type levelSource struct {
	f       *fetch
	parents []cid.Cid // not read yet; local (fetched in the level above)
	links   []cid.Cid // of the parent read last, not yielded yet
}

// next returns up to n CIDs of the level; none once the level is done.
func (s *levelSource) next(n int) ([]cid.Cid, error) {
	var out []cid.Cid
	for len(out) < n {
		if len(s.links) == 0 {
			if len(s.parents) == 0 {
				break
			}
			p := s.parents[0]
			s.parents = s.parents[1:]
			links, err := s.f.readLinks(p)
			if err != nil {
				return nil, err
			}
			s.links = links
			continue
		}
		k := min(n-len(out), len(s.links))
		out = append(out, s.links[:k]...)
		s.links = s.links[k:]
	}
	f := s.f
	if f.visited += int64(len(out)); f.visited > f.n.cfg.MaxFetchBlocks {
		return nil, fmt.Errorf("%w: %s links more than %d blocks (repeats counted); a box that fetches DAGs this large raises the limit with node.WithMaxFetchBlocks", ErrDAGTooLarge, f.root, f.n.cfg.MaxFetchBlocks)
	}
	return out, nil
}

// readLinks reads the links of p, a local node visited before.
func (f *fetch) readLinks(p cid.Cid) ([]cid.Cid, error) {
	b, err := f.n.store.Get(f.ctx, p)
	if err != nil {
		return nil, fmt.Errorf("read the links of %s: %w", p, err)
	}
	return linkCIDs(b)
}

// nodeLinks decodes the links of a dag-pb block, at most maxNodeLinks.
func nodeLinks(b blocks.Block) ([]*format.Link, error) {
	nd, err := merkledag.DecodeProtobufBlock(b)
	if err != nil {
		return nil, fmt.Errorf("block %s is not valid dag-pb: %w", b.Cid(), err)
	}
	links := nd.Links()
	if len(links) > maxNodeLinks {
		return nil, fmt.Errorf("%w: node %s has %d links, more than the %d a UnixFS node has", ErrDAGTooLarge, b.Cid(), len(links), maxNodeLinks)
	}
	return links, nil
}
