// Package bitswap is an ore box's block exchange: boxo's bitswap over the
// box's libp2p host, with the DHT as provider finder, so one get pulls
// blocks from several boxes in parallel through a session.
//
// The wrapper is thin on purpose. It fixes ore's defaults (see defaults.go),
// and it is the one place where the rest of ore hooks into the exchange:
// Hooks report every block sent to and received from each peer, and a
// RequestFilter can refuse to serve a peer (the proof-of-delivery credit
// window plugs in there). The package knows nothing of receipts.
//
// Under boxo's server sits one network layer (gate.go) that every block
// sent passes: it applies the upload limit (limit.go), the send gate
// (gate.go: a block is sent, held until Release, or, for a GateDecider,
// answered with DONT_HAVE), the seed's spreading of its blocks (spread.go), and drops a
// block whose asker cancelled the want while the block waited for its turn
// at the uplink (latecancel.go).
//
// Usage:
//
//	ex := bitswap.New(ctx, host, router, blockstore,
//		bitswap.WithHooks(bitswap.Hooks{BlockSent: countSent}))
//	defer ex.Close()
//	ses := ex.NewSession(ctx)
//	ch, err := ses.GetBlocks(ctx, cids)
//
// The standard bitswap protocol IDs are kept, so IPFS tools can talk to a box.
package bitswap
