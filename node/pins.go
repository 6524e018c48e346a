package node

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Pins are the roots a box keeps whatever the eviction says and announces
// again every reprovide interval (what `ore add` and `ore dag import`
// leave). Unpinned, a root's blocks stay until eviction needs their room,
// and its provider records lapse.

// Pin fetches root's whole DAG (what the box lacks) and pins it.
func (n *Node) Pin(ctx context.Context, root cid.Cid) (FetchResult, error) {
	res, err := n.Fetch(ctx, root, nil)
	if err != nil {
		return res, err
	}
	if err := n.store.Pin(ctx, root); err != nil {
		return res, fmt.Errorf("node: pin %s: %w", root, err)
	}
	n.log.Info("pinned", "root", root)
	return res, nil
}

// Unpin drops root from the pins: its blocks become evictable and the box
// stops announcing it. It reports whether root was pinned.
func (n *Node) Unpin(ctx context.Context, root cid.Cid) (bool, error) {
	was, err := n.store.IsPinned(ctx, root)
	if err != nil {
		return false, err
	}
	if !was {
		return false, nil
	}
	if err := n.store.Unpin(ctx, root); err != nil {
		return true, fmt.Errorf("node: unpin %s: %w", root, err)
	}
	n.log.Info("unpinned", "root", root)
	return true, nil
}

// Pins lists the pinned roots.
func (n *Node) Pins(ctx context.Context) ([]cid.Cid, error) { return n.store.Pins(ctx) }
