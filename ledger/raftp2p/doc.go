// Package raftp2p carries hashicorp/raft between coordinators over libp2p
// streams (protocol /ore/raft/1.0.0), so the committee needs no ports or
// addresses of its own: a coordinator's Raft address is its peer ID, and the
// box's host (with its encryption, NAT traversal and resource limits) does
// the rest.
//
// Transport is a whole raft.Transport, not a stream layer under Raft's
// NetworkTransport: that one decodes a log entry with msgpack in 256 KiB
// steps, copying what it has read at every step, which for the committee's
// entries (a block each, megabytes at thousands of receipts) costs copies
// that grow with the square of the block. Here an entry's data travels raw
// after a small frame and is read once into a buffer of its size.
//
//	trans := raftp2p.NewTransport(host, raftp2p.WithAllow(isMember))
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, trans)
//	// servers are raft.Server{ID: raft.ServerID(pid.String()), Address: raft.ServerAddress(pid.String())}
//
// Why its own package: it is the ledger's only networking adapter, kept
// apart so the ledger's state machine stays pure (no I/O) as the design asks.
package raftp2p
