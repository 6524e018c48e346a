package dagstream

import (
	"errors"
	"fmt"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Bounds of a walk, the same on both sides: the server stops where the
// client would give up.
const (
	// MaxLinks bounds the links of one node (node.maxNodeLinks: UnixFS
	// builders link 174 leaves to a file node, and a directory node of
	// 256 KiB holds ~6,200 entries).
	MaxLinks = 1 << 14
	// MaxPending bounds the links met and not yet walked: a few per
	// level of a file, a directory's entries.
	MaxPending = 1 << 20
	// DefaultMaxBlocks bounds the blocks of one stream: 2 TiB of 256 KiB
	// leaves (node.DefaultMaxFetchBlocks).
	DefaultMaxBlocks = 1 << 23
)

var errTooLarge = errors.New("dagstream: the DAG passes a bound of the walk")

// item is a block to walk: its CID and the part of its bytes wanted.
type item struct {
	c cid.Cid
	s span
}

// walker yields a DAG's CIDs in the order both sides walk it: depth
// first, a node's links in their order, each node with links once (a
// node linked again is skipped with its subtree, so a DAG of nodes that
// each link the next one twice does not double at every level; a leaf
// linked again is sent again). CIDs with an identity hash hold their
// bytes themselves and are skipped. It is the one definition of the
// order: the server sends what next yields, the client expects it.
type walker struct {
	stack     []item // top last
	expanded  map[cid.Cid]struct{}
	blocks    int64
	maxBlocks int64
}

func newWalker(r Request, maxBlocks int64) *walker {
	if maxBlocks <= 0 {
		maxBlocks = DefaultMaxBlocks
	}
	return &walker{stack: []item{{c: r.Root, s: r.span()}}, expanded: make(map[cid.Cid]struct{}), maxBlocks: maxBlocks}
}

// next pops the next block of the walk; false when the walk is done.
func (w *walker) next() (item, bool, error) {
	for len(w.stack) > 0 {
		it := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		if it.c.Prefix().MhType == mh.IDENTITY {
			continue
		}
		if _, ok := w.expanded[it.c]; ok {
			continue
		}
		if w.blocks >= w.maxBlocks {
			return item{}, false, fmt.Errorf("%w: more than %d blocks", errTooLarge, w.maxBlocks)
		}
		w.blocks++
		return it, true, nil
	}
	return item{}, false, nil
}

// visited takes the bytes of the block next yielded (verified, on the
// client) and queues its children. links is how many links the block
// has (0: a leaf), walked or not.
func (w *walker) visited(it item, data []byte) (links int, err error) {
	kids, links, err := children(it.c, data, it.s)
	if err != nil || links == 0 {
		return links, err
	}
	w.expanded[it.c] = struct{}{}
	if len(w.stack)+len(kids) > MaxPending {
		return links, fmt.Errorf("%w: more than %d links pending", errTooLarge, MaxPending)
	}
	for i := len(kids) - 1; i >= 0; i-- {
		w.stack = append(w.stack, kids[i])
	}
	return links, nil
}

// children returns the links of a block to walk, in order, each with the
// part of its bytes wanted. Only dag-pb nodes have links here: raw blocks
// are leaves, and so is a block of another codec or a dag-pb block that
// does not decode (the fetch that follows the stream reads their links
// itself and asks bitswap for what they name). Below a UnixFS file node
// whose block sizes match its links, only the children holding bytes of
// s are walked; every other node's children are walked whole.
func children(c cid.Cid, data []byte, s span) (_ []item, nlinks int, _ error) {
	if c.Prefix().Codec != cid.DagProtobuf {
		return nil, 0, nil
	}
	nd, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return nil, 0, nil
	}
	links := nd.Links()
	if len(links) == 0 {
		return nil, 0, nil
	}
	if len(links) > MaxLinks {
		return nil, len(links), fmt.Errorf("%w: node %s has %d links, more than %d", errTooLarge, c, len(links), MaxLinks)
	}
	out := make([]item, 0, len(links))
	if s != whole {
		if fs, err := unixfs.FSNodeFromBytes(nd.Data()); err == nil && (fs.Type() == unixfs.TFile || fs.Type() == unixfs.TRaw) && len(fs.BlockSizes()) == len(links) {
			pos := uint64(len(fs.Data()))
			for i, l := range links {
				n := fs.BlockSize(i)
				lo, hi := pos, pos+n
				pos = hi
				if hi < lo || hi <= s.off || lo >= s.end {
					continue
				}
				out = append(out, item{c: l.Cid, s: span{max(s.off, lo) - lo, min(s.end, hi) - lo}})
			}
			return out, len(links), nil
		}
	}
	for _, l := range links {
		out = append(out, item{c: l.Cid, s: whole})
	}
	return out, len(links), nil
}
