// Package raftp2p carries hashicorp/raft between coordinators over libp2p
// streams (protocol /ore/raft/1.0.0), so the committee needs no ports or
// addresses of its own: a coordinator's Raft address is its peer ID, and the
// box's host (with its encryption, NAT traversal and resource limits) does
// the rest.
//
// It is a raft.StreamLayer: a net.Listener that accepts one net.Conn per
// incoming stream, and a Dial that opens a stream to a peer ID. Wrap it with
// raft.NewNetworkTransport:
//
//	layer := raftp2p.New(host)
//	trans := raft.NewNetworkTransport(layer, 3, 10*time.Second, logOut)
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, trans)
//	// servers are raft.Server{ID: raft.ServerID(pid.String()), Address: raft.ServerAddress(pid.String())}
//
// Why its own package: it is the ledger's only networking adapter, kept
// apart so the ledger's state machine stays pure (no I/O) as the design asks.
package raftp2p
