package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Mode says whether a box answers DHT queries from other boxes.
type Mode int

const (
	// ModeAuto serves the DHT once AutoNAT finds the box publicly reachable.
	ModeAuto Mode = iota
	// ModeServer always serves the DHT (LANs, testnets, coordinators).
	ModeServer
	// ModeClient never serves the DHT (boxes behind NAT that cannot be reached).
	ModeClient
)

// ParseMode reads a mode as written in a config file: "auto", "server" or "client".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "server":
		return ModeServer, nil
	case "client":
		return ModeClient, nil
	}
	return 0, fmt.Errorf("dht: unknown mode %q: use auto, server or client", s)
}

func (m Mode) String() string {
	switch m {
	case ModeServer:
		return "server"
	case ModeClient:
		return "client"
	default:
		return "auto"
	}
}

// DefaultReprovideInterval is how often a box announces its roots again.
// kad-dht keeps provider records for 48 h; 12 h leaves room for failures.
const DefaultReprovideInterval = 12 * time.Hour

// RootsFunc lists the roots a box announces when it reprovides.
type RootsFunc func(ctx context.Context) ([]cid.Cid, error)

type config struct {
	mode              Mode
	bootstrap         []peer.AddrInfo
	reprovideInterval time.Duration
	roots             RootsFunc
	log               *slog.Logger
}

// Option configures a Router.
type Option func(*config) error

// WithMode sets the DHT mode (default ModeAuto).
func WithMode(m Mode) Option {
	return func(c *config) error {
		if m < ModeAuto || m > ModeClient {
			return fmt.Errorf("dht: invalid mode %d", m)
		}
		c.mode = m
		return nil
	}
}

// WithBootstrapPeers sets the peers a box dials to join the network.
func WithBootstrapPeers(peers []peer.AddrInfo) Option {
	return func(c *config) error {
		c.bootstrap = append([]peer.AddrInfo(nil), peers...)
		return nil
	}
}

// WithReprovideInterval sets how often roots are announced again; 0 turns
// reproviding off.
func WithReprovideInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return errors.New("dht: negative reprovide interval")
		}
		c.reprovideInterval = d
		return nil
	}
}

// WithRoots sets where the reprovider finds the roots to announce.
func WithRoots(f RootsFunc) Option {
	return func(c *config) error {
		c.roots = f
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("dht: nil logger")
		}
		c.log = l
		return nil
	}
}
