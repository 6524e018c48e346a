package node

import (
	"net"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// natObservations tell the kind of NAT a box is behind from a few
// observers. Over identify, every peer says at which address it sees the
// box (the observed address). Behind a NAT that keeps one external port
// for every destination (endpoint-independent mapping, "cone": hole
// punching passes), every peer sees the same port for one local port;
// behind one that picks a new port per destination (endpoint-dependent,
// "symmetric": hole punching fails), each sees another.
//
// go-libp2p decides the same from at least 9 observers (distinct IPv4
// addresses or IPv6 /56s) per transport, which a home box on a small
// network, or in its first minutes, does not have: in the NAT drill it
// never decided. This decides from two: the kind go-libp2p reports wins
// once it has one (see reach.view).
//
// The rule, per transport (TCP; UDP for QUIC): among the box's direct
// connections from one local address that is not public (the box's
// private LAN address and listen port), each observer's latest observed
// address counts once; with at least minNATObservers observers, the NAT
// is symmetric when no observed address is shared by more than half of
// them, cone otherwise. The local address with the most observers
// decides. An observed address is what the peer says: peers that lie
// can make a box with few observers believe its NAT symmetric, which
// costs that box the replicas only boxes behind NATs would need (see
// heat.Plan), and nothing of anyone else.
type natObservations struct {
	// own says whether ip is an address of this machine: an observer
	// that sees the box at one saw no NAT between them (nil: the
	// machine's interface addresses, looked up at each observation).
	own func(ip net.IP) bool

	mu  sync.Mutex
	obs map[network.Conn]observation
	seq uint64 // observations so far, to tell the latest
}

// observation is one direct connection's observed address.
type observation struct {
	tcp      bool
	local    string // the box's end of the connection: IP and port
	observer string // the observer: its IPv4 address, or its IPv6 /56
	external string // the IP and port it sees the box at
	seq      uint64 // when: the later of two observations is greater
}

const (
	// minNATObservers is how many observers of one local address decide
	// the NAT's kind: two that see two ports prove a new port per
	// destination, two that see one make it likely one port for all.
	minNATObservers = 2
	// maxNATObservations bounds the connections remembered; closed ones
	// are dropped first. A box keeps ConnHigh connections at most (96 on a
	// small one), so the bound is rarely reached.
	maxNATObservations = 512
)

// add records what a peer said over c: observed is the box's address as
// the peer sees it. It reports whether the observation counted.
func (o *natObservations) add(c network.Conn, observed ma.Multiaddr) bool {
	if c == nil || observed == nil || c.Stat().Limited {
		return false
	}
	own := o.own
	if own == nil {
		own = interfaceIP
	}
	ob, ok := observationOf(c.LocalMultiaddr(), c.RemoteMultiaddr(), observed, own)
	if !ok {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.obs == nil {
		o.obs = make(map[network.Conn]observation)
	}
	if _, known := o.obs[c]; !known && len(o.obs) >= maxNATObservations {
		for k := range o.obs {
			if k.IsClosed() {
				delete(o.obs, k)
			}
		}
		if len(o.obs) >= maxNATObservations {
			return false
		}
	}
	o.seq++
	ob.seq = o.seq
	o.obs[c] = ob
	return true
}

// observationOf makes an observation of a connection from local to
// remote on which the remote peer observed the box at observed; false
// when it tells nothing of a NAT: an observed address that is the box's
// own (own: no NAT between them; a QUIC connection's local address is
// the unspecified listen address, so the local address cannot tell),
// loopback, an observer on a private network (the box's own LAN), a
// relayed address, or an observed address of another family or
// transport than the local one.
func observationOf(local, remote, observed ma.Multiaddr, own func(net.IP) bool) (observation, bool) {
	lip, lport, ltcp, ok1 := thinWaist(local)
	rip, _, _, ok2 := thinWaist(remote)
	oip, oport, otcp, ok3 := thinWaist(observed)
	switch {
	case !ok1 || !ok2 || !ok3 || ltcp != otcp:
		return observation{}, false
	case manet.IsIPLoopback(local) || oip.Equal(lip) || own(oip):
		return observation{}, false
	case !manet.IsPublicAddr(remote) || !manet.IsPublicAddr(observed):
		return observation{}, false
	case (lip.To4() == nil) != (oip.To4() == nil):
		return observation{}, false
	}
	observer := rip.String()
	if rip.To4() == nil {
		observer = rip.Mask(net.CIDRMask(56, 128)).String()
	}
	return observation{
		tcp:      ltcp,
		local:    net.JoinHostPort(lip.String(), lport),
		observer: observer,
		external: net.JoinHostPort(oip.String(), oport),
	}, true
}

// interfaceIP says whether ip is an address of one of the machine's
// network interfaces.
func interfaceIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// thinWaist reads the IP and the TCP or UDP port of a (/ip4|/ip6)/(tcp|
// udp)/... address; false for any other (a relayed address has /p2p-circuit
// further on).
func thinWaist(a ma.Multiaddr) (ip net.IP, port string, tcp bool, ok bool) {
	if len(a) < 2 {
		return nil, "", false, false
	}
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return nil, "", false, false
		}
	}
	ip, err := manet.ToIP(a[:2])
	if err != nil {
		return nil, "", false, false
	}
	switch a[1].Code() {
	case ma.P_TCP:
		return ip, a[1].Value(), true, true
	case ma.P_UDP:
		return ip, a[1].Value(), false, true
	}
	return nil, "", false, false
}

// kinds are the NAT kinds the open connections' observations show, per
// transport (NATDeviceTypeUnknown where they do not decide). Closed
// connections are forgotten on the way.
func (o *natObservations) kinds() (tcp, udp network.NATDeviceType) {
	o.mu.Lock()
	var open []observation
	for c, ob := range o.obs {
		if c.IsClosed() {
			delete(o.obs, c)
			continue
		}
		open = append(open, ob)
	}
	o.mu.Unlock()
	return natKindOf(open, true), natKindOf(open, false)
}

// natKindOf applies the rule (see natObservations) to the observations
// of one transport.
func natKindOf(obs []observation, tcp bool) network.NATDeviceType {
	// local address → observer → its latest observation.
	byLocal := map[string]map[string]observation{}
	for _, ob := range obs {
		if ob.tcp != tcp {
			continue
		}
		m := byLocal[ob.local]
		if m == nil {
			m = map[string]observation{}
			byLocal[ob.local] = m
		}
		if old, ok := m[ob.observer]; !ok || ob.seq > old.seq {
			m[ob.observer] = ob
		}
	}
	var (
		best      map[string]observation
		bestLocal string
	)
	for local, m := range byLocal {
		if len(m) > len(best) || len(m) == len(best) && local < bestLocal {
			best, bestLocal = m, local
		}
	}
	if len(best) < minNATObservers {
		return network.NATDeviceTypeUnknown
	}
	seen := map[string]int{}
	top := 0
	for _, ob := range best {
		seen[ob.external]++
		top = max(top, seen[ob.external])
	}
	if 2*top <= len(best) {
		return network.NATDeviceTypeEndpointDependent
	}
	return network.NATDeviceTypeEndpointIndependent
}
