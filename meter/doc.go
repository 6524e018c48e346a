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
// bytes (more, up to a quarter of MaxCreditWindow, as the delivery's
// receipts pay: receiptInterval), at every Tick, at an epoch change and at Flush/Finalize; the
// countersigned copy is kept in the Store. UseTicket makes a root's
// receipts name the ticket its fetch runs under.
//
// Server (the serving side): Allow and Refund are bitswap's send gate
// (bitswap.Gate, bitswap.GateRefunder): they count what each client was
// sent and holds no receipt for (its debt), hold blocks back once the
// debt reaches the client's credit window (CreditWindow for a new client,
// widened by each byte it paid up to MaxCreditWindow: Server.windowOf is
// the rule), and keep each block let through (its
// CID, size and epoch) until a receipt claims it. Countersign (behind
// HandleStream, the /ore/pod/1.0.0 handler) checks a client's receipt
// against that meter, signs it, keeps it, pays the debt, has bitswap
// release what it held back (Release), and tells the box once
// (Countersigned), which fans it out to heat and gossip. AgeDebts
// forgives debt no receipt can pay any more.
//
// # Which root a sent block counts for
//
// A server countersigns a receipt only up to its own meter for the
// receipt's (client, root, epoch), and only for roots it holds. Bitswap
// cannot tell it the root: a want names a CID and nothing else, and a
// client asks the parent of a block from one box and the block from
// another. The receipt names the root, and the server holds the DAG: so
// the gate keeps each block it let through to a client, and a receipt's
// added bytes must be covered by such blocks, not claimed yet, that belong
// to the DAG of the root the receipt names as this box holds it, sent
// within MaxSkew epochs of the receipt's epoch (two boxes' clocks may
// differ that much). A root's DAG is walked in the box's Blocks once, its
// inner nodes only (a link whose cumulative size is its block's own is a
// leaf, not read), and kept in a bounded index (MaxRootMembers,
// MaxIndexedMembers) as keyed 64-bit hashes of the blocks' multihashes.
// A DAG the box holds only in part is walked again when a client claims a
// block sent after the last walk that the walk did not find (the box may
// have fetched more of the root meanwhile): a client makes the box walk
// again only by taking a new block each time.
//
// Why this design: telling the server the root with each want would need
// a protocol beside bitswap's (a message per want, or per session and
// server, which boxo's sessions do not expose), and a server asked for a
// block whose parent the client got elsewhere would still not know the
// root. Checking the claim against the DAG needs nothing new on the wire
// and costs little: at the gate, one hash and one append per block (see
// BenchmarkServerMeterPerBlock); per root, one walk that reads only inner
// nodes (one block in ~174 of a file's); per receipt, one set lookup per
// unclaimed block of the client.
//
// A block in the DAGs of two roots (a file in two directories, a repeated
// chunk), sent once, counts for the first receipt that claims it under
// either root, and for no other: claims take a client's unclaimed blocks
// of the named DAG oldest first, so a block is paid once whatever roots
// share it. What this costs an honest client: if it fetches two
// overlapping roots from one server at once, a receipt of one root may
// take a shared block the client counted under the other, whose receipt
// then falls short by that block and is refused; and a server that holds
// a sub-DAG but not the root a client fetches it under (a file, not the
// directory the client names) is refused as not serving that root. Both
// cost the server its pay for those bytes, never the publisher more.
//
// The refusals carry pod.ReasonNotServed (a root the server does not
// hold, or of which it sent the client nothing unclaimed) and
// pod.ReasonUnsent (more bytes than it sent of the root). The receipt's
// Blocks field is not metered: a client may count blocks in another order
// than the server sent them, and only bytes are paid (Blocks bounds Bytes
// by the stateless rule, bytes ≤ blocks × 2 MiB).
//
// # Dependencies
//
// Everything a side touches outside itself is passed in Config: the
// receipt Store (three metadata calls; store.Store is one), a Transport
// for the receipt exchange (HostTransport over libp2p), Peers
// (connectedness), Release, a Clock, the Countersigned callback, Go (the
// box's goroutine runner) and a Prometheus registry. No side holds a
// pointer to the box, and each has its own locks, taken by nothing else:
// the gate's lock is never held while the client works, nor across a
// store read, a DAG walk, a callback or Release. Countersigning takes one
// more of its own (so two receipts never draw on the same sent blocks),
// which the gate never waits on.
//
// # Invariants
//
//   - A server countersigns only bytes it sent of the root a receipt
//     names: the bytes a receipt adds to the one before it for the same
//     (client, root, epoch) are covered by blocks of that root's DAG the
//     gate let through to that client, that no receipt claimed; each
//     sent byte pays at most one receipt. A refusal carries its
//     pod.Reason on the wire.
//   - A server's gate lets through to a client at most windowOf(client)
//     bytes that no receipt paid: CreditWindow for a client that never
//     paid, and never more than what it paid plus CreditWindow, nor more
//     than MaxCreditWindow. That bounds a cheating client's free ride.
//   - A client receipts only blocks it asked for (Want), from the peer
//     that sent them, never its own; a receipt is cumulative and each new
//     one supersedes the last (pod.Receipt.Supersedes).
//   - Every table a remote peer can grow is bounded: MaxDebtors clients
//     in the debt table (the idlest pushed out; one gone for the debt
//     grace forgotten), MaxSentPerClient and MaxSent unclaimed blocks
//     (dropped past MaxSkew epochs), the DAG index, MaxTickets tickets,
//     and the client's wants, deliveries and senders forgotten MaxSkew+1
//     epochs on.
//
// # Usage
//
//	srv, _ := meter.NewServer(meter.Config{Params: params, Key: key, Store: st, Blocks: bs,
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
