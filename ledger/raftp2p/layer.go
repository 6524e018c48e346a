package raftp2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// ProtocolID is the Raft protocol between coordinators.
const ProtocolID = protocol.ID("/ore/raft/1.0.0")

// Layer is a raft.StreamLayer over a libp2p host.
type Layer struct {
	h       host.Host
	conns   chan net.Conn
	closing chan struct{}
	once    sync.Once
}

var _ raft.StreamLayer = (*Layer)(nil)

// New registers the Raft protocol on h and returns the layer.
func New(h host.Host) *Layer {
	l := &Layer{h: h, conns: make(chan net.Conn, 16), closing: make(chan struct{})}
	h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		select {
		case l.conns <- &conn{Stream: s}:
		case <-l.closing:
			_ = s.Reset()
		}
	})
	return l
}

// Accept waits for the next incoming Raft connection.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closing:
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (l *Layer) Close() error {
	l.once.Do(func() {
		l.h.RemoveStreamHandler(ProtocolID)
		close(l.closing)
	})
	return nil
}

// Addr is this coordinator's Raft address: its peer ID.
func (l *Layer) Addr() net.Addr { return Addr(l.h.ID()) }

// Dial opens a Raft connection to the coordinator whose address is a peer ID.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	pid, err := peer.Decode(string(address))
	if err != nil {
		return nil, fmt.Errorf("raftp2p: address %q is not a peer ID: %w", address, err)
	}
	// A coordinator that started after this one left a dial backoff behind:
	// Raft retries on its own schedule, so forget the backoff and dial.
	if b, ok := l.h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		b.Backoff().Clear(pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := l.h.NewStream(ctx, pid, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("raftp2p: dial %s: %w", pid, err)
	}
	return &conn{Stream: s}, nil
}

// Addr is a peer ID as a net.Addr.
type Addr peer.ID

// Network is "libp2p".
func (a Addr) Network() string { return "libp2p" }
func (a Addr) String() string  { return peer.ID(a).String() }

// conn is a libp2p stream as a net.Conn.
type conn struct {
	network.Stream
}

var _ net.Conn = (*conn)(nil)

func (c *conn) LocalAddr() net.Addr  { return Addr(c.Stream.Conn().LocalPeer()) }
func (c *conn) RemoteAddr() net.Addr { return Addr(c.Stream.Conn().RemotePeer()) }

// Close closes the stream; a stream the other side already reset is closed.
func (c *conn) Close() error {
	err := c.Stream.Close()
	if errors.Is(err, network.ErrReset) {
		return nil
	}
	return err
}
