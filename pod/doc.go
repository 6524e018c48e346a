// Package pod is ore's proof of delivery: receipts that say "in epoch E,
// server box S delivered to client C this many bytes in this many verified
// blocks of the content rooted at R", signed by both sides.
//
// A receipt is cumulative: within one (S, C, R, E) the client signs a new
// one with a higher sequence number as more blocks arrive, and only the
// highest counts, so signing often is cheap and a lost message loses nothing.
// The client signs the body; the server checks it and countersigns body and
// client signature. A receipt is valid only with both signatures, by the
// Ed25519 keys of the named peer IDs, so a box can never claim traffic alone.
//
// The package is pure: no networking, no clock. Epochs are computed from
// Params and a time the caller passes in; the verifier's rules take the
// current epoch as an argument. The wire framing of /ore/pod/1.0.0 works on
// any io.Reader/io.Writer.
//
// Usage:
//
//	params := pod.DefaultParams("ore-devnet")
//	r := &pod.Receipt{Network: params.Network, Epoch: params.EpochAt(now),
//		Server: s, Client: c, Root: root, Seq: 1, Bytes: n, Blocks: k, Digest: d}
//	err := r.SignClient(clientKey)   // on the client
//	err = r.SignServer(serverKey)    // on the server, after its checks
//	v := pod.NewVerifier(params)
//	err = v.Verify(r, params.EpochAt(now)) // every rule, counted by reason
//
// Signatures follow ZIP-215 (cofactored Ed25519), alone or in batches.
// VerifyReceipts checks many receipts at once, in batches on all cores,
// and remembers the ones that verified, so a process pays for a receipt
// once however many of its parts (gossip validator, block builder, state
// machines) look at it.
//
// Rules have one definition each: Params.CheckIn applies the stateless
// rules with a Window of epochs (a peer's clock: Around; a block: InBlock),
// and Receipt.Supersedes says which receipt replaces another. A server's
// refusal carries its Reason on the wire (RefusedError).
//
// Tickets: a Ticket is a publisher's signed authorization of paid demand
// (a root or all its roots, one client or any holder, a byte cap, an
// expiry epoch), known by its ID; a VersionTicket receipt names the ticket
// it is paid under, on networks whose rules take them
// (Params.MaxReceiptVersion). The ledger enforces what a ticket allows.
//
// Encoding: a versioned, canonical binary form (Marshal/Unmarshal) with
// domain-separated signature payloads. Unmarshal rejects every malformed,
// non-canonical or oversized input; a fuzz test checks it never panics.
package pod
