// Package dagstream is ore's bulk path for whole DAGs (/ore/dag/1.0.0):
// a client names a root, and optionally a byte range of the file under
// it; a server that holds the whole DAG sends its blocks in one stream,
// depth first, and one that does not answers NotHeld at once, so the
// client asks bitswap instead.
//
// # Why next to bitswap
//
// Bitswap asks block by block, and boxo's client waits at least 20 ms
// between two messages to one peer (minSendMessageDelay, hard-coded in
// its message queue); a session with no peers first broadcasts
// want-have, then sends want-block. A cold fetch of a 256 MiB file on
// loopback waited 55–125 ms for its first leaf, and `ore bench transfer`
// reached 0.39–0.50 of a raw libp2p stream, however its queues and sizes
// were tuned. A server that holds the DAG knows its order: it can send
// it the way CAR responses and graphsync do, on one stream, paced by the
// stream's own flow control. Bitswap stays for single blocks, for peers
// that speak only bitswap, for boxes that hold part of a DAG (a crowd
// trading pieces) and as the fallback.
//
// # Wire
//
// Request (client → server; the client then sends nothing, and resets
// the stream if it gives up): uvarint
// size (≤ MaxRequestSize), then uvarint version, uvarint CID length, the
// root CID, uvarint offset, uvarint length (0: the whole DAG).
// Answer: one Code byte; after Ok, frames: uvarint(n+1) and a block's n
// bytes (n ≤ MaxBlockSize), or uvarint(0) and a Code when the server
// stops early. The stream closes after the walk's last block. Frames
// carry no CIDs: the client knows the CID of every next block.
//
// # Invariants
//
//   - One order: both sides walk the DAG with walker (depth first, a
//     node's links in order, a node with links once, identity CIDs
//     skipped, below a UnixFS file node only the children holding the
//     range's bytes). The client hashes each block and checks it is the
//     next CID of that walk over the blocks verified before it, so a
//     lying server is caught at its first wrong block (wrong bytes,
//     wrong order, a block not linked, an oversize or malformed frame,
//     bytes after the end: a *LieError) and never gets a block past it
//     stored. A block is hashed once and not copied after it is read.
//   - Payments as over bitswap: the server asks the same send gate
//     (bitswap.Decide: the credit window, the data cap, the free tier)
//     before each block, waits while it holds (Release wakes it, as
//     bitswap.Exchange.Release wakes bitswap; the client's receipts pay
//     the window) and refunds a block that did not leave; the client
//     reports each verified block (received) where bitswap's
//     BlockReceived hook goes, so the receipt engine is unchanged.
//   - Bounded: a request ≤ MaxRequestSize, a block ≤ MaxBlockSize, a
//     node's links ≤ MaxLinks, pending links ≤ MaxPending, blocks of a
//     stream ≤ DefaultMaxBlocks; per client DefaultMaxStreamsPerPeer
//     streams and DefaultMaxStreams over all (refused with Busy past
//     them). A server holds one block per stream; a client that stops
//     reading loses its stream after the write timeout, and one whose
//     gate holds it past the hold timeout gets Denied. A client queues
//     at most batchQueue verified blocks for its store: past that it
//     stops reading and the stream's flow control stops the server.
//
// # Usage
//
//	srv, _ := dagstream.NewServer(store, holdsWholeDAG, dagstream.WithGate(gate))
//	h.SetStreamHandler(dagstream.ProtocolID, srv.HandleStream)
//	// wherever bitswap.Exchange.Release(p) is called: srv.Release(p)
//
//	cli, _ := dagstream.NewClient(h)
//	res, err := cli.Get(ctx, source, dagstream.Request{Root: root}, sink, onBlock)
//	if errors.Is(err, dagstream.ErrLied) { /* drop source */ }
//	// on any error: fetch the rest with bitswap
package dagstream
