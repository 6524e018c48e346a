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

	"github.com/dustin/go-humanize"
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
// owner set, what this month's traffic used, what is left.
type DataCapView struct {
	Cap   int64  `json:"cap"`   // bytes a month the box may move (0: no cap)
	Month string `json:"month"` // the calendar month counted (YYYY-MM, local time)
	Used  int64  `json:"used"`  // bytes counted this month: Served + Gateway + Fetched
	// Where Used went: block bytes sent to other boxes over bitswap, body
	// bytes of the gateway's HTTP responses, block bytes the box fetched.
	Served  int64 `json:"served"`
	Gateway int64 `json:"gateway"`
	Fetched int64 `json:"fetched"`
	Left    int64 `json:"left"`    // bytes left this month (0 with no cap)
	Reached bool  `json:"reached"` // sending and fetching stopped until the month ends
	Resets  int64 `json:"resets_unix"`
}

// ErrDataCapReached: the box's monthly data cap is used up, so it neither
// serves nor fetches until the month ends or the owner raises the cap.
var ErrDataCapReached = errors.New("node: the box's monthly data cap is reached")

// capPath is one of the places the data cap counts bytes at.
type capPath int

const (
	capServed  capPath = iota // blocks bitswap sends to other boxes
	capGateway                // gateway HTTP response bodies
	capFetched                // blocks bitswap receives for the box's fetches
	capPaths
)

// dataCap is the box's one meter of the bytes its line carries in a
// calendar month, and the cap on them: home lines often carry a monthly
// allowance (counted both ways), and the box uses only what the owner
// allows. Every byte of content the box moves passes one of three places,
// and each counts here:
//   - bitswap's send gate (capGate) reserves a block's bytes before it
//     leaves, holding it back when it would pass the cap; new wants are
//     refused once the cap is reached (allow);
//   - the gateway reserves each HTTP body write (gateway.Meter), failing
//     the write, which cuts the response, when it would pass the cap, and
//     answers new requests 503 once it is reached;
//   - a block that arrives is counted when bitswap hands it over (a block
//     on the wire cannot be refused), and fetches refuse to ask for more
//     once the cap is reached (refusal), so the count passes the cap by at
//     most the blocks already asked for.
//
// Protocol chatter (DHT, gossip, receipts, wants) is not counted: it is
// small next to content, and counting it would stop the box from even
// hearing that the month ended.
type dataCap struct {
	path string // "" keeps nothing on disk (boxes without a repo)
	now  func() time.Time
	log  *slog.Logger

	mu          sync.Mutex
	cap         int64
	month       string
	from, until time.Time // the counted month's bounds (zero: not computed yet)
	used        [capPaths]int64
	dirty       bool
}

// dataCapState is what DataCapFile holds. served_bytes kept its name from
// when only bitswap's sends were counted.
type dataCapState struct {
	Month   string `json:"month"`
	Served  int64  `json:"served_bytes"`
	Gateway int64  `json:"gateway_bytes,omitempty"`
	Fetched int64  `json:"fetched_bytes,omitempty"`
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
	if err := json.Unmarshal(b, &st); err != nil || st.Served < 0 || st.Gateway < 0 || st.Fetched < 0 {
		// A damaged count must not lift the cap for the rest of the month
		// without saying so; starting at 0 is the one choice left.
		log.Warn("the data cap's count is damaged: counting this month from 0", "file", d.path, "err", err)
		return d, nil
	}
	if st.Month == d.month {
		d.used = [capPaths]int64{capServed: st.Served, capGateway: st.Gateway, capFetched: st.Fetched}
	}
	return d, nil
}

// rollLocked starts a new month's count when the calendar month changed.
// It runs on every counted write and block, so within the month it only
// compares t with the month's bounds.
func (d *dataCap) rollLocked(t time.Time) {
	if !t.Before(d.from) && t.Before(d.until) {
		return
	}
	if m := monthOf(t); m != d.month {
		d.month, d.used, d.dirty = m, [capPaths]int64{}, true
	}
	y, m, _ := t.Date()
	d.from = time.Date(y, m, 1, 0, 0, 0, 0, t.Location())
	d.until = d.from.AddDate(0, 1, 0)
}

// totalLocked is the month's count over every path.
func (d *dataCap) totalLocked() int64 {
	return d.used[capServed] + d.used[capGateway] + d.used[capFetched]
}

// reachedLocked reports whether the month's cap is used up.
func (d *dataCap) reachedLocked() bool { return d.cap > 0 && d.totalLocked() >= d.cap }

// allow says whether the box takes a new want now (bitswap's request
// filter): none once the cap is reached.
func (d *dataCap) allow(peer.ID, cid.Cid) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rollLocked(d.now())
	return !d.reachedLocked()
}

// refusal is nil while the month's cap has room, and otherwise an error
// wrapping ErrDataCapReached that says what was used and when the box
// moves content again: fetches and the gateway answer it.
func (d *dataCap) refusal() error {
	v := d.view()
	if !v.Reached {
		return nil
	}
	return fmt.Errorf("%w: %s of %s used in %s (served %s, gateway %s, fetched %s); the box sends and fetches no content until %s, or raise the cap (ore config data-cap SIZE, or the dashboard)",
		ErrDataCapReached, humanize.IBytes(uint64(v.Used)), humanize.IBytes(uint64(v.Cap)), v.Month,
		humanize.IBytes(uint64(v.Served)), humanize.IBytes(uint64(v.Gateway)), humanize.IBytes(uint64(v.Fetched)),
		time.Unix(v.Resets, 0).Format("2006-01-02 15:04 MST"))
}

// reserve counts size bytes about to leave on path, unless they would
// take the month past the cap: then nothing is counted and the bytes must
// not leave (bitswap's send gate keeps the block, bounded per peer, and
// drops it when the peer leaves; the gateway fails the write).
func (d *dataCap) reserve(path capPath, size int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rollLocked(d.now())
	if d.cap > 0 && d.totalLocked()+int64(size) > d.cap {
		return false
	}
	d.used[path] += int64(size)
	d.dirty = true
	return true
}

// unreserve gives back bytes reserved on path that did not leave.
func (d *dataCap) unreserve(path capPath, size int) {
	d.mu.Lock()
	d.used[path] = max(0, d.used[path]-int64(size))
	d.dirty = true
	d.mu.Unlock()
}

// add counts size bytes that already crossed the line on path (a block
// received), cap or no cap.
func (d *dataCap) add(path capPath, size int) {
	d.mu.Lock()
	d.rollLocked(d.now())
	d.used[path] += int64(size)
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
	if !g.d.reserve(capServed, size) {
		return false
	}
	if g.next != nil && !g.next.Allow(p, c, size) {
		g.d.unreserve(capServed, size)
		return false
	}
	return true
}

// Decide passes the next gate's three verdicts on (the free tier refuses
// outright what its budget cannot pay) within the month's cap.
func (g capGate) Decide(p peer.ID, c cid.Cid, size int) bitswap.Verdict {
	if !g.d.reserve(capServed, size) {
		return bitswap.Hold
	}
	v := bitswap.Send
	if d, ok := g.next.(bitswap.GateDecider); ok {
		v = d.Decide(p, c, size)
	} else if g.next != nil && !g.next.Allow(p, c, size) {
		v = bitswap.Hold
	}
	if v != bitswap.Send {
		g.d.unreserve(capServed, size)
	}
	return v
}

func (g capGate) Refund(p peer.ID, c cid.Cid, size int) {
	g.d.unreserve(capServed, size)
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
	st := dataCapState{Month: d.month, Served: d.used[capServed], Gateway: d.used[capGateway], Fetched: d.used[capFetched]}
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
	v := DataCapView{Cap: d.cap, Month: d.month, Used: d.totalLocked(),
		Served: d.used[capServed], Gateway: d.used[capGateway], Fetched: d.used[capFetched]}
	if d.cap > 0 {
		v.Left = max(0, d.cap-v.Used)
		v.Reached = d.reachedLocked()
	}
	y, m, _ := t.Date()
	v.Resets = time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location()).Unix()
	return v
}

func (d *dataCap) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_data_cap_bytes", Help: "The monthly data cap on content bytes sent and fetched (0: none)."},
			func() float64 { return float64(d.view().Cap) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_data_cap_used_bytes", Help: "Content bytes sent and fetched this calendar month, counted against the data cap."},
			func() float64 { return float64(d.view().Used) }),
	}
}

// DataCap is the monthly data cap and this month's use.
func (n *Node) DataCap() DataCapView { return n.datacap.view() }

// SetDataCap changes the monthly data cap (content bytes sent and fetched a calendar month;
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

// gatewayMeter is the data cap as the gateway's Meter: response bodies
// count on the gateway's path.
type gatewayMeter struct{ d *dataCap }

func (m gatewayMeter) Refusal() error     { return m.d.refusal() }
func (m gatewayMeter) Reserve(n int) bool { return m.d.reserve(capGateway, n) }
func (m gatewayMeter) Unreserve(n int)    { m.d.unreserve(capGateway, n) }
