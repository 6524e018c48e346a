package node

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Relays carry signalling, never bulk data. A box that AutoNAT finds
// public runs a circuit v2 relay; a box behind a NAT reserves a slot on
// one or two of them and announces the relayed addresses, so that anyone
// can reach it first. Over the relayed connection the two boxes run
// identify and DCUtR (hole punching); bitswap ignores limited (relayed)
// connections, so blocks flow only once a direct connection is open. The
// limits below are sized for that signalling: a relayed connection that
// carried bulk data would spend the relay's uplink on somebody else's
// transfer, for which the relay is not paid.
const (
	// relayCircuitData is what a relayed connection carries each way
	// before the relay resets it: identify (~2 KiB with a signed peer
	// record), DCUtR's two CONNECT messages and SYNC (<1 KiB), and a DHT
	// or receipt message or two, with room to spare.
	relayCircuitData = 128 << 10
	// relayCircuitDuration bounds a relayed connection's life: DCUtR
	// takes an RTT or two plus up to three attempts, well under a
	// minute, and a relayed connection is not kept for anything else.
	relayCircuitDuration = 2 * time.Minute
	// relayReservations is how many boxes behind NATs a public box holds
	// slots for (go-libp2p's default), relayReservationsSmall on a
	// small-memory box. A reservation costs a few hundred bytes and a
	// refresh every few minutes; circuits cost their buffers.
	relayReservations      = 128
	relayReservationsSmall = 32
	// relayCircuitsPerPeer is how many relayed connections to one
	// reserved box run at once: one per box reaching it at the same time.
	relayCircuitsPerPeer = 16

	// A box behind a NAT keeps reservations on relayWanted relays. It
	// asks its relay sources again every relaySourceInterval while it has
	// none (go-libp2p waits 30 s by default: a home box that is not
	// reachable cannot serve, so it retries sooner), and a relay that
	// refused a reservation is left alone for relayBackoff (go-libp2p: an
	// hour, long enough for a box that turned public seconds later to be
	// missed).
	relayWanted         = 2
	relaySourceInterval = 10 * time.Second
	relayBackoff        = time.Minute
)

// relayResources are the limits of the relay service a public box runs.
func relayResources(small bool) relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = &relayv2.RelayLimit{Duration: relayCircuitDuration, Data: relayCircuitData}
	r.MaxReservations = relayReservations
	if small {
		r.MaxReservations = relayReservationsSmall
	}
	r.MaxCircuits = relayCircuitsPerPeer
	return r
}

// relaySource is AutoRelay's source of relay candidates for a box behind
// a NAT: the bootstrap peers and the committee's members first (boxes an
// operator runs on public addresses), then the connected boxes that speak
// the relay protocol (a public box's relay service announces it in
// identify once AutoNAT found the box public; the connected boxes are the
// ones the DHT walks met).
type relaySource struct {
	static []peer.AddrInfo
	host   atomic.Pointer[host.Host] // set once the host is built
}

// relayHop is the circuit v2 protocol a relay speaks.
const relayHop = "/libp2p/circuit/relay/0.2.0/hop"

// candidates sends at most num relay candidates and closes the channel
// (AutoRelay's PeerSource).
func (s *relaySource) candidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	var self peer.ID
	hp := s.host.Load()
	if hp != nil {
		self = (*hp).ID()
	}
	seen := map[peer.ID]bool{self: true}
	send := func(ai peer.AddrInfo) bool {
		if seen[ai.ID] {
			return true
		}
		seen[ai.ID] = true
		if len(out) == num {
			return false
		}
		out <- ai
		return true
	}
	for _, ai := range s.static {
		if !send(ai) {
			return out
		}
	}
	if hp == nil {
		return out
	}
	h := *hp
	for _, p := range h.Network().Peers() {
		if ok, err := h.Peerstore().SupportsProtocols(p, relayHop); err != nil || len(ok) == 0 {
			continue
		}
		if !send(h.Peerstore().PeerInfo(p)) {
			return out
		}
	}
	return out
}

// autoRelayOptions configure AutoRelay for a box.
func autoRelayOptions() []autorelay.Option {
	return []autorelay.Option{
		autorelay.WithNumRelays(relayWanted),
		// One candidate is enough to reserve: go-libp2p waits for four,
		// or three minutes, to pick among many, and a home box on a
		// small network may know one public box.
		autorelay.WithMinCandidates(1),
		autorelay.WithBootDelay(0),
		autorelay.WithMinInterval(relaySourceInterval),
		autorelay.WithBackoff(relayBackoff),
	}
}

// relayStatics are the relay candidates a box knows from its config: the
// bootstrap peers and the genesis committee, without itself.
func relayStatics(cfg *Config, key crypto.PrivKey) []peer.AddrInfo {
	self, _ := peer.IDFromPrivateKey(key)
	var out []peer.AddrInfo
	for _, ai := range cfg.Bootstrap {
		if ai.ID != self {
			out = append(out, ai)
		}
	}
	if cfg.Genesis != nil {
		for _, m := range cfg.Genesis.Committee {
			if ai, err := m.AddrInfo(); err == nil && ai.ID != self {
				out = append(out, ai)
			}
		}
	}
	return out
}

// repunchAfter is the age past which a relayed connection's hole punch is
// over: DCUtR makes three attempts with a 5 s dial timeout each, started
// once identify completed on the relayed connection.
const repunchAfter = 20 * time.Second

// repunch gives hole punching another try with p, a provider this box
// reaches only through a relay: the box behind a NAT starts a hole punch
// when a relayed connection comes in, once, so a relayed connection whose
// punch failed (a packet lost, a router slow to open its mapping) stays
// relayed until the relay's 2-minute limit ends it, and a fetch that
// needs p would wait for nothing. A relayed connection older than
// repunchAfter is closed and opened again, which starts a new hole punch
// on p's side; a younger one may still be punching and is left alone.
func (n *Node) repunch(ctx context.Context, p peer.AddrInfo) {
	conns := n.host.Network().ConnsToPeer(p.ID)
	for _, c := range conns {
		if !c.Stat().Limited || time.Since(c.Stat().Opened) < repunchAfter {
			return
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if err := n.host.Connect(ctx, p); err != nil {
		n.log.Debug("provider unreachable through its relays", "peer", p.ID, "err", err)
		return
	}
	n.log.Debug("reconnected through a relay for a new hole punch", "peer", p.ID)
}
