package gateway

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// Heat counts requests and bytes per root CID with exponential decay: a
// count recorded one half-life ago weighs half as much as one recorded now.
// It is safe for concurrent use and bounded in size (the coldest roots are
// forgotten first).
type Heat struct {
	halfLife time.Duration
	max      int

	mu sync.Mutex
	m  map[cid.Cid]*heatEntry
}

type heatEntry struct {
	requests, bytes float64
	at              time.Time
}

// HeatEntry is a root's heat at some instant.
type HeatEntry struct {
	Root     cid.Cid `json:"root"`
	Requests float64 `json:"requests"`
	Bytes    float64 `json:"bytes"`
}

// NewHeat returns a heat counter with the given half-life, keeping at most
// max roots.
func NewHeat(halfLife time.Duration, max int) *Heat {
	return &Heat{halfLife: halfLife, max: max, m: make(map[cid.Cid]*heatEntry)}
}

func (h *Heat) decay(e *heatEntry, now time.Time) {
	dt := now.Sub(e.at)
	if dt <= 0 {
		return
	}
	f := math.Exp2(-float64(dt) / float64(h.halfLife))
	e.requests *= f
	e.bytes *= f
	e.at = now
}

// Record adds one request of bytes bytes for root at now.
func (h *Heat) Record(root cid.Cid, bytes int64, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[root]
	if e == nil {
		if len(h.m) >= h.max {
			h.evictLocked(now)
		}
		e = &heatEntry{at: now}
		h.m[root] = e
	}
	h.decay(e, now)
	e.requests++
	e.bytes += float64(bytes)
}

// evictLocked forgets the coldest tenth of the roots.
func (h *Heat) evictLocked(now time.Time) {
	all := h.snapshotLocked(now)
	for _, e := range all[len(all)-max(1, len(all)/10):] {
		delete(h.m, e.Root)
	}
}

// Snapshot returns every root's heat at now, hottest (by bytes) first.
func (h *Heat) Snapshot(now time.Time) []HeatEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshotLocked(now)
}

func (h *Heat) snapshotLocked(now time.Time) []HeatEntry {
	out := make([]HeatEntry, 0, len(h.m))
	for c, e := range h.m {
		h.decay(e, now)
		out = append(out, HeatEntry{Root: c, Requests: e.requests, Bytes: e.bytes})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Root.KeyString() < out[j].Root.KeyString()
	})
	return out
}

// Of returns one root's heat at now.
func (h *Heat) Of(root cid.Cid, now time.Time) HeatEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[root]
	if e == nil {
		return HeatEntry{Root: root}
	}
	h.decay(e, now)
	return HeatEntry{Root: root, Requests: e.requests, Bytes: e.bytes}
}
