package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/bitswap"
)

// DataCapFile keeps the month's served bytes across restarts.
const DataCapFile = "datacap.json"

// dataCapSaveEvery is how often the month's count is written when it
// changed: a crash loses at most this long of counting (Close writes it).
const dataCapSaveEvery = 30 * time.Second

// DataCapView is the monthly data cap as the box applies it: what the
// owner set, what this month's serving used, what is left.
type DataCapView struct {
	Cap     int64  `json:"cap"`     // bytes a month the box may serve (0: no cap)
	Month   string `json:"month"`   // the calendar month counted (YYYY-MM, local time)
	Used    int64  `json:"used"`    // bytes served this month
	Left    int64  `json:"left"`    // bytes left this month (0 with no cap)
	Reached bool   `json:"reached"` // serving stopped until the month ends
	Resets  int64  `json:"resets_unix"`
}

// dataCap counts the bytes the box serves per calendar month and stops
// serving once a cap is reached: home lines often carry a monthly
// allowance, and the box lends only what the owner allows. The count is
// of block bytes that left through bitswap (every byte the box serves to
// other boxes): the send gate (capGate) holds back a block that would
// pass the cap, and new wants are refused once it is reached.
type dataCap struct {
	path string // "" keeps nothing on disk (boxes without a repo)
	now  func() time.Time
	log  *slog.Logger

	mu    sync.Mutex
	cap   int64
	month string
	used  int64
	dirty bool
}

// dataCapState is what DataCapFile holds.
type dataCapState struct {
	Month string `json:"month"`
	Used  int64  `json:"served_bytes"`
}

func monthOf(t time.Time) string { return t.Format("2006-01") }

func newDataCap(dir string, limit int64, now func() time.Time, log *slog.Logger) (*dataCap, error) {
	d := &dataCap{now: now, log: log, cap: limit}
	d.month = monthOf(now())
	if dir == "" {
		return d, nil
	}
	d.path = filepath.Join(dir, DataCapFile)
	b, err := os.ReadFile(d.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("node: read %s: %w", d.path, err)
	}
	var st dataCapState
	if err := json.Unmarshal(b, &st); err != nil || st.Used < 0 {
		// A damaged count must not lift the cap for the rest of the month
		// without saying so; starting at 0 is the one choice left.
		log.Warn("the data cap's count is damaged: counting this month from 0", "file", d.path, "err", err)
		return d, nil
	}
	if st.Month == d.month {
		d.used = st.Used
	}
	return d, nil
}

// rollLocked starts a new month's count when the calendar month changed.
func (d *dataCap) rollLocked(t time.Time) {
	if m := monthOf(t); m != d.month {
		d.month, d.used, d.dirty = m, 0, true
	}
}

// allow says whether the box takes a new want now (bitswap's request
// filter): none once the cap is reached.
func (d *dataCap) allow(peer.ID, cid.Cid) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rollLocked(d.now())
	return d.cap <= 0 || d.used < d.cap
}

// reserve counts size bytes about to leave, unless they would take the
// month past the cap: then the block is held back (bitswap's send gate
// keeps it, bounded per peer, and drops it when the peer leaves).
func (d *dataCap) reserve(size int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rollLocked(d.now())
	if d.cap > 0 && d.used+int64(size) > d.cap {
		return false
	}
	d.used += int64(size)
	d.dirty = true
	return true
}

// unreserve gives back bytes reserved for a block that did not leave.
func (d *dataCap) unreserve(size int) {
	d.mu.Lock()
	d.used = max(0, d.used-int64(size))
	d.dirty = true
	d.mu.Unlock()
}

// capGate is the send gate with the data cap in front: a block leaves only
// if the month's cap has room for it and the next gate (proof of
// delivery's credit window, or none) lets it go. Every block the server
// sends passes here, so the count is of bytes that left, and the cap holds
// to the byte, whatever wants were taken before it was reached.
type capGate struct {
	d    *dataCap
	next bitswap.Gate // nil: none
}

func (g capGate) Allow(p peer.ID, c cid.Cid, size int) bool {
	if !g.d.reserve(size) {
		return false
	}
	if g.next != nil && !g.next.Allow(p, c, size) {
		g.d.unreserve(size)
		return false
	}
	return true
}

// Decide passes the next gate's three verdicts on (the free tier refuses
// outright what its budget cannot pay) within the month's cap.
func (g capGate) Decide(p peer.ID, c cid.Cid, size int) bitswap.Verdict {
	if !g.d.reserve(size) {
		return bitswap.Hold
	}
	v := bitswap.Send
	if d, ok := g.next.(bitswap.GateDecider); ok {
		v = d.Decide(p, c, size)
	} else if g.next != nil && !g.next.Allow(p, c, size) {
		v = bitswap.Hold
	}
	if v != bitswap.Send {
		g.d.unreserve(size)
	}
	return v
}

func (g capGate) Refund(p peer.ID, c cid.Cid, size int) {
	g.d.unreserve(size)
	if r, ok := g.next.(bitswap.GateRefunder); ok {
		r.Refund(p, c, size)
	}
}

// save writes the month's count if it changed.
func (d *dataCap) save() {
	d.mu.Lock()
	if !d.dirty || d.path == "" {
		d.mu.Unlock()
		return
	}
	st := dataCapState{Month: d.month, Used: d.used}
	d.dirty = false
	d.mu.Unlock()
	b, _ := json.Marshal(st)
	if err := writeFileAtomic(d.path, b, 0o600); err != nil {
		d.log.Warn("could not save the data cap's count; it is kept in memory", "err", err)
	}
}

func (d *dataCap) set(limit int64) {
	d.mu.Lock()
	d.cap = limit
	d.mu.Unlock()
}

func (d *dataCap) view() DataCapView {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.now()
	d.rollLocked(t)
	v := DataCapView{Cap: d.cap, Month: d.month, Used: d.used}
	if d.cap > 0 {
		v.Left = max(0, d.cap-d.used)
		v.Reached = d.used >= d.cap
	}
	y, m, _ := t.Date()
	v.Resets = time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location()).Unix()
	return v
}

func (d *dataCap) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_data_cap_bytes", Help: "The monthly data cap on bytes served (0: none)."},
			func() float64 { return float64(d.view().Cap) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_data_cap_used_bytes", Help: "Bytes served this calendar month, counted against the data cap."},
			func() float64 { return float64(d.view().Used) }),
	}
}

// DataCap is the monthly data cap and this month's use.
func (n *Node) DataCap() DataCapView { return n.datacap.view() }

// SetDataCap changes the monthly data cap (bytes served a calendar month;
// 0 lifts it) while the box runs. It does not write config.json: the
// caller that owns the repo's config does (`ore config data-cap`, the
// dashboard).
func (n *Node) SetDataCap(bytes int64) error {
	if bytes < 0 {
		return fmt.Errorf("node: data cap must not be negative, got %d", bytes)
	}
	n.datacap.set(bytes)
	n.log.Info("data cap set", "bytes_per_month", bytes)
	return nil
}
