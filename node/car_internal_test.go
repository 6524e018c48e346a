package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
)

// chain stores on n a chain of depth dag-pb nodes, each linking the next,
// and returns its head.
func chain(t *testing.T, n *Node, depth int) cid.Cid {
	t.Helper()
	nd := merkledag.NodeWithData([]byte("the bottom"))
	all := []blocks.Block{nd}
	for range depth - 1 {
		nd = linking(t, []cid.Cid{nd.Cid()})
		all = append(all, nd)
	}
	putAll(t, n, all...)
	return nd.Cid()
}

// carBlocks counts the blocks of a CARv1 stream.
func carBlocks(t *testing.T, r io.Reader) int {
	t.Helper()
	br, err := car.NewBlockReader(r)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for {
		if _, err := br.Next(); errors.Is(err, io.EOF) {
			return count
		} else if err != nil {
			t.Fatal(err)
		}
		count++
	}
}

// TestExportCARWalksADeepChain: a chain of maxDAGDepth nodes exports
// whole, walked without recursion; one node deeper fails with
// ErrDAGTooLarge naming the limit, in the fetch and in the walk alike.
func TestExportCARWalksADeepChain(t *testing.T) {
	n := newTestBox(t, WithStallTimeout(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	deepest := chain(t, n, maxDAGDepth)
	var out bytes.Buffer
	if err := n.ExportCAR(ctx, deepest, &out); err != nil {
		t.Fatalf("export of a %d-deep chain: %v", maxDAGDepth, err)
	}
	if got := carBlocks(t, &out); got != maxDAGDepth {
		t.Fatalf("the CAR of a %d-deep chain holds %d blocks", maxDAGDepth, got)
	}

	tooDeep := chain(t, n, maxDAGDepth+1)
	err := n.ExportCAR(ctx, tooDeep, io.Discard)
	if !errors.Is(err, ErrDAGTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(maxDAGDepth)) {
		t.Fatalf("export of a %d-deep chain: %v, want ErrDAGTooLarge naming the limit %d", maxDAGDepth+1, err, maxDAGDepth)
	}
	for _, depth := range []int{maxDAGDepth + 1, 100_000} {
		head := tooDeep
		if depth != maxDAGDepth+1 {
			head = chain(t, n, depth)
		}
		err = n.walkLocal(ctx, head, func(blocks.Block) error { return nil })
		if !errors.Is(err, ErrDAGTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(maxDAGDepth)) {
			t.Fatalf("walk of a %d-deep chain: %v, want ErrDAGTooLarge naming the limit %d", depth, err, maxDAGDepth)
		}
	}
}

// TestWalkLocalVisitsInDepthFirstOrder: parents come before their
// children, each block once, a subtree whole before its next sibling
// (what a CAR's readers expect and the recursive walk did).
func TestWalkLocalVisitsInDepthFirstOrder(t *testing.T) {
	n := newTestBox(t)
	a, b, c := rawBlock(t, []byte("a")), rawBlock(t, []byte("b")), rawBlock(t, []byte("c"))
	left := linking(t, []cid.Cid{a.Cid(), b.Cid()})
	right := linking(t, []cid.Cid{b.Cid(), c.Cid()})
	root := linking(t, []cid.Cid{left.Cid(), a.Cid(), right.Cid()})
	putAll(t, n, a, b, c, left, right, root)
	var got []cid.Cid
	if err := n.walkLocal(context.Background(), root.Cid(), func(b blocks.Block) error {
		got = append(got, b.Cid())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []cid.Cid{root.Cid(), left.Cid(), a.Cid(), b.Cid(), right.Cid(), c.Cid()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("walk order %v, want %v", got, want)
	}
}
