// Package committee runs the ledger's coordinators: a small committee (3 or
// 5, named in the genesis) that elects a leader with hashicorp/raft over
// libp2p streams (ledger/raftp2p). The leader closes each epoch: it builds a
// block from the receipts of that epoch that the gossip intake delivered
// (ledger/intake) and the account transactions submitted on /ore/txs/1, and
// applies it through Raft. Every member's FSM applies the block with the
// pure state machine (ledger.Apply), stores it, signs its hash and gossips
// the signature on /ore/blocks/1; a block is final once a majority of the
// committee signed it.
//
// Usage:
//
//	c, err := committee.New(ctx, committee.Config{Genesis: g, Host: h, Key: k,
//		PubSub: ps, Pool: pool, Dir: dir})
//	defer c.Close()
//	st := c.State()            // the state after the last applied block
//	b, ok := c.Block(height)   // with the signatures gathered so far
//
// Invariants: the FSM applies only blocks that ledger.Apply accepts, in
// height order, so every member holds the same chain and state hash; a
// block reaches the FSM only through the Raft log, so the chain never
// forks; a receipt is paid at most once because the state machine pays
// only the increase per (server, client, root, epoch).
//
// Why its own package: it is the ledger's networking and persistence (Raft,
// gossip, the Raft log and the block store) around the pure core in package
// ledger. On disk, under Config.Dir: raft-wal/ (the Raft log; raft.db in
// members created before it), chain.dat (block bodies, appended) and
// chain.db (bolt: where each body is, headers and signatures). Blocks are
// written to chain.dat and chain.db behind the FSM, which does not wait for
// the disk; the Raft log keeps a block's entry until a snapshot covers it,
// and a snapshot is persisted only once the blocks below it are written.
// The log holds about the last 128 blocks (snapshotEvery + trailingLogs);
// a member further behind installs a snapshot, which is only a height, and
// fetches the blocks it lacks from the others' chains (ChainProtocol),
// verifying them as any peer does.
package committee
