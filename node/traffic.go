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

// traffic counts bitswap blocks per peer, fed by the exchange's hooks.
type traffic struct {
	mu    sync.Mutex
	peers map[peer.ID]*PeerTraffic
}

func newTraffic() *traffic { return &traffic{peers: make(map[peer.ID]*PeerTraffic)} }

func (t *traffic) entry(p peer.ID) *PeerTraffic {
	e := t.peers[p]
	if e == nil {
		e = &PeerTraffic{Peer: p}
		t.peers[p] = e
	}
	return e
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

// Traffic returns the blocks and bytes exchanged with each peer.
func (n *Node) Traffic() []PeerTraffic { return n.traffic.snapshot() }
