package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/boxo/ipld/merkledag"
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
// once.
func (n *Node) walkLocal(ctx context.Context, root cid.Cid, visit func(blocks.Block) error) error {
	seen := map[cid.Cid]struct{}{}
	var walk func(c cid.Cid) error
	walk = func(c cid.Cid) error {
		if _, ok := seen[c]; ok {
			return nil
		}
		seen[c] = struct{}{}
		if err := checkCodec(c); err != nil {
			return err
		}
		b, err := n.store.Get(ctx, c)
		if err != nil {
			if isEmptyBlock(c) {
				b = mustBlock(nil, c)
			} else {
				return fmt.Errorf("block %s: %w", c, err)
			}
		}
		if err := visit(b); err != nil {
			return err
		}
		if c.Prefix().Codec != cid.DagProtobuf {
			return nil
		}
		nd, err := merkledag.DecodeProtobufBlock(b)
		if err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		for _, l := range nd.Links() {
			if err := walk(l.Cid); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}
