package committee

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Chain sync is priced per peer. Any peer may ask a coordinator for the
// final blocks (ChainProtocol), and one request of a few bytes asks for up
// to syncBatch of them, megabytes each: unbounded, a peer would make the
// committee send the chain over and over. Each peer outside the committee
// therefore has
//
//   - a token bucket of blocks: syncBurst at once, then syncRate a second.
//     A block the bucket cannot pay waits for its token (the stream slows
//     down: an honest box syncing a long chain just takes longer); one that
//     would wait more than syncMaxWait ends the stream with a reset, which
//     the peer sees as an error, never as a shorter chain.
//   - at most syncStreams chain streams open at once; one more is reset at
//     once.
//
// Members are not limited: they fetch from each other to repair
// signatures and to catch up after a snapshot (repair.go, fsm.Restore).
const (
	syncRate    = 200             // blocks a second per peer, after the burst
	syncBurst   = 2 * syncBatch   // a young chain syncs at once
	syncStreams = 2               // chain streams open per peer
	syncMaxWait = 5 * time.Second // the longest a block waits for its token
	// syncPeers bounds the peers the limiter remembers; beyond it, peers
	// with a full bucket and no stream open are forgotten (they lose
	// nothing: a new bucket is full).
	syncPeers = 4096
)

// syncLimiter keeps the per-peer limits of chain sync.
type syncLimiter struct {
	rate    float64 // tokens (blocks) a second
	burst   float64
	streams int
	maxWait time.Duration
	now     func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*syncBucket
}

type syncBucket struct {
	tokens  float64
	last    time.Time // when tokens was last brought up to date
	streams int
}

func newSyncLimiter(now func() time.Time) *syncLimiter {
	return &syncLimiter{rate: syncRate, burst: syncBurst, streams: syncStreams, maxWait: syncMaxWait, now: now,
		peers: make(map[peer.ID]*syncBucket)}
}

// bucket returns p's bucket, brought up to now (l.mu held).
func (l *syncLimiter) bucket(p peer.ID, now time.Time) *syncBucket {
	b := l.peers[p]
	if b == nil {
		if len(l.peers) >= syncPeers {
			l.prune(now)
		}
		b = &syncBucket{tokens: l.burst, last: now}
		l.peers[p] = b
		return b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	return b
}

// prune forgets the peers that would get a new bucket as full as theirs.
func (l *syncLimiter) prune(now time.Time) {
	for p, b := range l.peers {
		if b.streams == 0 && b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.peers, p)
		}
	}
}

// open takes one of p's stream slots; false if p has all open.
func (l *syncLimiter) open(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(p, l.now())
	if b.streams >= l.streams {
		return false
	}
	b.streams++
	return true
}

// close gives back a slot open took.
func (l *syncLimiter) close(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.peers[p]; b != nil && b.streams > 0 {
		b.streams--
	}
}

// opened reports how many streams p has open.
func (l *syncLimiter) opened(p peer.ID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.peers[p]; b != nil {
		return b.streams
	}
	return 0
}

// take spends a token of p for one block and returns how long the block
// must wait for it; false (and nothing spent) if longer than maxWait.
func (l *syncLimiter) take(p peer.ID) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(p, l.now())
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	if l.rate <= 0 {
		return 0, false
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	if wait > l.maxWait {
		return 0, false
	}
	b.tokens-- // owed: the tokens that come during the wait pay it
	return wait, true
}

// syncMetrics count what chain sync served and refused.
type syncMetrics struct {
	served  prometheus.Counter
	limited *prometheus.CounterVec
}

func newSyncMetrics() syncMetrics {
	m := syncMetrics{
		served: prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_ledger_chain_blocks_served_total",
			Help: "Final blocks this coordinator sent over /ore/chain/1.0.0."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_ledger_chain_sync_limited_total",
			Help: "Chain sync streams limited, by how: paced (a block waited for the peer's tokens), rate (reset: it would have waited too long), streams (reset: the peer had its most streams open)."},
			[]string{"how"}),
	}
	for _, h := range []string{"paced", "rate", "streams"} {
		m.limited.WithLabelValues(h)
	}
	return m
}
