package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p"
	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// newHost builds the box's libp2p host: TCP and QUIC, Noise and TLS, yamux,
// identify, a resource manager with explicit limits, a connection manager,
// AutoNAT, hole punching, the relay client, a relay service for
// signalling while AutoNAT finds the box public, AutoRelay while it finds
// it private (see relay.go) and (unless WithPortMap(false)) port mapping
// on the home router.
//
// With cfg.Host set it returns that host (and no resource manager), once
// it checked that the host's identity is key; a host without a connection
// manager gets the box's (see managedHost).
func newHost(cfg *Config, key crypto.PrivKey, reg prometheus.Registerer, r *reach) (host.Host, network.ResourceManager, error) {
	if cfg.Host != nil {
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			return nil, nil, fmt.Errorf("node: identity: %w", err)
		}
		if cfg.Host.ID() != id {
			cfg.Host.Close() // the box took it over
			return nil, nil, fmt.Errorf("node: the host given runs as %s, the box's identity is %s", cfg.Host.ID(), id)
		}
		if _, null := cfg.Host.ConnManager().(*coreconnmgr.NullConnMgr); !null {
			return cfg.Host, nil, nil
		}
		cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh)
		if err != nil {
			cfg.Host.Close()
			return nil, nil, fmt.Errorf("node: connection manager: %w", err)
		}
		cfg.Host.Network().Notify(cm.Notifee())
		return &managedHost{Host: cfg.Host, cm: cm}, nil, nil
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(cfg.ResourceMemory, cfg.ResourceFDs)),
		rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, nil, fmt.Errorf("node: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("node: connection manager: %w", err)
	}
	ranker := new(v6Ranker)
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableHolePunching(holepunch.WithMetricsAndEventTracer(
			holepunch.NewMetricsTracer(holepunch.WithRegisterer(reg)), r)),
		libp2p.EnableRelay(),
		libp2p.UserAgent("ore/" + Version),
		libp2p.DialRanker(ranker.rank),
		libp2p.PrometheusRegisterer(reg),
	}
	if !cfg.RelayServiceOff {
		r.relayService = true
		// go-libp2p starts it when AutoNAT finds the box public, and
		// stops it when the box turns private.
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(relayResources(cfg.SmallMemory))))
	}
	switch cfg.forceReach {
	case network.ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case network.ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(r.relays.candidates, autoRelayOptions()...))
	if !cfg.PortMapOff && mappable(cfg.ListenAddrs) {
		r.portMap = true
		opts = append(opts, libp2p.NATManager(r.natManager))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("node: start libp2p host (is another process on the listen ports %v?): %w", cfg.ListenAddrs, err)
	}
	r.relays.host.Store(&h)
	// The interfaces' addresses at start: a box that gains a global IPv6
	// address later ranks its dials as go-libp2p does until it restarts.
	if la, err := h.Network().InterfaceListenAddresses(); err == nil {
		ranker.global.Store(globalIPv6(la))
	}
	// go-libp2p starts when at least one listen address works and drops
	// the others silently; say which, so that an operator who asked for
	// IPv6 on a machine without it, or a port another process holds,
	// learns it.
	for _, a := range notListening(cfg.ListenAddrs, h.Network().ListenAddresses()) {
		cfg.Logger.Warn("not listening on an address of the config (no IPv6 on this machine, an address it does not have, or a port in use); the box runs on the others",
			"addr", a, "listening", h.Network().ListenAddresses())
	}
	return h, rm, nil
}

// notListening are the addresses of want that no address of got listens
// on: same IP and transports, and the same port unless want's is 0 (any).
func notListening(want, got []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g ma.Multiaddr) bool { return sameListen(w, g) }) {
			out = append(out, w)
		}
	}
	return out
}

func sameListen(want, got ma.Multiaddr) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Code() != g.Code() {
			return false
		}
		if (w.Code() == ma.P_TCP || w.Code() == ma.P_UDP) && w.Value() == "0" {
			continue
		}
		if w.Value() != g.Value() {
			return false
		}
	}
	return true
}

// managedHost is a host given to the box without a connection manager
// (go-libp2p's mocknet builds its hosts so) with the box's own: without
// one, a box never trims its connections, and in a crowd every box ends
// up connected to every other. Each connected peer costs a bitswap
// message queue and gets every want-have and HAVE the box sends, so the
// crowd's control traffic grew with the square of its size (measured, 200
// boxes on a mocknet: 40,852 bitswap message queues, one per pair of
// boxes, ~450,000 goroutines, and the crowd stalled for minutes), where a
// box on a host it built itself stays within ConnLow/ConnHigh.
type managedHost struct {
	host.Host
	cm *connmgr.BasicConnMgr
}

func (h *managedHost) ConnManager() coreconnmgr.ConnManager { return h.cm }

func (h *managedHost) Close() error {
	return errors.Join(h.cm.Close(), h.Host.Close())
}

// listenPorts names the TCP and UDP ports of addrs, for advice such as
// "forward TCP and UDP port 4601".
func listenPorts(addrs []ma.Multiaddr) string {
	var ports []string
	for _, a := range addrs {
		for _, code := range []int{ma.P_TCP, ma.P_UDP} {
			if p, err := a.ValueForProtocol(code); err == nil && p != "0" && !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	}
	switch len(ports) {
	case 0:
		return ""
	case 1:
		return "port " + ports[0]
	}
	return "ports " + strings.Join(ports, ", ")
}
