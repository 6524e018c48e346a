package node

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	inat "github.com/libp2p/go-libp2p/p2p/net/nat"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/heat"
)

// ReachState is how the internet reaches a box, in one word.
type ReachState string

// Reachability states, as `ore status` and the ore_reachability metric
// name them.
const (
	// ReachUnknown: AutoNAT has not decided yet (it needs connected boxes
	// to dial the box back; a minute after start, usually).
	ReachUnknown ReachState = "unknown"
	// ReachPublic: boxes dial the box directly on an address of its own.
	ReachPublic ReachState = "public"
	// ReachMapped: boxes dial the box directly on a port the home router
	// forwards to it (UPnP IGD or NAT-PMP).
	ReachMapped ReachState = "mapped"
	// ReachRelayed: the box is behind a NAT and holds relay reservations:
	// boxes reach it through a relay, then hole punching connects them
	// directly (relays carry no blocks).
	ReachRelayed ReachState = "private-relayed"
	// ReachUnreachable: the box is behind a NAT with no mapping and no
	// relay: nobody can reach it first, so it serves nobody.
	ReachUnreachable ReachState = "unreachable"
)

var reachStates = []ReachState{ReachUnknown, ReachPublic, ReachMapped, ReachRelayed, ReachUnreachable}

// Reachability is how the internet reaches the box: what `ore status`
// shows and the metrics count.
type Reachability struct {
	State ReachState `json:"state"`
	// Advice is what the operator can do about State ("" when nothing).
	Advice string `json:"advice,omitempty"`
	// AutoNAT is what other boxes found dialling this one back: public,
	// private or unknown.
	AutoNAT string `json:"autonat"`
	// Reachable are the addresses other boxes confirmed they can dial
	// (AutoNAT v2).
	Reachable []string `json:"reachable,omitempty"`
	// Mappings are the ports the home router forwards to the box (UPnP
	// IGD or NAT-PMP/PCP); empty when port mapping is off, when no router
	// answered, or while it is being asked.
	Mappings []PortMapping `json:"mappings,omitempty"`
	// PortMap says whether the box asks its router for mappings.
	PortMap bool `json:"port_map"`
	// Router is what the search for a UPnP/NAT-PMP router found:
	// "searching", "found" or "none" ("" when PortMap is off).
	Router string `json:"router,omitempty"`
	// Relays are the relays holding a reservation for the box, and
	// RelayAddrs the relayed addresses it announces through them.
	Relays     []string `json:"relays,omitempty"`
	RelayAddrs []string `json:"relay_addrs,omitempty"`
	// RelayService says whether the box relays for boxes behind NATs now
	// (it does while AutoNAT finds it public, unless turned off).
	RelayService bool `json:"relay_service"`
	// NATTCP and NATUDP are the kinds of NAT the box is behind, by
	// transport, as the addresses other boxes observe show: "cone" (the
	// same external port for every destination: hole punching works),
	// "symmetric" (a new port per destination: hole punching fails) or
	// "" (not known).
	NATTCP string `json:"nat_tcp,omitempty"`
	NATUDP string `json:"nat_udp,omitempty"`
	// HolePunch counts the box's hole punches since it started.
	HolePunch HolePunchStats `json:"hole_punch"`
	// Bytes are the block bytes the box sent and received since it
	// started, by the kind of connection they travelled on.
	Bytes PathBytes `json:"bytes"`
	// Report is how the box's heat reports tell the committee the
	// internet reaches it (heat.Reach: direct, nat, symmetric-nat or
	// unknown); the committee orders a box behind a symmetric NAT no
	// replicas that boxes behind NATs would need.
	Report string `json:"report_reach"`
}

// HolePunchStats count hole punches (DCUtR) and the direct dials tried
// before them (connection reversal: a box behind a NAT dials back a
// public box that reached it through a relay).
type HolePunchStats struct {
	DirectDials   uint64 `json:"direct_dials"`
	DirectDialsOK uint64 `json:"direct_dials_ok"`
	Attempts      uint64 `json:"attempts"`
	Successes     uint64 `json:"successes"`
}

// reach gathers what the host learns about the box's reachability, logs
// its changes and keeps the metrics.
type reach struct {
	log          *slog.Logger
	portMap      bool
	relayService bool
	ports        string // the listen ports, for the advice
	searched     atomic.Bool
	relays       relaySource
	m            reachMetrics

	obs   natObservations
	paths pathCounters

	mu         sync.Mutex
	pm         *portMapper // nil until the host built its NAT manager
	autonat    network.Reachability
	reachable  []ma.Multiaddr
	relayAddrs []ma.Multiaddr
	natTCP     network.NATDeviceType
	natUDP     network.NATDeviceType
	state      ReachState
	kinds      string // the NAT kinds last logged
	hp         HolePunchStats
	punched    map[peer.ID][]string // the IDs of the connections hole punching opened, by peer (see markPunched)
}

type reachMetrics struct {
	state        *prometheus.GaugeVec
	mappings     prometheus.Gauge
	reservations prometheus.Gauge
	relayService prometheus.Gauge
	holePunches  *prometheus.CounterVec
	directDials  *prometheus.CounterVec
}

func newReach(log *slog.Logger, reg prometheus.Registerer) (*reach, error) {
	r := &reach{log: log, state: ReachUnknown}
	r.m = reachMetrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ore_reachability",
			Help: "How the internet reaches the box: 1 for the state it is in (public, mapped, private-relayed, unreachable, unknown)."}, []string{"state"}),
		mappings: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ore_port_mappings",
			Help: "Ports the home router forwards to the box (UPnP IGD, NAT-PMP)."}),
		reservations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ore_relay_reservations",
			Help: "Relays holding a reservation for this box (a box behind a NAT)."}),
		relayService: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ore_relay_service",
			Help: "1 while the box relays signalling for boxes behind NATs (AutoNAT found it public)."}),
		holePunches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_holepunch_total",
			Help: "Hole punches (DCUtR) this box took part in, by outcome (success, failure)."}, []string{"outcome"}),
		directDials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_holepunch_direct_dials_total",
			Help: "Direct dials back to a box that came through a relay, tried before hole punching, by outcome."}, []string{"outcome"}),
	}
	r.paths.m = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_block_bytes_total",
		Help: "Block bytes bitswap sent and received, by direction (sent, received) and the connection they travelled on (direct: dialled; holepunched: opened by hole punching; relayed: through a relay, which bitswap never uses)."},
		[]string{"direction", "path"})
	for _, c := range []prometheus.Collector{r.m.state, r.m.mappings, r.m.reservations, r.m.relayService, r.m.holePunches, r.m.directDials, r.paths.m} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: register reachability metrics: %w", err)
		}
	}
	for _, o := range []string{"success", "failure"} {
		r.m.holePunches.WithLabelValues(o)
		r.m.directDials.WithLabelValues(o)
	}
	r.paths.init()
	r.m.state.WithLabelValues(string(ReachUnknown)).Set(1)
	return r, nil
}

// natManager is the NAT manager constructor given to go-libp2p: its own,
// recorded.
func (r *reach) natManager(net network.Network) basichost.NATManager {
	pm := newPortMapper(basichost.NewNATManager(net), r.log, r.update)
	r.mu.Lock()
	r.pm = pm
	r.mu.Unlock()
	return pm
}

// watch follows the host's reachability events until ctx ends.
func (r *reach) watch(ctx context.Context, h host.Host) error {
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtHostReachableAddrsChanged),
		new(event.EvtAutoRelayAddrsUpdated),
		new(event.EvtNATDeviceTypeChanged),
		new(event.EvtPeerIdentificationCompleted),
	}, eventbus.Name("ore reachability"))
	if err != nil {
		return fmt.Errorf("node: follow reachability events: %w", err)
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r.handle(e)
			}
		}
	}()
	return nil
}

func (r *reach) handle(e any) {
	if e, ok := e.(event.EvtPeerIdentificationCompleted); ok {
		if r.obs.add(e.Conn, e.ObservedAddr) {
			r.update()
		}
		return
	}
	r.mu.Lock()
	switch e := e.(type) {
	case event.EvtLocalReachabilityChanged:
		r.autonat = e.Reachability
	case event.EvtHostReachableAddrsChanged:
		r.reachable = slices.Clone(e.Reachable)
	case event.EvtAutoRelayAddrsUpdated:
		r.relayAddrs = slices.Clone(e.RelayAddrs)
	case event.EvtNATDeviceTypeChanged:
		if e.TransportProtocol == network.NATTransportTCP {
			r.natTCP = e.NatDeviceType
		} else {
			r.natUDP = e.NatDeviceType
		}
	}
	r.mu.Unlock()
	r.update()
}

// update recomputes the state after any change, logs a new state with
// its advice and sets the metrics.
func (r *reach) update() {
	v := r.view()
	kinds := fmt.Sprintf("tcp %s, udp %s", orUnknown(v.NATTCP), orUnknown(v.NATUDP))
	r.mu.Lock()
	old, oldKinds := r.state, r.kinds
	r.state, r.kinds = v.State, kinds
	r.mu.Unlock()
	if oldKinds != kinds && (v.NATTCP != "" || v.NATUDP != "") {
		r.log.Info("NAT kind, from the addresses other boxes observe", "nat", kinds, "heat_report_reach", v.Report)
	}
	r.m.mappings.Set(float64(len(v.Mappings)))
	r.m.reservations.Set(float64(len(v.Relays)))
	r.m.relayService.Set(b2f(v.RelayService))
	if old == v.State {
		return
	}
	for _, s := range reachStates {
		r.m.state.WithLabelValues(string(s)).Set(b2f(s == v.State))
	}
	attrs := []any{"state", v.State, "was", old, "autonat", v.AutoNAT}
	if len(v.Mappings) > 0 {
		attrs = append(attrs, "mappings", v.Mappings)
	}
	if len(v.Relays) > 0 {
		attrs = append(attrs, "relays", v.Relays)
	}
	if v.Advice != "" {
		attrs = append(attrs, "advice", v.Advice)
	}
	if v.State == ReachUnreachable {
		r.log.Warn("reachability changed", attrs...)
	} else {
		r.log.Info("reachability changed", attrs...)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// view is the box's reachability now.
func (r *reach) view() Reachability {
	v, _ := r.viewReach()
	return v
}

// heatReach is what the box's heat report says of its reach now.
func (r *reach) heatReach() heat.Reach {
	_, hr := r.viewReach()
	return hr
}

// viewReach is the box's reachability now, and what its heat report says
// of it.
func (r *reach) viewReach() (Reachability, heat.Reach) {
	r.mu.Lock()
	pm := r.pm
	in := reachInputs{
		autonat:   r.autonat,
		reachable: strs(r.reachable),
		natTCP:    r.natTCP,
		natUDP:    r.natUDP,
		ports:     r.ports,
	}
	v := Reachability{
		PortMap:    r.portMap,
		Reachable:  in.reachable,
		RelayAddrs: strs(r.relayAddrs),
		Relays:     relaysOf(r.relayAddrs),
		HolePunch:  r.hp,
		AutoNAT:    strings.ToLower(r.autonat.String()),
	}
	r.mu.Unlock()
	// go-libp2p's NAT kind, once it has enough observers; the box's own
	// reading of a few until then.
	obsTCP, obsUDP := r.obs.kinds()
	if in.natTCP == network.NATDeviceTypeUnknown {
		in.natTCP = obsTCP
	}
	if in.natUDP == network.NATDeviceTypeUnknown {
		in.natUDP = obsUDP
	}
	v.NATTCP, v.NATUDP = natKind(in.natTCP), natKind(in.natUDP)
	v.Bytes = r.paths.totals()
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
	v.RelayService = r.relayService && in.autonat == network.ReachabilityPublic
	if in.autonat == network.ReachabilityPublic {
		// AutoRelay drops its reservations when AutoNAT finds the box
		// public, without announcing that its relayed addresses went.
		v.Relays, v.RelayAddrs = nil, nil
	}
	in.mappings, in.relays = v.Mappings, v.Relays
	v.State, v.Advice = classify(in)
	hr := heatReach(v.State, in.natTCP, in.natUDP)
	v.Report = hr.String()
	return v, hr
}

// heatReach is what the box's heat reports say of its reach: direct when
// boxes dial it (a public address, a mapped port, an IPv6 address without
// NAT: AutoNAT confirmed one), symmetric-nat when it is behind a NAT that
// defeats hole punching (see symmetricNAT), nat when it is behind another
// NAT (AutoNAT found it private, or the observed addresses show a NAT of
// the cone kind), unknown until one of these is known.
func heatReach(state ReachState, natTCP, natUDP network.NATDeviceType) heat.Reach {
	switch {
	case state == ReachPublic || state == ReachMapped:
		return heat.ReachDirect
	case symmetricNAT(natTCP, natUDP):
		return heat.ReachSymmetric
	case state == ReachRelayed || state == ReachUnreachable,
		natTCP == network.NATDeviceTypeEndpointIndependent, natUDP == network.NATDeviceTypeEndpointIndependent:
		return heat.ReachNAT
	}
	return heat.ReachUnknown
}

// symmetricNAT says whether the box's NAT defeats hole punching: it picks
// a new port per destination on one transport and is not known to keep
// one on the other (hole punching tries TCP and QUIC at once, and one
// transport that passes is enough).
func symmetricNAT(natTCP, natUDP network.NATDeviceType) bool {
	return natTCP == network.NATDeviceTypeEndpointDependent && natUDP != network.NATDeviceTypeEndpointIndependent ||
		natUDP == network.NATDeviceTypeEndpointDependent && natTCP != network.NATDeviceTypeEndpointIndependent
}

func strs(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// relaysOf are the relays of relayed addresses (…/p2p/RELAY/p2p-circuit),
// once each, sorted.
func relaysOf(addrs []ma.Multiaddr) []string {
	var out []string
	for _, a := range addrs {
		relay, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
		if id, err := relay.ValueForProtocol(ma.P_P2P); err == nil && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func natKind(t network.NATDeviceType) string {
	switch t {
	case network.NATDeviceTypeEndpointIndependent:
		return "cone"
	case network.NATDeviceTypeEndpointDependent:
		return "symmetric"
	}
	return ""
}

// reachInputs are what classify decides from.
type reachInputs struct {
	autonat   network.Reachability
	reachable []string // addresses AutoNAT v2 confirmed
	mappings  []PortMapping
	relays    []string
	natTCP    network.NATDeviceType
	natUDP    network.NATDeviceType
	ports     string // "4601", for the advice
}

// classify says how the internet reaches a box, and what its operator
// can do about it. The rule: a box is public or mapped when other boxes
// dialled it back (AutoNAT v1 found it public, or v2 confirmed one of its
// addresses), mapped when a router mapping is what they reach; a box
// AutoNAT found private is reached through its relays, or not at all.
func classify(in reachInputs) (ReachState, string) {
	ports := in.ports
	if ports == "" {
		ports = "the listen port"
	}
	forward := fmt.Sprintf("forward TCP and UDP %s on the router to this box, or enable UPnP or NAT-PMP on the router", ports)
	mappedReachable := false
	for _, m := range in.mappings {
		mappedReachable = mappedReachable || slices.Contains(in.reachable, m.External)
	}
	public := in.autonat == network.ReachabilityPublic || len(in.reachable) > 0
	switch {
	case len(in.mappings) > 0 && (mappedReachable || in.autonat == network.ReachabilityPublic):
		return ReachMapped, ""
	case public:
		return ReachPublic, ""
	}
	doubleNAT := ""
	if len(in.mappings) > 0 {
		doubleNAT = "the router mapped a port but nobody reaches the box on it (a second NAT upstream, e.g. the provider's carrier-grade NAT?); "
	}
	symmetric := symmetricNAT(in.natTCP, in.natUDP)
	switch {
	case len(in.relays) > 0 && symmetric:
		return ReachRelayed, doubleNAT + "the NAT picks a new port for every destination (symmetric): hole punching fails, so only public boxes fetch from this one; " + forward
	case len(in.relays) > 0:
		return ReachRelayed, doubleNAT + "boxes reach this one through the relays, then connect directly by hole punching; to be reached directly, " + forward
	case in.autonat == network.ReachabilityPrivate:
		return ReachUnreachable, doubleNAT + "behind a NAT with no relay yet: nobody can reach this box; " + forward + " (the box keeps looking for a relay among its bootstrap peers)"
	}
	return ReachUnknown, "AutoNAT has not decided yet: other boxes must dial this one back, which needs a connection to a few of them"
}

// Trace is the hole punching service's event tracer (holepunch.EventTracer).
func (r *reach) Trace(e *holepunch.Event) {
	switch ev := e.Evt.(type) {
	case *holepunch.DirectDialEvt:
		outcome := outcomeOf(ev.Success)
		r.m.directDials.WithLabelValues(outcome).Inc()
		r.mu.Lock()
		r.hp.DirectDials++
		if ev.Success {
			r.hp.DirectDialsOK++
		}
		r.mu.Unlock()
		r.log.Debug("direct dial back to a box that came through a relay", "peer", e.Remote, "outcome", outcome, "took", ev.EllapsedTime, "err", ev.Error)
	case *holepunch.StartHolePunchEvt:
		r.mu.Lock()
		r.hp.Attempts++
		r.mu.Unlock()
		r.log.Debug("hole punching", "peer", e.Remote, "their_addrs", ev.RemoteAddrs, "rtt", ev.RTT)
	case *holepunch.EndHolePunchEvt:
		outcome := outcomeOf(ev.Success)
		r.m.holePunches.WithLabelValues(outcome).Inc()
		r.mu.Lock()
		if ev.Success {
			r.hp.Successes++
		}
		r.mu.Unlock()
		if ev.Success {
			r.markPunched(e.Remote, time.Unix(0, e.Timestamp).Add(-ev.EllapsedTime))
		}
		if ev.Success {
			r.log.Info("hole punched: direct connection", "peer", e.Remote, "took", ev.EllapsedTime)
		} else {
			r.log.Info("hole punching failed: the box stays reachable through the relay for signalling only", "peer", e.Remote, "took", ev.EllapsedTime, "err", ev.Error)
		}
	}
}

func outcomeOf(ok bool) string {
	if ok {
		return "success"
	}
	return "failure"
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
	r.update()
}
