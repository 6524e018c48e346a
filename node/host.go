package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"
)

// newHost builds the box's libp2p host: TCP and QUIC, Noise and TLS, yamux,
// identify, a resource manager with explicit limits, a connection manager,
// AutoNAT, hole punching and the relay client.
//
// With cfg.Host set it returns that host (and no resource manager), once
// it checked that the host's identity is key.
func newHost(cfg *Config, key crypto.PrivKey, reg prometheus.Registerer) (host.Host, network.ResourceManager, error) {
	if cfg.Host != nil {
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			return nil, nil, fmt.Errorf("node: identity: %w", err)
		}
		if cfg.Host.ID() != id {
			cfg.Host.Close() // the box took it over
			return nil, nil, fmt.Errorf("node: the host given runs as %s, the box's identity is %s", cfg.Host.ID(), id)
		}
		return cfg.Host, nil, nil
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
		libp2p.EnableHolePunching(),
		libp2p.EnableRelay(),
		libp2p.UserAgent("ore/" + Version),
		libp2p.PrometheusRegisterer(reg),
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("node: start libp2p host (is another process on the listen ports %v?): %w", cfg.ListenAddrs, err)
	}
	return h, rm, nil
}
