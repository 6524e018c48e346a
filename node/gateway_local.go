package node

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/gateway"
)

// Limits of the gateway's local fast path: deeper or larger DAGs take
// boxo's handler, which walks them lazily.
const (
	localMaxDepth  = 32
	localMaxLeaves = 1 << 16 // 16 GiB of 256 KiB leaves
	localCacheFile = 8 << 20 // files up to this size go through the block cache
)

var _ gateway.LocalFiles = (*gatewayBackend)(nil)

// OpenLocal opens root as a file read straight from the store, when root is
// a UnixFS file (or a raw block) whose every block is local: the file's
// leaves and their offsets are listed once from the inner nodes, then reads
// copy from the store's memory without decoding anything again (a leaf's
// size is checked when it is read).
func (b *gatewayBackend) OpenLocal(ctx context.Context, root cid.Cid) (gateway.LocalFile, error) {
	// A DAG known to be whole (added, pinned, fetched) is listed from its
	// inner nodes alone; a raw block is whole when it is there.
	if ix, ok := b.indexes.get(root); ok {
		return &localFile{ctx: ctx, n: b.n, cache: b.cache, leaves: ix.leaves, size: ix.size, bufLeaf: -1}, nil
	}
	complete := b.n.isComplete(ctx, root)
	if !complete && root.Prefix().Codec != cid.Raw {
		// Checking a DAG leaf by leaf on every request while it fills
		// would cost more than it saves: it takes the fast path once a
		// fetch completed it (or it was added or pinned).
		return nil, gateway.ErrNotLocal
	}
	f := &localFile{ctx: ctx, n: b.n, cache: b.cache, check: !complete, bufLeaf: -1}
	if err := f.index(ctx, root, -1, 0); err != nil {
		return nil, err
	}
	if !complete {
		b.n.markComplete(root)
	}
	b.indexes.put(root, localIndex{leaves: f.leaves, size: f.size})
	return f, nil
}

// localLeaf is a run of file bytes: a raw block, or the data of a leaf node.
type localLeaf struct {
	c      cid.Cid
	off    int64  // in the file
	size   int64  // bytes of file data
	inline []byte // the data of a dag-pb leaf (c is then unused)
}

type localFile struct {
	ctx    context.Context
	n      *Node
	cache  *blockCache
	leaves []localLeaf
	size   int64
	off    int64
	check  bool // look every leaf up while indexing (the DAG may be partial)

	buf     []byte // the leaf bufLeaf, for large files
	bufLeaf int

	packs map[uint32]*os.File // opened by Extent, closed by Close
}

var _ gateway.FileExtents = (*localFile)(nil)

// Extent says where the leaf holding off lies in the store's pack files,
// for the gateway to send it with sendfile, for files larger than
// localCacheFile. The store checks each record
// the first time it locates it (store.Section, the store's integrity
// rule); every failure (a leaf inline in a node or in badger, a pack
// compacted away, a damaged record) answers ok false, and Read then reads
// the leaf, or reports the error.
func (f *localFile) Extent(off int64) (*os.File, int64, int64, bool) {
	if off < 0 || off >= f.size {
		return nil, 0, 0, false
	}
	i := sort.Search(len(f.leaves), func(i int) bool { return f.leaves[i].off+f.leaves[i].size > off })
	l := &f.leaves[i]
	within := off - l.off
	rest := l.size - within
	if l.inline != nil || f.size <= localCacheFile {
		// A small file is served from the block cache: measured with
		// ore bench gateway, sendfile's lookups, open and seeks per
		// request cost a 1 MiB file more than copying its four leaves
		// from memory.
		return nil, 0, rest, false
	}
	sec, err := f.n.store.Section(f.ctx, l.c)
	if err != nil || sec.Len != l.size {
		return nil, 0, rest, false
	}
	pf := f.packs[sec.Pack]
	if pf == nil {
		if pf, err = f.n.store.OpenPack(sec.Pack); err != nil {
			return nil, 0, rest, false
		}
		if f.packs == nil {
			f.packs = map[uint32]*os.File{}
		}
		f.packs[sec.Pack] = pf
	}
	return pf, sec.Off + within, rest, true
}

// Close closes the pack files Extent opened.
func (f *localFile) Close() error {
	for id, pf := range f.packs {
		_ = pf.Close()
		delete(f.packs, id)
	}
	return nil
}

func (f *localFile) Size() int64 { return f.size }

// index appends the leaves under c; want is the file size its parent
// records for it (-1 for the root).
func (f *localFile) index(ctx context.Context, c cid.Cid, want int64, depth int) error {
	if depth > localMaxDepth || len(f.leaves) >= localMaxLeaves {
		return gateway.ErrNotLocal
	}
	switch c.Prefix().Codec {
	case cid.Raw:
		size := int(want)
		if f.check || want < 0 {
			var err error
			if size, err = f.n.store.GetSize(ctx, c); err != nil {
				return fmt.Errorf("%w: %v", gateway.ErrNotLocal, err)
			}
		}
		if want >= 0 && int64(size) != want {
			return fmt.Errorf("%w: block %s has %d bytes, its parent says %d", gateway.ErrNotLocal, c, size, want)
		}
		f.leaves = append(f.leaves, localLeaf{c: c, off: f.size, size: int64(size)})
		f.size += int64(size)
		return nil
	case cid.DagProtobuf:
	default:
		return gateway.ErrNotLocal
	}
	blk, err := f.n.store.Get(ctx, c)
	if err != nil {
		return fmt.Errorf("%w: %v", gateway.ErrNotLocal, err)
	}
	nd, err := merkledag.DecodeProtobuf(blk.RawData())
	if err != nil {
		return fmt.Errorf("%w: %v", gateway.ErrNotLocal, err)
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		return fmt.Errorf("%w: %v", gateway.ErrNotLocal, err)
	}
	if t := fsn.Type(); t != ft.TFile && t != ft.TRaw {
		return gateway.ErrNotLocal // directories, symlinks, HAMT shards: boxo's handler
	}
	links := nd.Links()
	if len(links) == 0 {
		data := fsn.Data()
		if want >= 0 && int64(len(data)) != want {
			return fmt.Errorf("%w: node %s has %d bytes, its parent says %d", gateway.ErrNotLocal, c, len(data), want)
		}
		if len(data) > 0 {
			f.leaves = append(f.leaves, localLeaf{off: f.size, size: int64(len(data)), inline: data})
			f.size += int64(len(data))
		}
		return nil
	}
	if len(fsn.Data()) > 0 || fsn.NumChildren() != len(links) {
		return gateway.ErrNotLocal // data in an inner node: a layout boxo reads better
	}
	start := f.size
	for i, l := range links {
		if err := f.index(ctx, l.Cid, int64(fsn.BlockSize(i)), depth+1); err != nil {
			return err
		}
	}
	if want >= 0 && f.size-start != want {
		return fmt.Errorf("%w: node %s holds %d bytes, its parent says %d", gateway.ErrNotLocal, c, f.size-start, want)
	}
	return nil
}

func (f *localFile) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	i := sort.Search(len(f.leaves), func(i int) bool { return f.leaves[i].off+f.leaves[i].size > f.off })
	l := &f.leaves[i]
	within := f.off - l.off
	var n int
	if l.inline != nil {
		n = copy(p, l.inline[within:])
	} else if b, ok := f.cache.peek(l.c); ok && int64(len(b)) == l.size {
		n = copy(p, b[within:])
	} else if f.size <= localCacheFile {
		// A small file is likely requested again: keep its blocks.
		blk, err := f.cache.Get(f.ctx, l.c)
		if err != nil {
			return 0, err
		}
		if b := blk.RawData(); int64(len(b)) != l.size {
			return 0, fmt.Errorf("node: block %s changed size in the store", l.c)
		} else {
			n = copy(p, b[within:])
		}
	} else {
		// A large file's leaf is read once, whole, then served from the
		// buffer: the store reads and checks whole blocks.
		if f.bufLeaf != i || f.buf == nil {
			f.bufLeaf = -1
			err := f.n.store.View(f.ctx, l.c, func(b []byte) error {
				if int64(len(b)) != l.size {
					return fmt.Errorf("node: block %s changed size in the store", l.c)
				}
				f.buf = append(f.buf[:0], b...)
				return nil
			})
			if err != nil {
				return 0, err
			}
			f.bufLeaf = i
		}
		n = copy(p, f.buf[within:])
	}
	f.off += int64(n)
	return n, nil
}

func (f *localFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, errors.New("node: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("node: seek before the start")
	}
	f.off = offset
	return offset, nil
}

// localIndex is a file's leaves, shared read-only by the readers of it.
type localIndex struct {
	leaves []localLeaf
	size   int64
}

// indexCache keeps the leaf lists of recently served files, bounded by
// their total number of leaves (about 80 bytes each), so a hot file's next
// request reads no inner node. A root's blocks never change; a block
// removed from the store fails the read that wants it.
type indexCache struct {
	mu     sync.Mutex
	max    int
	leaves int
	ll     *list.List // of cid.Cid, front: most recent
	m      map[cid.Cid]*list.Element
	ix     map[cid.Cid]localIndex
}

// defaultIndexLeaves bounds the index cache: 256 Ki leaves, some 20 MiB,
// the leaves of 64 GiB of content.
const defaultIndexLeaves = 1 << 18

func newIndexCache(max int) *indexCache {
	return &indexCache{max: max, ll: list.New(), m: map[cid.Cid]*list.Element{}, ix: map[cid.Cid]localIndex{}}
}

func (c *indexCache) get(root cid.Cid) (localIndex, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[root]
	if !ok {
		return localIndex{}, false
	}
	c.ll.MoveToFront(e)
	return c.ix[root], true
}

func (c *indexCache) put(root cid.Cid, ix localIndex) {
	if len(ix.leaves) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[root]; ok {
		return
	}
	c.m[root] = c.ll.PushFront(root)
	c.ix[root] = ix
	c.leaves += len(ix.leaves)
	for c.leaves > c.max {
		old := c.ll.Remove(c.ll.Back()).(cid.Cid)
		c.leaves -= len(c.ix[old].leaves)
		delete(c.m, old)
		delete(c.ix, old)
	}
}
