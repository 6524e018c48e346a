// Package meter is ore's receipt engine: the two sides of proof of
// delivery that run on a box, beside bitswap.
//
// It is its own package, not part of node, so that its rules about money
// are decided by code with explicit inputs and tested without a network,
// as the ledger's are: a test feeds it sent and received blocks and
// receipts on a clock it moves, and checks what it signs and what it
// refuses. node only wires it to the host, the store and bitswap.
//
// # The two sides
//
// Client (the fetching side): Want registers the blocks a fetch asks for,
// under its root; Received (bitswap's BlockReceived hook) folds each
// wanted block into a cumulative receipt per (server, root, epoch); the
// receipt is signed and sent to its server after every ReceiptEvery
// bytes, at every Tick, at an epoch change and at Flush/Finalize; the
// countersigned copy is kept in the Store. UseTicket makes a root's
// receipts name the ticket its fetch runs under.
//
// Server (the serving side): Allow and Refund are bitswap's send gate
// (bitswap.Gate, bitswap.GateRefunder): they count what each client was
// sent and holds no receipt for (its debt) and hold blocks back once the
// debt reaches the credit window. Countersign (behind HandleStream, the
// /ore/pod/1.0.0 handler) checks a client's receipt, signs it, keeps it,
// pays the debt, has bitswap release what it held back (Release), and
// tells the box once (Countersigned), which fans it out to heat and gossip.
// AgeDebts forgives debt no receipt can pay any more.
//
// # Dependencies
//
// Everything a side touches outside itself is passed in Config: the
// receipt Store (three metadata calls; store.Store is one), a Transport
// for the receipt exchange (HostTransport over libp2p), Peers
// (connectedness), Release, a Clock, the Countersigned callback, Go (the
// box's goroutine runner) and a Prometheus registry. No side holds a
// pointer to the box, and each has its own lock, taken by nothing else:
// the gate's lock is never held while the client works, nor across a
// store read, a callback or Release.
//
// # Invariants
//
//   - A server countersigns only bytes it sent: the bytes a receipt adds
//     to the one before it for the same (client, root, epoch) are at most
//     what the gate let through to that client and no receipt paid yet,
//     in the epochs a receipt may still name. A refusal carries its
//     pod.Reason on the wire.
//   - A client receipts only blocks it asked for (Want), from the peer
//     that sent them, never its own; a receipt is cumulative and each new
//     one supersedes the last (pod.Receipt.Supersedes).
//   - Every table a remote peer can grow is bounded: MaxDebtors clients
//     in the debt table (the idlest pushed out; one gone for the debt
//     grace forgotten), MaxTickets tickets, and the client's wants,
//     deliveries and senders forgotten MaxSkew+1 epochs on.
//
// # Usage
//
//	srv, _ := meter.NewServer(meter.Config{Params: params, Key: key, Store: st,
//		Peers: meter.HostPeers{Host: h}, Release: ex.Release, Countersigned: fanOut})
//	h.SetStreamHandler(pod.ProtocolID, srv.HandleStream)
//	// bitswap.WithGate(srv); every meter.TickEvery: srv.AgeDebts(ctx)
//
//	cli, _ := meter.NewClient(meter.Config{Params: params, Key: key, Store: st,
//		Transport: meter.HostTransport{Host: h}, Go: spawn})
//	cli.Want(root, cids)            // before asking bitswap for cids
//	cli.Received(from, blk)         // bitswap's BlockReceived hook
//	receipts := cli.Flush(ctx, root) // at the end of the fetch
package meter
