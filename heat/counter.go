package heat

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// Counter counts requests and bytes per root CID with exponential decay: a
// count recorded one half-life ago weighs half as much as one recorded now.
// It is safe for concurrent use and bounded in size: when full, it forgets
// the coldest tenth of its roots. It never reads the clock; callers pass now.
type Counter struct {
	halfLife time.Duration
	max      int

	mu sync.Mutex
	m  map[cid.Cid]*counted
}

type counted struct {
	requests, bytes float64
	at              time.Time // decayed to
	last            time.Time // of the last Record or AddBytes
}

// Entry is a root's heat at some instant.
type Entry struct {
	Root     cid.Cid `json:"root"`
	Requests float64 `json:"requests"`
	Bytes    float64 `json:"bytes"`
}

// NewCounter returns a counter with the given half-life that keeps at most
// maxRoots roots. It panics if halfLife or maxRoots is not positive.
func NewCounter(halfLife time.Duration, maxRoots int) *Counter {
	if halfLife <= 0 || maxRoots <= 0 {
		panic(fmt.Sprintf("heat: NewCounter(%v, %d): half-life and size must be positive", halfLife, maxRoots))
	}
	return &Counter{halfLife: halfLife, max: maxRoots, m: make(map[cid.Cid]*counted)}
}

func (c *Counter) decay(e *counted, now time.Time) {
	dt := now.Sub(e.at)
	if dt <= 0 {
		return
	}
	f := math.Exp2(-float64(dt) / float64(c.halfLife))
	e.requests *= f
	e.bytes *= f
	e.at = now
}

// Record adds one request of bytes bytes for root at now.
func (c *Counter) Record(root cid.Cid, bytes int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryLocked(root, now)
	e.requests++
	e.bytes += float64(bytes)
	e.last = now
}

// AddBytes adds bytes bytes for root at now without counting a request:
// the rest of a delivery whose start Record counted.
func (c *Counter) AddBytes(root cid.Cid, bytes int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryLocked(root, now)
	e.bytes += float64(bytes)
	e.last = now
}

// Last returns when root was last recorded (false if the counter does not
// know it).
func (c *Counter) Last(root cid.Cid) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[root]
	if e == nil {
		return time.Time{}, false
	}
	return e.last, true
}

// entryLocked returns root's counts decayed to now, making room for a new
// root if it must.
func (c *Counter) entryLocked(root cid.Cid, now time.Time) *counted {
	e := c.m[root]
	if e == nil {
		if len(c.m) >= c.max {
			c.evictLocked(now)
		}
		e = &counted{at: now}
		c.m[root] = e
	}
	c.decay(e, now)
	return e
}

// evictLocked forgets the coldest tenth of the roots (at least one).
func (c *Counter) evictLocked(now time.Time) {
	all := c.snapshotLocked(now)
	for _, e := range all[len(all)-max(1, len(all)/10):] {
		delete(c.m, e.Root)
	}
}

// Snapshot returns every root's heat at now, hottest first: by requests,
// then bytes, then root.
func (c *Counter) Snapshot(now time.Time) []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked(now)
}

func (c *Counter) snapshotLocked(now time.Time) []Entry {
	out := make([]Entry, 0, len(c.m))
	for r, e := range c.m {
		c.decay(e, now)
		out = append(out, Entry{Root: r, Requests: e.requests, Bytes: e.bytes})
	}
	sort.Slice(out, func(i, j int) bool { return hotter(out[i], out[j]) })
	return out
}

func hotter(a, b Entry) bool {
	if a.Requests != b.Requests {
		return a.Requests > b.Requests
	}
	if a.Bytes != b.Bytes {
		return a.Bytes > b.Bytes
	}
	return a.Root.KeyString() < b.Root.KeyString()
}

// Get returns one root's heat at now (zero if the counter does not know it).
func (c *Counter) Get(root cid.Cid, now time.Time) Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[root]
	if e == nil {
		return Entry{Root: root}
	}
	c.decay(e, now)
	return Entry{Root: root, Requests: e.requests, Bytes: e.bytes}
}

// Forget drops root's counts.
func (c *Counter) Forget(root cid.Cid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, root)
}

// Len returns the number of roots the counter holds.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Top turns a snapshot into a report's Heat list: the MaxHeat hottest roots
// (by requests, then bytes), counts rounded to the nearest integer, without
// roots whose requests round to zero.
func Top(entries []Entry) []RootHeat {
	es := append([]Entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return hotter(es[i], es[j]) })
	out := make([]RootHeat, 0, min(len(es), MaxHeat))
	seen := make(map[cid.Cid]bool, cap(out))
	for _, e := range es {
		if len(out) == MaxHeat {
			break
		}
		req := round(e.Requests)
		if req == 0 || !e.Root.Defined() || seen[e.Root] {
			continue
		}
		seen[e.Root] = true
		out = append(out, RootHeat{Root: e.Root, Requests: req, Bytes: round(e.Bytes)})
	}
	return out
}

// round rounds a non-negative count to the nearest uint64, saturating.
func round(f float64) uint64 {
	switch {
	case !(f > 0): // negative or NaN
		return 0
	case f >= math.MaxUint64:
		return math.MaxUint64
	}
	return uint64(math.Round(f))
}
