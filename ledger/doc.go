// Package ledger is the pure core of ore's ledger: the genesis every peer
// shares, transactions, signed hash-chained blocks and the deterministic
// state machine that turns proof-of-delivery receipts into payments.
//
// It does no I/O, reads no clock, draws no randomness and never depends on
// map iteration order, like etcd's raft core: the Raft committee, gossip
// intake, block storage, chain sync and the CLI are built around it, and
// any peer that replays the chain from genesis gets the same state hash.
//
// # Money
//
// One unit, the ore token, in integer base units (uint64; no floats
// anywhere). The total supply is the sum of the genesis balances and every
// block conserves it. An account is an Ed25519 libp2p peer ID with a
// balance (spendable), an escrow (deposited to pay for its content) and a
// nonce. Transactions:
//
//   - Deposit: balance -> the same account's escrow.
//   - Register: a publisher registers a content root with a price per GiB
//     (0 takes the genesis price); only that publisher may reprice it.
//   - Transfer: balance -> another account's balance.
//   - Prewarm: a publisher asks that Replicas boxes (1 to
//     MaxPrewarmReplicas) pre-store a root it registered, up to and
//     including epoch Until (after the block's epoch, at most
//     MaxPrewarmEpochs after it). A new pre-warm of the root replaces the
//     old one. No money moves: the replication traffic is paid by receipts
//     like any delivery. The coordinators' scheduler reads State.Prewarms.
//   - Withdraw (RulesV3): escrow -> the same account's balance, after a
//     notice: the amount (at most what is then in escrow) moves with the
//     first block WithdrawDelay (MaxSkew+1) epochs after the one that took
//     the request. Receipts of every epoch up to the request can no longer
//     be paid by then, so every delivery made while the escrow stood
//     before it is paid from it; a box reads State.Withdrawal to see that
//     serving later deliveries is at its own risk. A new withdrawal
//     replaces a pending one and restarts the notice.
//   - SpendCap (RulesV3): the most an account's escrow pays for receipts
//     of any one epoch (by the receipt's epoch, whichever block takes it;
//     0: no cap). Bytes beyond the cap are accounted and never paid, as
//     bytes beyond an empty escrow are.
//   - RegisterRoot (RulesV4): a publisher's registration of a root with
//     the root's block, from which the ledger reads the DAG's size; a
//     price; and Open, what it pays per epoch for receipts under no
//     ticket (0: tickets only). Registrations are per (publisher, root).
//   - RegisterRoot also sets Replicate (RulesV4): what the publisher pays
//     per epoch for the replication the committee orders when the root is
//     hot (0: none). A Prewarm (RulesV4) reserves from the escrow what its
//     replication may cost (Account.Reserved) and gives the rest back
//     when it ends.
//   - Order (RulesV4): a replication order (heat.Order) a committee
//     member signed, which only a leader puts in its block; boxes obey
//     orders only with a proof that a final block holds them (OrderProof),
//     and an unticketed receipt whose client a recorded order names is
//     paid as replication (orders.go).
//   - Ticket (RulesV4): a publisher's signed pod.Ticket, learned once
//     (its signature checked then) and known by its ID until no receipt
//     can be paid under it; anyone may hand it over.
//   - Function (RulesV4): a publisher registers a function (the CID of
//     its descriptor, package compute) with a price per 2^30 work units
//     and the most work one job is paid for. See jobs.go.
//   - Job (RulesV4): a pod.JobReceipt signed by its runner and its
//     requester pays the runner floor(work*price/2^30) from the
//     requester's escrow, once per (job, requester) over every runner,
//     for work up to the function's limit.
//     Under RulesV5 the pay is held for the genesis's job challenge
//     window and reaches the runner only if no proof of a mismatch came,
//     the runner's bond must cover the genesis's JobBondFactor (1 / its
//     sampling rate) times its pay under challenge, and a job may
//     be paid under a publisher's ticket (jobcheck.go).
//   - Bond, Unbond (RulesV5): a runner locks balance as its bond, and
//     asks it back after the challenge window (jobcheck.go).
//   - JobMismatch (RulesV5): a quorum of committee members' signed
//     checks (pod.JobCheck) of a pending job that agree with each other
//     and not with the runner's claim: the job's pay returns to its
//     payer, the runner's bond goes to the checkers, and the runner is
//     recorded as a cheat (jobcheck.go).
//   - Evidence (FinalityBFT): two votes of one committee member for two
//     blocks at one (height, round, step), which anyone checks with the
//     member's key (evidence.go). Anyone may submit it; the block that
//     takes it excludes the member: its signatures count for nothing
//     from the next block on (Verify), the quorum stays counted over the
//     genesis committee, and one proof per member is taken.
//   - Storage (RulesV5): a publisher's offer to pay, per GiB per epoch,
//     Replicas boxes that prove they hold a root it registered, until
//     epoch Until, against its commitment to the root's bytes (package
//     storeproof); it reserves from the escrow what every replica could
//     earn. See storage.go.
//   - Beacon (RulesV5): exactly a quorum of the committee's signatures of
//     the previous block, which a leader puts first in the first block of
//     a challenge round (Genesis.ChallengeRound epochs: 720, or the
//     genesis's storage_round_epochs); their hash seeds the round's
//     challenges.
//   - Proof (RulesV5): a box's segments and Merkle paths for its
//     challenges of one root in the open round, checked against the
//     offer's commitment alone; it pays the box the round's price from the
//     reservation, once per (box, root, round), if the root's recorded
//     order names it. Missed rounds are unpaid, and MaxMisses of them
//     revoke the box's storage and take it off the order.
//   - Receipt: a pod.Receipt signed by client and server. It pays the
//     server floor(bytes*price/2^30) cumulatively for the (server, client,
//     root, epoch): only the bytes beyond those already accounted, from
//     the publisher's escrow, at most what is left. Unregistered content
//     earns nothing. Its epoch must be at most pod.DefaultMaxSkew epochs
//     before the block's and not after it.
//
// Account transactions are signed by their account over a domain prefix
// and the network ID, and carry the account's next nonce (State.Nonce+1).
//
// # Blocks
//
// A Block is a Header (height, previous hash, epoch, proposer, the
// leader's time, the Merkle root of the transaction IDs, the hash of the
// state after the block), the transactions and the committee's signatures
// over the header hash (not part of the hash). Encodings are versioned,
// length-prefixed and canonical (a decoder accepts one encoding per value
// and re-encodes to check); hashes and signatures are domain-separated.
// A block is final (Final) under the genesis's finality rule
// (finality.go): FinalityBFT, more than two thirds of the committee's
// precommits of one round over (height, round, hash), which tolerates
// one lying member in 4 or 5; or the first rule, a majority's signatures
// over the hash, which genesis files without "finality" keep so their
// chains still verify.
//
// # Usage
//
//	g, err := ledger.LoadGenesis("genesis.json")
//	s, err := ledger.NewState(g)
//
//	// the leader, each round:
//	b, next, rejected, err := ledger.Build(s, g.Params().EpochAt(now), self, now.UnixNano(), pending)
//	for _, r := range rejected { refused.WithLabelValues(string(r.Reason)).Inc() }
//	err = b.Sign(key) // then collect the other members' signatures (AddSignature)
//
//	// every peer, for each block received in order:
//	if !b.Final(g) { ... wait for signatures ... }
//	next, err := ledger.Apply(s, b) // s stays valid; keep it as a snapshot if you like
//
// Receipt signatures are checked with pod.VerifyReceipts: Ed25519 batches
// over chunks of the block's receipts on all cores, one by one only inside
// a chunk that fails, and not at all for receipts this process verified
// already (at gossip intake, or in the leader's Build). The verdict is a
// function of the receipt's bytes, so Apply stays pure.
//
// # Invariants
//
//   - sum(balances) + sum(escrows) == Supply() after every block.
//   - Apply(s, b) never modifies s; States are immutable and safe to share.
//   - Apply is a function of (s, b) alone: same inputs, same state, same
//     Hash, on every peer and every number of cores.
//   - A block applies only if every transaction is valid; Build leaves out
//     (and reports) the invalid ones, so its blocks always Apply.
//   - No balance or escrow goes negative: a dry publisher stops paying.
//   - Payments for one (server, client, root, epoch) never exceed
//     floor(highest receipt bytes * price / 2^30) at the current price:
//     a duplicate or older receipt pays zero. Paid entries older than
//     the block epoch minus MaxSkew are dropped (their receipts are refused).
//   - Every pre-warm in a state is of a root registered by its publisher
//     and has Until at or after the state's epoch: ended ones are dropped
//     when the next block is applied (under RulesV4, MaxSkew epochs later,
//     when no receipt its reservation pays can come any more, and its
//     reservation returns to the escrow). The state hash covers them.
//   - Under RulesV4 an account's Reserved is the sum of its pre-warms'
//     Reserved (under RulesV5, and of its storage offers' Reserved);
//     supply is every Balance, Escrow and Reserved.
//   - RulesV5 pays storage only for a proof that verifies against the
//     offer's commitment for the challenges the state derives from the
//     beacon of the open round, at most once per (box, root, round), at
//     most Replicas boxes a round, never beyond the offer's reservation.
//   - The state hash follows the genesis's rules version (Genesis.Rules):
//     RulesV2 hashes each epoch's paid entries on their own, so a block
//     costs what it pays, not the whole skew window; RulesV3 adds spending caps, what each capped publisher spent per
//     epoch and pending withdrawals, and refuses nothing V2 accepted;
//     RulesV1 (genesis files without "rules") keeps the first definition
//     so older chains still verify. A chain keeps its genesis's rules:
//     V1 and V2 chains refuse Withdraw and SpendCap (not_in_rules).
//   - A publisher's escrow pays at most its EpochCap for the receipts of
//     any one epoch, over every server, client and root.
//   - RulesV4 (new networks) pays only demand a publisher authorized:
//     a receipt under a ticket pays from the ticket's publisher, for at
//     most the ticket's Cap bytes over every server, client and epoch,
//     only for receipts the ticket covers (root, client, expiry); one
//     under a ticket the ledger has not learned, or that does not cover
//     it, is refused. A receipt under no ticket pays only from a
//     registration that opened the root, within its Open budget per
//     epoch. All receipts of one client for one root in one epoch pay for
//     at most RetryFactor (2) times the root's size. A second registrant
//     of a root neither blocks the first nor pays for its tickets. See
//     tickets.go. A receipt under no ticket whose client a recorded order
//     names is paid as replication, from a pre-warm's reservation or a
//     registration's Replicate budget, each box at most RetryFactor times
//     the root's size over the order's renewals. See orders.go.
//   - Apply does not check signatures of the committee (use Final) nor
//     that the block's epoch matches a clock: callers that have a clock
//     refuse blocks from the future themselves.
package ledger
