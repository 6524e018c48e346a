package bitswap

import (
	"sync"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// lateCancels remembers the wants each peer cancelled lately, so that the
// server drops a block the peer no longer wants even after boxo's engine
// took it off its queue. The engine honours a cancel only for a block not
// yet packed into a message; with an upload limit a packed message waits
// its turn at the uplink for seconds (the engine's workers pack up to a
// message each ahead of it), during which the peer often gets the block
// from another box that also had its want, and cancels it here. A block
// whose upload turn comes after the peer's cancel is not sent.
type lateCancels struct {
	mu sync.Mutex
	m  map[peer.ID]map[cid.Cid]time.Time
}

// lateCancelTTL is how long a cancel is remembered: longer than a block
// waits in the send path once packed. maxLateCancels bounds a peer's
// cancels kept (see pruneLocked).
const (
	lateCancelTTL  = time.Minute
	maxLateCancels = 8192
)

func newLateCancels() *lateCancels {
	return &lateCancels{m: make(map[peer.ID]map[cid.Cid]time.Time)}
}

// received notes the cancels in a message from p, and forgets a cancel when
// p wants the block again.
func (l *lateCancels) received(p peer.ID, msg bsmsg.BitSwapMessage) {
	entries := msg.Wantlist()
	if len(entries) == 0 {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.m[p]
	for _, e := range entries {
		if !e.Cancel {
			delete(m, e.Cid)
			continue
		}
		if m == nil {
			m = make(map[cid.Cid]time.Time)
			l.m[p] = m
		}
		m[e.Cid] = now
	}
	if len(m) > maxLateCancels {
		l.pruneLocked(m, now)
	}
}

// pruneLocked drops the cancels past the TTL, and all of them when that
// is not enough (a peer cancelling thousands of wants a minute).
func (l *lateCancels) pruneLocked(m map[cid.Cid]time.Time, now time.Time) {
	for c, at := range m {
		if now.Sub(at) >= lateCancelTTL {
			delete(m, c)
		}
	}
	if len(m) > maxLateCancels {
		clear(m)
	}
}

// cancelled reports whether p cancelled its want for c since it last
// asked for it.
func (l *lateCancels) cancelled(p peer.ID, c cid.Cid) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.m[p][c]
	if ok && time.Since(at) >= lateCancelTTL {
		delete(l.m[p], c)
		return false
	}
	return ok
}

// forget drops what is known of a peer that left.
func (l *lateCancels) forget(p peer.ID) {
	l.mu.Lock()
	delete(l.m, p)
	l.mu.Unlock()
}
