package node

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// PathBytes are block bytes by the kind of connection they travelled on:
// direct (dialled), hole punched (a direct connection hole punching
// opened) or relayed (through a relay: bitswap never uses a relayed
// connection, so these stay 0 unless that changes).
type PathBytes struct {
	SentDirect          uint64 `json:"sent_direct"`
	SentHolePunched     uint64 `json:"sent_holepunched"`
	SentRelayed         uint64 `json:"sent_relayed"`
	ReceivedDirect      uint64 `json:"received_direct"`
	ReceivedHolePunched uint64 `json:"received_holepunched"`
	ReceivedRelayed     uint64 `json:"received_relayed"`
}

// Paths a block travels on, as ore_block_bytes_total labels them.
const (
	pathDirect      = "direct"
	pathHolePunched = "holepunched"
	pathRelayed     = "relayed"
)

var paths = []string{pathDirect, pathHolePunched, pathRelayed}

// pathCounters count block bytes by direction and path.
type pathCounters struct {
	m *prometheus.CounterVec
	// n[0] sent, n[1] received; by the index of the path in paths.
	n [2][3]atomic.Uint64
	c [2][3]prometheus.Counter
}

func (p *pathCounters) init() {
	for d, dir := range []string{"sent", "received"} {
		for i, path := range paths {
			p.c[d][i] = p.m.WithLabelValues(dir, path)
		}
	}
}

func (p *pathCounters) add(received bool, path string, n int) {
	d := 0
	if received {
		d = 1
	}
	i := slices.Index(paths, path)
	p.n[d][i].Add(uint64(n))
	p.c[d][i].Add(float64(n))
}

func (p *pathCounters) totals() PathBytes {
	return PathBytes{
		SentDirect: p.n[0][0].Load(), SentHolePunched: p.n[0][1].Load(), SentRelayed: p.n[0][2].Load(),
		ReceivedDirect: p.n[1][0].Load(), ReceivedHolePunched: p.n[1][1].Load(), ReceivedRelayed: p.n[1][2].Load(),
	}
}

// maxPunchedPeers bounds the peers whose hole-punched connections are
// remembered; past it the map starts again (a connection then counts as
// direct, which it is).
const maxPunchedPeers = 4096

// markPunched remembers the direct connections to p opened since start,
// when a hole punch with p began: those hole punching opened. go-libp2p
// does not mark them; a direct dial that raced the punch would be counted
// with them, which is as direct.
func (r *reach) markPunched(p peer.ID, start time.Time) {
	hp := r.relays.host.Load()
	if hp == nil {
		return
	}
	var ids []string
	for _, c := range (*hp).Network().ConnsToPeer(p) {
		if !c.Stat().Limited && !c.Stat().Opened.Before(start.Add(-time.Second)) {
			ids = append(ids, c.ID())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.punched == nil || len(r.punched) >= maxPunchedPeers {
		r.punched = make(map[peer.ID][]string)
	}
	r.punched[p] = ids
}

// pathTo is the path a block to or from p travels on now: over a direct
// connection (hole punched or not) when the box has one to p, over a
// relay when it has only relayed ones. Bitswap's streams take a direct
// connection and never a relayed one (go-libp2p refuses them streams that
// do not allow limited connections), so a block counted as relayed means
// that changed. A block from a peer already gone counts as direct.
func (r *reach) pathTo(p peer.ID) string {
	hp := r.relays.host.Load()
	if hp == nil {
		return pathDirect
	}
	conns := (*hp).Network().ConnsToPeer(p)
	r.mu.Lock()
	punched := r.punched[p]
	r.mu.Unlock()
	path := ""
	for _, c := range conns {
		switch {
		case c.Stat().Limited:
			if path == "" {
				path = pathRelayed
			}
		case slices.Contains(punched, c.ID()):
			path = pathHolePunched
		default:
			if path != pathHolePunched {
				path = pathDirect
			}
		}
	}
	if path == "" {
		return pathDirect
	}
	return path
}

// countBlock counts a block's bytes sent to or received from p by path.
func (r *reach) countBlock(p peer.ID, received bool, n int) {
	r.paths.add(received, r.pathTo(p), n)
}
