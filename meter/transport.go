package meter

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/orecdn/ore/pod"
)

// HostTransport is the /ore/pod/1.0.0 exchange over a libp2p host: one
// stream per receipt.
type HostTransport struct{ Host host.Host }

var _ Transport = HostTransport{}

// RoundTrip opens a stream to r's server, writes r and reads the answer.
func (t HostTransport) RoundTrip(ctx context.Context, r *pod.Receipt) (*pod.Receipt, error) {
	st, err := t.Host.NewStream(ctx, r.Server, protocol.ID(pod.ProtocolID))
	if err != nil {
		return nil, fmt.Errorf("meter: open receipt stream: %w", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(StreamTimeout))
	if err := pod.WriteRequest(st, r); err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("meter: send receipt: %w", err)
	}
	_ = st.CloseWrite()
	return pod.ReadResponse(st)
}

// HostPeers reports a libp2p host's connections.
type HostPeers struct{ Host host.Host }

// Connected reports whether the host is connected to p.
func (h HostPeers) Connected(p peer.ID) bool {
	return h.Host.Network().Connectedness(p) == network.Connected
}

// HandleStream is the server's /ore/pod/1.0.0 stream handler: it reads a
// receipt, countersigns it or refuses it, and writes the answer (a refusal
// with its reason code).
func (s *Server) HandleStream(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(StreamTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), StreamTimeout)
	defer cancel()
	from := st.Conn().RemotePeer()
	r, err := pod.ReadRequest(st)
	if err == nil {
		err = s.Countersign(ctx, from, r)
	} else {
		s.rejected.WithLabelValues(string(pod.ReasonOf(err))).Inc()
	}
	if err != nil {
		s.log.Debug("receipt refused", "client", from, "err", err)
	}
	if werr := pod.WriteResponse(st, r, err); werr != nil {
		_ = st.Reset()
	}
}
