package node

import (
	"sort"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerTraffic is what a box exchanged with one peer since it started.
type PeerTraffic struct {
	Peer           peer.ID `json:"peer"`
	BytesSent      int64   `json:"bytes_sent"`
	BlocksSent     int64   `json:"blocks_sent"`
	BytesReceived  int64   `json:"bytes_received"`
	BlocksReceived int64   `json:"blocks_received"`
}

// maxTrafficPeers bounds the peers traffic counts for. Any peer that asks
// for a block or sends one gets an entry, and a box runs for months: past
// the bound, a new peer pushes out the one that exchanged the fewest bytes
// (a newcomer, often), so the peers that matter stay.
const maxTrafficPeers = 4096

// traffic counts bitswap blocks per peer, fed by the exchange's hooks.
type traffic struct {
	mu    sync.Mutex
	peers map[peer.ID]*PeerTraffic
}

func newTraffic() *traffic { return &traffic{peers: make(map[peer.ID]*PeerTraffic)} }

func (t *traffic) entry(p peer.ID) *PeerTraffic {
	e := t.peers[p]
	if e == nil {
		if len(t.peers) >= maxTrafficPeers {
			t.evictLocked()
		}
		e = &PeerTraffic{Peer: p}
		t.peers[p] = e
	}
	return e
}

// evictLocked forgets the peer that exchanged the fewest bytes.
func (t *traffic) evictLocked() {
	var (
		least peer.ID
		bytes int64
	)
	for p, e := range t.peers {
		if b := e.BytesSent + e.BytesReceived; least == "" || b < bytes {
			least, bytes = p, b
		}
	}
	delete(t.peers, least)
}

func (t *traffic) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
}

func (t *traffic) sent(p peer.ID, b blocks.Block) {
	t.mu.Lock()
	e := t.entry(p)
	e.BytesSent += int64(len(b.RawData()))
	e.BlocksSent++
	t.mu.Unlock()
}

func (t *traffic) received(p peer.ID, b blocks.Block) {
	t.mu.Lock()
	e := t.entry(p)
	e.BytesReceived += int64(len(b.RawData()))
	e.BlocksReceived++
	t.mu.Unlock()
}

func (t *traffic) snapshot() []PeerTraffic {
	t.mu.Lock()
	out := make([]PeerTraffic, 0, len(t.peers))
	for _, e := range t.peers {
		out = append(out, *e)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

// Traffic returns the blocks and bytes exchanged with each peer, for at
// most maxTrafficPeers peers (those that exchanged the most bytes).
func (n *Node) Traffic() []PeerTraffic { return n.traffic.snapshot() }
