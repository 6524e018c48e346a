package node

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/orecdn/ore/bitswap"
	"github.com/orecdn/ore/meter"
	"github.com/orecdn/ore/pod"
)

// The free tier: what a box gives bitswap peers that do not speak
// /ore/pod/1.0.0 (Kubo, Helia, Lassie). They never sign receipts, so the
// credit window would hold them back for good after its first 4 MiB; a
// CDN serves them from a free budget instead, as public gateways do:
//
//   - all such peers share one budget, FreeRate bytes per second and
//     FreeDaily bytes per day (UTC), so a new peer ID buys nothing;
//   - each gets a fair share of the rate (FreeRate over the free peers
//     served in the last freeActiveWindow);
//   - a block its share cannot pay within freeMaxWait waits no longer: the
//     peer is told DONT_HAVE (it asks another provider, or again later),
//     as it is once the day's budget is spent, never silence;
//   - their bytes earn nothing (there is no receipt) and count towards heat
//     like any served block;
//   - the box logs once per peer why it holds a peer back (credit window
//     or free budget), and counts it (ore_free_*).
//
// Ore peers (those whose identify lists /ore/pod/1.0.0, or whose protocols
// are not known yet) keep the receipt rules of podService. A box that
// receives from a non-ore server does not try to receipt its blocks.

// Free-tier defaults: a small share of a home uplink for the IPFS world.
const (
	DefaultFreeRate       = 2 << 20   // bytes per second, all non-ore peers together
	DefaultFreeDaily      = 8 << 30   // bytes per UTC day
	SmallFreeRate         = 256 << 10 // on the small profile
	SmallFreeDaily        = 1 << 30
	freeActiveWindow      = 10 * time.Second
	freeMaxWait           = 2 * time.Second // a block waits at most this for its share; beyond: DONT_HAVE
	freeMaxBlock          = 2 << 20         // bitswap's largest block: every bucket holds at least this
	maxFreePeers          = 1 << 14         // free peers tracked; the idlest forgotten (a new ID buys nothing)
	maxLoggedHeldBackPods = 1 << 14         // ore peers whose hold was logged
)

// Reasons a free peer is refused a block (the "reason" label of
// ore_free_refused_blocks_total).
const (
	freeRefusedRate  = "rate"  // its fair share cannot pay the block within freeMaxWait
	freeRefusedDaily = "daily" // the day's budget is spent
)

// speaksPod reports whether p is an ore peer as far as the box knows: its
// identify lists the receipt protocol, or its protocols are unknown yet
// (then the credit window applies, and covers the time identify takes).
func speaksPod(h host.Host, p peer.ID) bool {
	protos, err := h.Peerstore().GetProtocols(p)
	if err != nil || len(protos) == 0 {
		return true
	}
	return slices.Contains(protos, protocol.ID(pod.ProtocolID))
}

// errNotOre marks a receipt not sent: its server does not speak the
// receipt protocol (it is not refused by it either; it never will sign).
var errNotOre = meter.ErrNoReceipts

type freePeer struct {
	lim    *rate.Limiter
	last   time.Time
	wake   bool // a Release is scheduled
	logged bool
}

// freeTier is the send gate: it answers for non-ore peers and hands ore
// peers to the receipt engine's gate.
type freeTier struct {
	isOre   func(peer.ID) bool // speaksPod on the box's host
	inner   bitswap.Gate       // the receipt engine's credit window
	log     *slog.Logger
	rate    float64
	daily   int64
	now     func() time.Time
	release func(peer.ID) // sends what was held for a peer (bitswap's Release)
	after   func(time.Duration, func())

	mu        sync.Mutex
	global    *rate.Limiter
	day       int64 // UTC day of used
	used      int64
	peers     *lru.Cache[peer.ID, *freePeer]
	active    int
	counted   time.Time // when active was counted
	loggedPod *lru.Cache[peer.ID, struct{}]

	sent    prometheus.Counter
	refused *prometheus.CounterVec
	held    prometheus.Counter
}

var (
	_ bitswap.GateDecider  = (*freeTier)(nil)
	_ bitswap.GateRefunder = (*freeTier)(nil)
)

func newFreeTier(h host.Host, inner bitswap.Gate, rateBps, daily int64, log *slog.Logger, reg prometheus.Registerer) (*freeTier, error) {
	peers, err := lru.New[peer.ID, *freePeer](maxFreePeers)
	if err != nil {
		return nil, err
	}
	logged, err := lru.New[peer.ID, struct{}](maxLoggedHeldBackPods)
	if err != nil {
		return nil, err
	}
	f := &freeTier{
		isOre: func(p peer.ID) bool { return speaksPod(h, p) }, inner: inner, log: log, rate: float64(rateBps), daily: daily, now: time.Now,
		after:  func(d time.Duration, fn func()) { time.AfterFunc(d, fn) },
		global: rate.NewLimiter(rate.Limit(rateBps), int(max(rateBps, freeMaxBlock))),
		peers:  peers, loggedPod: logged,
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_free_sent_bytes_total",
			Help: "Bytes sent from the free budget to peers that do not sign receipts (they earn nothing)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_free_refused_blocks_total",
			Help: "Blocks refused (DONT_HAVE) to peers that do not sign receipts: rate (its fair share), daily (the budget is spent)."}, []string{"reason"}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_free_delayed_blocks_total",
			Help: "Blocks to peers that do not sign receipts that waited for their fair share."}),
	}
	for _, r := range []string{freeRefusedRate, freeRefusedDaily} {
		f.refused.WithLabelValues(r)
	}
	peersGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_free_peers",
		Help: fmt.Sprintf("Peers that do not sign receipts the free tier tracks (at most %d).", maxFreePeers)},
		func() float64 { return float64(f.peers.Len()) })
	for _, c := range []prometheus.Collector{f.sent, f.refused, f.held, peersGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: register free-tier metrics: %w", err)
		}
	}
	return f, nil
}

func (f *freeTier) Allow(p peer.ID, c cid.Cid, size int) bool {
	return f.Decide(p, c, size) == bitswap.Send
}

// Decide is bitswap's send gate.
func (f *freeTier) Decide(p peer.ID, c cid.Cid, size int) bitswap.Verdict {
	if f.isOre(p) {
		if f.inner.Allow(p, c, size) {
			return bitswap.Send
		}
		if _, seen, _ := f.loggedPod.PeekOrAdd(p, struct{}{}); !seen {
			f.log.Info("holding a peer back: its unreceipted bytes reached the credit window; it is served again when it signs a receipt", "peer", p)
		}
		return bitswap.Hold
	}
	return f.decideFree(p, size)
}

func (f *freeTier) decideFree(p peer.ID, size int) bitswap.Verdict {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	fp, ok := f.peers.Get(p)
	if !ok {
		fp = &freePeer{lim: rate.NewLimiter(rate.Limit(f.rate), int(max(int64(f.rate), freeMaxBlock)))}
		f.peers.Add(p, fp)
	}
	fp.last = now
	if day := now.UTC().Unix() / 86400; day != f.day {
		f.day, f.used = day, 0
	}
	if f.used+int64(size) > f.daily {
		return f.refuseLocked(p, fp, freeRefusedDaily, "the day's free budget for peers that do not sign receipts is spent")
	}
	// The peer's fair share of the rate: FreeRate over the free peers
	// served lately (recounted at most once a second).
	if now.Sub(f.counted) >= time.Second {
		f.active = 0
		for _, q := range f.peers.Values() {
			if now.Sub(q.last) < freeActiveWindow {
				f.active++
			}
		}
		f.counted = now
	}
	fp.lim.SetLimitAt(now, rate.Limit(f.rate/float64(max(f.active, 1))))
	mine := fp.lim.ReserveN(now, size)
	all := f.global.ReserveN(now, size)
	if !mine.OK() || !all.OK() {
		mine.CancelAt(now)
		all.CancelAt(now)
		return f.refuseLocked(p, fp, freeRefusedRate, "a block larger than the free rate's burst")
	}
	wait := max(mine.DelayFrom(now), all.DelayFrom(now))
	if wait == 0 {
		f.used += int64(size)
		f.sent.Add(float64(size))
		return bitswap.Send
	}
	mine.CancelAt(now)
	all.CancelAt(now)
	if wait > freeMaxWait {
		return f.refuseLocked(p, fp, freeRefusedRate, "its fair share of the free rate is spent")
	}
	// Within its share soon: hold the block, and release the peer when
	// the tokens are there.
	f.held.Inc()
	if !fp.wake && f.release != nil {
		fp.wake = true
		f.after(wait, func() {
			f.mu.Lock()
			fp.wake = false
			f.mu.Unlock()
			f.release(p)
		})
	}
	return bitswap.Hold
}

// refuseLocked answers DONT_HAVE, logging the first refusal of each peer.
func (f *freeTier) refuseLocked(p peer.ID, fp *freePeer, reason, why string) bitswap.Verdict {
	f.refused.WithLabelValues(reason).Inc()
	if !fp.logged {
		fp.logged = true
		f.log.Info("refusing blocks to a peer that does not sign receipts (DONT_HAVE)", "peer", p, "why", why,
			"free_rate", f.rate, "free_daily", f.daily)
	}
	return bitswap.DontHave
}

// Refund gives back what Decide counted for a block that did not leave.
func (f *freeTier) Refund(p peer.ID, c cid.Cid, size int) {
	if f.isOre(p) {
		if r, ok := f.inner.(bitswap.GateRefunder); ok {
			r.Refund(p, c, size)
		}
		return
	}
	f.mu.Lock()
	f.used = max(f.used-int64(size), 0)
	f.mu.Unlock()
}

// isNotOre reports whether err says a receipt was not sent to a non-ore
// server.
func isNotOre(err error) bool { return errors.Is(err, errNotOre) }
