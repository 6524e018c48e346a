package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/heat"
)

// Eviction watermarks: above evictHigh of the quota a box evicts cold
// content down to evictLow.
const (
	evictHigh = 0.90
	evictLow  = 0.80
)

// StoredRoot is a root whose whole DAG is on this box.
type StoredRoot struct {
	Root  cid.Cid   `json:"root"`
	Size  int64     `json:"size"`  // bytes of the DAG's blocks
	Since time.Time `json:"since"` // when it became whole here
}

// recordRoot notes that root's whole DAG is local (after an add or a
// complete fetch), so eviction and heat reports know it.
func (n *Node) recordRoot(ctx context.Context, root cid.Cid, size int64) {
	v := binary.AppendUvarint(nil, uint64(max(size, 0)))
	v = binary.AppendVarint(v, time.Now().Unix())
	if err := n.store.PutMeta(ctx, rootKey(root), v); err != nil {
		n.log.Warn("record stored root", "root", root, "err", err)
	}
}

func rootKey(root cid.Cid) []byte {
	return append(append([]byte(nil), rootPrefix...), root.Bytes()...)
}

// hasRootRecord reports whether root was recorded as whole.
func (n *Node) hasRootRecord(ctx context.Context, root cid.Cid) bool {
	_, ok, err := n.store.GetMeta(ctx, rootKey(root))
	return err == nil && ok
}

// storedRoots lists the roots recorded as whole on this box.
func (n *Node) storedRoots(ctx context.Context) ([]StoredRoot, error) {
	var out []StoredRoot
	err := n.store.ScanMeta(ctx, rootPrefix, func(k, v []byte) error {
		c, err := cid.Cast(k[len(rootPrefix):])
		if err != nil {
			return nil
		}
		size, a := binary.Uvarint(v)
		if a <= 0 {
			return nil
		}
		since, b := binary.Varint(v[a:])
		if b <= 0 {
			return nil
		}
		out = append(out, StoredRoot{Root: c, Size: int64(size), Since: time.Unix(since, 0)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: list stored roots: %w", err)
	}
	return out, nil
}

// EvictResult says what Evict removed.
type EvictResult struct {
	Roots []cid.Cid `json:"roots"`
	Freed int64     `json:"freed"` // bytes of blocks deleted
}

// Evict frees at least need bytes, if it can, by deleting the coldest whole
// roots that nothing protects: not pinned, not held by a replication order,
// not being fetched, and not served in the last two epochs (their blocks
// may be on their way out). Coldness is the bytes served and requested,
// decayed; among equals the oldest goes first. A block shared with a root
// that stays is kept. It returns what it removed; freeing less than need is
// not an error.
func (n *Node) Evict(ctx context.Context, need int64) (EvictResult, error) {
	n.evictMu.Lock()
	defer n.evictMu.Unlock()
	var res EvictResult
	if need <= 0 {
		return res, nil
	}
	roots, err := n.storedRoots(ctx)
	if err != nil {
		return res, err
	}
	now := time.Now()
	type cand struct {
		StoredRoot
		heat float64
	}
	var cands []cand
	keep := make([]cid.Cid, 0, len(roots))
	for _, r := range roots {
		if n.protected(ctx, r.Root) {
			keep = append(keep, r.Root)
			continue
		}
		h := n.sched.served.Get(r.Root, now).Bytes + n.sched.demand.Get(r.Root, now).Bytes
		cands = append(cands, cand{r, h})
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].heat != cands[j].heat {
			return cands[i].heat < cands[j].heat
		}
		return cands[i].Since.Before(cands[j].Since)
	})
	var victims []cid.Cid
	planned := int64(0)
	for _, c := range cands {
		if planned >= need {
			keep = append(keep, c.Root)
			continue
		}
		victims = append(victims, c.Root)
		planned += max(c.Size, 1)
	}
	if len(victims) == 0 {
		return res, nil
	}
	// Blocks of the roots that stay, pins included, are kept.
	pins, err := n.store.Pins(ctx)
	if err != nil {
		return res, fmt.Errorf("node: evict: %w", err)
	}
	kept := make(map[string]struct{})
	for _, r := range append(keep, pins...) {
		if err := n.walkBlocks(ctx, r, func(c cid.Cid) { kept[string(c.Hash())] = struct{}{} }); err != nil {
			return res, fmt.Errorf("node: evict: walk %s: %w", r, err)
		}
	}
	before := n.store.Used()
	for _, v := range victims {
		var drop []cid.Cid
		if err := n.walkBlocks(ctx, v, func(c cid.Cid) {
			if _, ok := kept[string(c.Hash())]; !ok {
				drop = append(drop, c)
			}
		}); err != nil {
			return res, fmt.Errorf("node: evict: walk %s: %w", v, err)
		}
		// Forget the root first: a root without its record is never
		// reported or served as whole, even if the deletes stop halfway.
		if err := n.store.DeleteMeta(ctx, rootKey(v)); err != nil {
			return res, fmt.Errorf("node: evict %s: %w", v, err)
		}
		n.forgetComplete(v)
		for _, c := range drop {
			if err := n.store.DeleteBlock(ctx, c); err != nil {
				return res, fmt.Errorf("node: evict %s: %w", v, err)
			}
		}
		res.Roots = append(res.Roots, v)
		n.log.Info("evicted", "root", v, "blocks", len(drop))
	}
	res.Freed = before - n.store.Used()
	n.metrics.evicted.Add(float64(len(res.Roots)))
	n.metrics.evictedBytes.Add(float64(res.Freed))
	return res, nil
}

// protected reports whether root must stay.
func (n *Node) protected(ctx context.Context, root cid.Cid) bool {
	if pinned, err := n.store.IsPinned(ctx, root); err != nil || pinned {
		return true // when in doubt, keep
	}
	if st, _, ok := n.sched.orderOf(root); ok && (st == heat.OrderHeld || st == heat.OrderFetching) {
		return true
	}
	if _, ok, err := n.store.GetMeta(ctx, append(append([]byte(nil), holdPrefix...), root.Bytes()...)); err != nil || ok {
		return true
	}
	return n.fetching(root) || n.sched.serving(root)
}

// evictInterval is how often a box checks its store against the
// watermark.
const evictInterval = 10 * time.Second

// evictOverWatermark evicts cold content when the store is above the high
// watermark of its quota.
func (n *Node) evictOverWatermark(ctx context.Context) error {
	q, used := n.store.Quota(), n.store.Used()
	if float64(used) < evictHigh*float64(q) {
		return nil
	}
	_, err := n.Evict(ctx, used-int64(evictLow*float64(q)))
	return err
}

// walkBlocks calls fn for every block of root's DAG that is local, reading
// only the inner (dag-pb) blocks; missing blocks are skipped.
func (n *Node) walkBlocks(ctx context.Context, root cid.Cid, fn func(cid.Cid)) error {
	seen := map[cid.Cid]struct{}{root: {}}
	queue := []cid.Cid{root}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		has, err := n.store.Has(ctx, c)
		if err != nil {
			return err
		}
		if !has {
			continue
		}
		fn(c)
		if !hasLinks(c) {
			continue
		}
		b, err := n.store.Get(ctx, c)
		if err != nil {
			return err
		}
		links, err := linkCIDs(b)
		if err != nil {
			continue // not a DAG we can walk: its block alone goes
		}
		for _, l := range links {
			if _, ok := seen[l]; !ok {
				seen[l] = struct{}{}
				queue = append(queue, l)
			}
		}
	}
	return nil
}

// localSize is the bytes of root's local blocks.
func (n *Node) localSize(ctx context.Context, root cid.Cid) (int64, error) {
	var total int64
	var ferr error
	err := n.walkBlocks(ctx, root, func(c cid.Cid) {
		if sz, err := n.store.GetSize(ctx, c); err == nil {
			total += int64(sz)
		} else if ferr == nil {
			ferr = err
		}
	})
	if err == nil {
		err = ferr
	}
	return total, err
}

// RootInfo is a stored root as `ore status` shows it.
type RootInfo struct {
	Root     cid.Cid `json:"root"`
	Size     int64   `json:"size"`
	Pinned   bool    `json:"pinned"`
	Requests float64 `json:"requests"`     // requests made through this box, decayed
	Served   float64 `json:"served_bytes"` // bytes this box delivered, decayed
	Order    string  `json:"order,omitempty"`
	Until    uint64  `json:"order_until,omitempty"` // last epoch the order holds it
}

// Roots lists the content stored whole on this box with its heat and the
// orders that hold it, hottest first, and the orders still fetching.
func (n *Node) Roots(ctx context.Context) ([]RootInfo, error) {
	roots, err := n.storedRoots(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	seen := make(map[cid.Cid]bool)
	var out []RootInfo
	add := func(c cid.Cid, size int64) {
		seen[c] = true
		ri := RootInfo{Root: c, Size: size, Requests: n.sched.demand.Get(c, now).Requests, Served: n.sched.served.Get(c, now).Bytes}
		ri.Pinned, _ = n.store.IsPinned(ctx, c)
		if st, until, ok := n.sched.orderOf(c); ok {
			ri.Order, ri.Until = st.String(), until
		}
		out = append(out, ri)
	}
	for _, r := range roots {
		add(r.Root, r.Size)
	}
	for _, c := range n.sched.orderRoots() {
		if !seen[c] {
			add(c, 0)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Served+out[i].Requests > out[j].Served+out[j].Requests })
	return out, nil
}

// orderOf is the state of the order on root, if any.
func (s *sched) orderOf(root cid.Cid) (heat.State, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[root]
	if o == nil {
		return 0, 0, false
	}
	return o.state, o.until, true
}

func (s *sched) orderRoots() []cid.Cid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cid.Cid, 0, len(s.orders))
	for c := range s.orders {
		out = append(out, c)
	}
	return out
}
