package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

// ImportResult says what a CAR import stored.
type ImportResult struct {
	Roots  []cid.Cid `json:"roots"`
	Blocks int       `json:"blocks"`
	Bytes  int64     `json:"bytes"`
}

// ImportCAR stores every block of a CAR stream (CARv1 or CARv2), checking
// each block against its CID, then pins and announces its roots. A root
// whose DAG is not complete in the store is refused: the import stores the
// blocks but pins nothing, so no pin ever points at a missing block.
func (n *Node) ImportCAR(ctx context.Context, r io.Reader) (ImportResult, error) {
	br, err := car.NewBlockReader(r, car.WithTrustedCAR(false))
	if err != nil {
		return ImportResult{}, fmt.Errorf("node: not a CAR file: %w", err)
	}
	if len(br.Roots) == 0 {
		return ImportResult{}, errors.New("node: the CAR names no root")
	}
	res := ImportResult{Roots: br.Roots}
	var batch []blocks.Block
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := n.store.PutMany(ctx, batch); err != nil {
			return fmt.Errorf("node: import: %w", err)
		}
		batch, size = batch[:0], 0
		return nil
	}
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("node: import: block %d: %w", res.Blocks+1, err)
		}
		batch = append(batch, b)
		res.Blocks++
		res.Bytes += int64(len(b.RawData()))
		if size += len(b.RawData()); size >= fetchBatchBytes {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	for _, root := range br.Roots {
		if err := n.walkLocal(ctx, root, func(blocks.Block) error { return nil }); err != nil {
			return res, fmt.Errorf("node: import: the CAR does not hold the whole DAG of root %s: %w", root, err)
		}
	}
	for _, root := range br.Roots {
		if err := n.store.Pin(ctx, root); err != nil {
			return res, err
		}
		n.provideAsync(root)
	}
	n.log.Info("imported CAR", "roots", br.Roots, "blocks", res.Blocks)
	return res, nil
}

// ExportCAR fetches root's DAG and writes it as a CARv1 stream, blocks in
// depth-first order, root first: any IPFS tool can verify it.
func (n *Node) ExportCAR(ctx context.Context, root cid.Cid, w io.Writer) error {
	if _, err := n.Fetch(ctx, root, nil); err != nil {
		return err
	}
	cw, err := storage.NewWritable(w, []cid.Cid{root}, car.WriteAsCarV1(true))
	if err != nil {
		return fmt.Errorf("node: export: %w", err)
	}
	if err := n.walkLocal(ctx, root, func(b blocks.Block) error {
		return cw.Put(ctx, b.Cid().KeyString(), b.RawData())
	}); err != nil {
		return fmt.Errorf("node: export %s: %w", root, err)
	}
	return cw.Finalize()
}

// walkLocal visits root's DAG depth-first from local blocks, each block
// once, parents before their children.
//
// It walks with a stack of its own, not by recursion, and holds for each
// node on the path from the root only its CID and the index of the next
// link: a node's links are read again from the store when the walk comes
// back to it. So a chain of any depth costs neither goroutine stack nor
// more than maxDAGDepth small frames, and a path of wide nodes does not
// hold every node's links at once. Paths deeper than maxDAGDepth, and
// DAGs of more than Config.MaxFetchBlocks blocks, fail with
// ErrDAGTooLarge.
func (n *Node) walkLocal(ctx context.Context, root cid.Cid, visit func(blocks.Block) error) error {
	type frame struct {
		c     cid.Cid
		links []cid.Cid // nil once a child is entered: read again on the way back
		next  int
	}
	var (
		stack   []frame
		seen    = map[cid.Cid]struct{}{}
		visited int64
	)
	// enter visits c, a block at depth len(stack)+1, and pushes it if it
	// has links.
	enter := func(c cid.Cid) error {
		if _, ok := seen[c]; ok {
			return nil
		}
		if depth := len(stack) + 1; depth > maxDAGDepth {
			return fmt.Errorf("%w: block %s is at depth %d, deeper than the %d levels a walk follows (UnixFS DAGs are a few levels deep, plus one a directory)", ErrDAGTooLarge, c, depth, maxDAGDepth)
		}
		if visited++; visited > n.cfg.MaxFetchBlocks {
			return fmt.Errorf("%w: %s has more than %d blocks; a box that handles DAGs this large raises the limit with node.WithMaxFetchBlocks", ErrDAGTooLarge, root, n.cfg.MaxFetchBlocks)
		}
		seen[c] = struct{}{}
		if err := checkCodec(c); err != nil {
			return err
		}
		b, err := n.localBlock(ctx, c)
		if err != nil {
			return err
		}
		if err := visit(b); err != nil {
			return err
		}
		if !hasLinks(c) {
			return nil
		}
		links, err := linkCIDs(b)
		if err != nil {
			return err
		}
		if len(links) > 0 {
			if top := len(stack) - 1; top >= 0 {
				stack[top].links = nil
			}
			stack = append(stack, frame{c: c, links: links})
		}
		return nil
	}
	if err := enter(root); err != nil {
		return err
	}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		top := &stack[len(stack)-1]
		if top.links == nil {
			b, err := n.localBlock(ctx, top.c)
			if err != nil {
				return err
			}
			if top.links, err = linkCIDs(b); err != nil {
				return err
			}
		}
		if top.next == len(top.links) {
			stack = stack[:len(stack)-1]
			continue
		}
		c := top.links[top.next]
		top.next++
		if err := enter(c); err != nil {
			return err
		}
	}
	return nil
}

// localBlock reads c from the store; an empty block need not be there.
func (n *Node) localBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := n.store.Get(ctx, c)
	if err != nil {
		if isEmptyBlock(c) {
			return mustBlock(nil, c), nil
		}
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return b, nil
}
