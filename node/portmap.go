package node

import (
	"log/slog"
	"slices"
	"sync"

	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// PortMapping is a port the home router forwards to the box, obtained with
// UPnP IGD or NAT-PMP/PCP.
type PortMapping struct {
	Listen   string `json:"listen"`   // the box's listen address
	External string `json:"external"` // where the internet reaches it
}

// portMapper is go-libp2p's NAT manager (UPnP IGD and NAT-PMP/PCP, it
// discovers the router by itself and renews its mappings) with a record
// of what the router mapped: go-libp2p only folds the mappings into the
// host's addresses, and an operator wants to see them (`ore status`, the
// logs). The host's address manager asks GetMapping for every listen
// address each few seconds, so the record follows the router: a mapping
// the router drops disappears from it at the next round.
type portMapper struct {
	basichost.NATManager
	log     *slog.Logger
	changed func() // called after the set of mappings changed, outside mu

	mu     sync.Mutex
	mapped map[string]string // listen address → external address
}

func newPortMapper(nm basichost.NATManager, log *slog.Logger, changed func()) *portMapper {
	return &portMapper{NATManager: nm, log: log, changed: changed, mapped: make(map[string]string)}
}

// GetMapping is the NAT manager's, recording what it answers.
func (p *portMapper) GetMapping(listen ma.Multiaddr) ma.Multiaddr {
	ext := p.NATManager.GetMapping(listen)
	if ext != nil && !sameFamily(listen, ext) {
		// go-libp2p maps a port whatever the listen address's family, and
		// answers an IPv6 listen address with the IPv4 mapping of its
		// port: UPnP and NAT-PMP map IPv4 only, and an IPv6 address is
		// not NATed. The mapping is the IPv4 listen address's.
		return ext
	}
	key := listen.String()
	p.mu.Lock()
	old, had := p.mapped[key]
	switch {
	case ext == nil && had:
		delete(p.mapped, key)
	case ext != nil && (!had || old != ext.String()):
		p.mapped[key] = ext.String()
	default:
		p.mu.Unlock()
		return ext
	}
	p.mu.Unlock()
	if ext == nil {
		p.log.Warn("the router dropped a port mapping; the box may not be reachable directly any more", "listen", key, "was", old)
	} else {
		p.log.Info("port mapped on the router (UPnP/NAT-PMP)", "listen", key, "external", ext)
	}
	if p.changed != nil {
		p.changed()
	}
	return ext
}

// Mappings are the ports the router forwards now, by listen address.
func (p *portMapper) Mappings() []PortMapping {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PortMapping, 0, len(p.mapped))
	for l, e := range p.mapped {
		out = append(out, PortMapping{Listen: l, External: e})
	}
	slices.SortFunc(out, func(a, b PortMapping) int {
		if a.Listen < b.Listen {
			return -1
		}
		if a.Listen > b.Listen {
			return 1
		}
		return 0
	})
	return out
}

// mappable says whether a router could forward a port to one of addrs:
// go-libp2p's NAT manager maps only unspecified (0.0.0.0, ::) and global
// unicast listen addresses. A box listening on loopback alone (tests, a
// box behind a reverse proxy) skips the router discovery, which costs a
// multicast search and a NAT-PMP request to the gateway.
func mappable(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		ip, err := manet.ToIP(a)
		if err != nil {
			continue
		}
		if ip.IsUnspecified() || ip.IsGlobalUnicast() {
			return true
		}
	}
	return false
}

// sameFamily says whether a and b are both IPv4 or both IPv6 addresses.
func sameFamily(a, b ma.Multiaddr) bool {
	ia, err1 := manet.ToIP(a)
	ib, err2 := manet.ToIP(b)
	return err1 == nil && err2 == nil && (ia.To4() == nil) == (ib.To4() == nil)
}
