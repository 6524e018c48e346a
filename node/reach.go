package node

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	inat "github.com/libp2p/go-libp2p/p2p/net/nat"
)

// Reachability is how the internet reaches the box: what `ore status`
// shows and the metrics count.
type Reachability struct {
	// Mappings are the ports the home router forwards to the box (UPnP
	// IGD or NAT-PMP/PCP); empty when port mapping is off, when no router
	// answered, or while it is being asked.
	Mappings []PortMapping `json:"mappings,omitempty"`
	// PortMap says whether the box asks its router for mappings.
	PortMap bool `json:"port_map"`
	// Router is what the search for a UPnP/NAT-PMP router found:
	// "searching", "found" or "none" ("" when PortMap is off).
	Router string `json:"router,omitempty"`
}

// reach gathers what the host learns about the box's reachability.
type reach struct {
	log      *slog.Logger
	portMap  bool
	searched atomic.Bool // the router search is over
	relays   relaySource

	mu sync.Mutex
	pm *portMapper // nil until the host built its NAT manager
}

func newReach(log *slog.Logger) *reach {
	return &reach{log: log}
}

// natManager is the NAT manager constructor given to go-libp2p: its own,
// recorded.
func (r *reach) natManager(net network.Network) basichost.NATManager {
	pm := newPortMapper(basichost.NewNATManager(net), r.log, nil)
	r.mu.Lock()
	r.pm = pm
	r.mu.Unlock()
	return pm
}

// view is the box's reachability now.
func (r *reach) view() Reachability {
	r.mu.Lock()
	pm := r.pm
	r.mu.Unlock()
	v := Reachability{PortMap: r.portMap}
	if pm != nil {
		v.Mappings = pm.Mappings()
		v.Router = "searching"
		switch {
		case pm.HasDiscoveredNAT():
			v.Router = "found"
		case r.searched.Load():
			v.Router = "none"
		}
	}
	return v
}

// watchRouter logs the outcome of the search for a UPnP/NAT-PMP router
// once go-libp2p gave up on it (inat.DiscoveryTimeout), so that an
// operator learns why no port is mapped.
func (r *reach) watchRouter(ctx context.Context) {
	r.mu.Lock()
	pm := r.pm
	r.mu.Unlock()
	if pm == nil {
		return
	}
	t := time.NewTimer(inat.DiscoveryTimeout + time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	r.searched.Store(true)
	if pm.HasDiscoveredNAT() {
		r.log.Info("found a router that maps ports (UPnP IGD or NAT-PMP)")
		return
	}
	r.log.Info("no router answered UPnP or NAT-PMP: no port is mapped; if this box is behind a NAT, enable UPnP on the router or forward the listen ports to it by hand")
}
