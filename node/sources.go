package node

import (
	"sync"

	"github.com/ipfs/boxo/peering"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sourceTag protects the connections to the boxes the box's fetches chose
// as sources. It is the tag boxo's peering service protects its peers
// with: the connection manager keeps such a connection, and bitswap's
// broadcast control (bitswap.New enables it) sends the box's broadcast
// wants to it as to a peered peer, so a fetch's first wants reach the
// sources it dialled and not every box it happens to be connected to.
const sourceTag = peering.ConnmgrTag

// sourceRefs counts, per peer, the running fetches that hold it as a
// source: one tag serves them all, and the last to let go unprotects.
type sourceRefs struct {
	mu sync.Mutex
	n  map[peer.ID]int
}

// holdSource protects the connection to p for one more fetch.
func (n *Node) holdSource(p peer.ID) {
	s := &n.sources
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = make(map[peer.ID]int)
	}
	if s.n[p]++; s.n[p] == 1 {
		n.host.ConnManager().Protect(p, sourceTag)
	}
}

// dropSource releases one fetch's hold on p.
func (n *Node) dropSource(p peer.ID) {
	s := &n.sources
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[p] == 0 {
		return
	}
	if s.n[p]--; s.n[p] == 0 {
		delete(s.n, p)
		n.host.ConnManager().Unprotect(p, sourceTag)
	}
}
