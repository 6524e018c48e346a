// Package committee runs the ledger's coordinators: a small committee (3, 4
// or 5, named in the genesis) that elects a leader with hashicorp/raft over
// libp2p streams (ledger/raftp2p). The leader closes each epoch: it builds a
// block from the receipts of that epoch that the gossip intake delivered
// (ledger/intake) and the account transactions submitted on /ore/txs/1, and
// appends it to the Raft log. What happens then depends on the genesis's
// finality rule (ledger.Genesis.Finality):
//
//   - ledger.FinalityBFT (committees of 4 and 5 made by NewGenesis): the
//     log carries proposals, not state. Members check a proposal against
//     their last final state and their clock, prevote and precommit it on
//     /ore/blocks/1 as Tendermint does (bft.go), and apply a block only
//     once more than two thirds of the committee precommitted it in one
//     round. Each vote passes the sign guard (guard.go: a file synced
//     before the signature exists), so a member never signs two blocks
//     for one (height, round, step), even across a crash. A leader that
//     equivocates, or whose clock is wrong, gets no quorum; the round runs
//     out, the members stop taking its Raft traffic (raftp2p.WithAllow
//     asks on every request) so that Raft elects another leader, which
//     finalizes the height in a later round. Two votes of one member for
//     two blocks at one (height, round, step) are evidence
//     (ledger.KindEvidence): counted (ore_ledger_equivocations_total),
//     submitted like a transaction (kept, handed to the leader, gossiped
//     on /ore/txs/1, whose validator checks both signatures and the
//     membership), and once a final block holds it the member's votes
//     count for nothing, its proposals get no vote and its Raft traffic
//     is refused. The leader pipelines: while its block at height h
//     collects votes it proposes h+1 on the state h leaves; members keep
//     that proposal unvoted until h is final and then judge it like any
//     other (bft.go, proposeBFT), so one slow block does not hold back
//     the next.
//   - ledger.FinalityMajority (genesis files without "finality", and
//     committees of 3): every member's FSM applies what Raft commits with
//     the pure state machine (ledger.Apply), stores it, signs its hash
//     (unless its epoch is wrong by the member's clock, see below) and
//     gossips the signature; a block is final once a majority signed it.
//     This rule tolerates crashed members, not lying ones.
//
// Usage:
//
//	c, err := committee.New(ctx, committee.Config{Genesis: g, Host: h, Key: k,
//		PubSub: ps, Pool: pool, Dir: dir})
//	defer c.Close()
//	st := c.State()            // the state after the last applied block
//	b, ok := c.Block(height)   // with the signatures gathered so far
//
// Invariants: a member applies only blocks that ledger.Apply accepts, in
// height order, so every member holds the same chain and state hash; under
// FinalityBFT only blocks a quorum precommitted in one round, so with at
// most one faulty member of 4 the chain never forks; under the majority
// rule a block reaches the FSM only through the Raft log; a receipt is
// paid at most once because the state machine pays only the increase per
// (server, client, root, epoch).
//
// Hard edges (epoch.go, validate.go, txpool.go, synclimit.go):
//
//   - Epochs: the state machine takes the epoch a block names. A member
//     signs no block whose epoch is more than one ahead of its own clock
//     or before the previous block's; it counts it
//     (ore_ledger_blocks_unsigned_total), logs it, and shows the leader's
//     clock against its own (ore_ledger_block_epoch_lead,
//     ore_ledger_leader_clock_offset_seconds). Under FinalityBFT it does
//     not vote for it, so the block never becomes final and the round
//     runs out; a leader whose clock is behind the chain proposes nothing
//     and hands the lead over; a member that holds receipts of an epoch
//     whose block is overdue counts the round's time from then, so a
//     leader that proposes nothing loses the lead too. Under the majority
//     rule a member still applies such a block (every member applies what
//     Raft commits), and a leader and one member, both wrong, make it
//     final: that rule is kept for committees of 3 and older chains. The receipt pool
//     forgets receipts by the chain's epoch, not a member's clock, and the
//     leader drops no receipt its block was too late for: a leader with a
//     correct clock may still pay it.
//   - Gossip: /ore/blocks/1 admits a member's valid signature over a block
//     hash and /ore/txs/1 a well-formed account transaction or ticket
//     (within its kind's size limit, authenticated for this network:
//     ledger.Tx.Authenticate); anything else is rejected
//     before gossipsub forwards it, counted
//     (ore_ledger_gossip_refused_total) and costs its sender peer score
//     (intake.GossipOptions). A valid transaction this member's pool cannot
//     take is ignored, not rejected.
//   - Transactions: the pool holds at most 100,000, at most 64 of one
//     account, and refuses beyond with an error the submitter hears (Submit,
//     SubmitTx, the CLI); a block takes at most 16 of one account's, the
//     rest wait for the next. Account transactions cost nothing; a fee
//     would price them instead, but changes the state machine.
//   - Chain sync: a peer outside the committee gets blocks from a bucket of
//     2,000 refilled at 200 a second (the stream is paced, and reset if a
//     block would wait more than 5 s) and has at most 2 chain streams open
//     (ore_ledger_chain_sync_limited_total).
//   - Faults together: Chaos (chaos.go, `ore bench chaos`) runs a
//     committee of 4 in one process under a seeded schedule of kills,
//     partitions, clock skews, an equivocating leader and lost links, and
//     checks one history, one state hash, receipts paid at most once and
//     supply conserved at the end.
//   - Replication orders are signed by one member (the leader); boxes
//     bound how long one runs (heat.MaxOrderEpochs). Orders backed by a
//     quorum come with the finality work.
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
