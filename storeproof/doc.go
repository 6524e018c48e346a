// Package storeproof proves that a box holds the bytes of a content root:
// a publisher commits to the root's bytes in fixed-size segments, the
// ledger draws challenges from randomness no single party picks alone,
// and a box answers with the challenged segments and their Merkle paths,
// which anyone checks against the commitment alone (as Filecoin's PDP and
// Sia's storage proofs do). It is pure: no I/O but the io.Reader a caller
// hands in, no clock; the ledger (RulesV5) and the box (node) build on it.
//
// # The committed bytes and the commitment
//
// The bytes of a root are its DAG's blocks, raw, in depth-first order
// from the root, each block once at its first visit (the order a CAR
// export writes them). They are cut into segments of SegmentSize (1 KiB)
// bytes, the last one shorter. The commitment is the Merkle root over the
// segments, built as RFC 6962 builds its trees (leaf and inner hashes
// under distinct prefixes, the split at the largest power of two below
// the count, so no two segment lists share a root), with the length in
// bytes beside it: Commitment{Root, Length}.
//
// Who computes it: the publisher, once, when it offers storage of a root
// (ledger KindStorage, with the price per GiB per epoch). The ledger
// cannot check it against the content (it never sees the content).
// Honest boxes do: a box that fetches the root computes the commitment
// over what it fetched (CommitReader) and, if it differs, declines to
// hold it for pay. A wrong commitment costs the publisher nothing it did
// not ask for and pays no box: no proof can verify against a commitment
// that does not match the bytes, so every challenge is missed, nothing is
// paid from the reservation and it all returns to the publisher when the
// storage offer ends. The decline needs no transaction: its consequence
// (no pay) follows from the rules.
//
// # Randomness
//
// A challenge round opens with a beacon: the leader of the first block of
// a round puts in it the precommits of exactly a quorum of the committee
// for the previous block (height h-1, the certificate that made it
// final), which the ledger checks against the header hash it holds. The
// seed is SHA-256 over a domain prefix, the previous block's hash and
// height and those signatures sorted by signer (Seed). The leader's own
// block hash is not the seed: a leader can grind its block (time,
// transaction order) but not the other members' signatures over it.
//
// # Challenges and proofs
//
// Per held (box, root) per round, K = ChallengesPerRound segment indices,
// each SHA-256(domain, seed, box, root, j) mod segments (with
// replacement: independent draws, so a box missing a fraction α of the
// segments passes a round with probability (1-α)^K exactly). A proof is
// the K segments' bytes and paths, in challenge order, checked against
// the commitment alone (Verify): no signature, only hashes.
//
// # The arithmetic (defaults: 10 s epochs, 64 MiB roots)
//
//   - Catching a 5 % loss with 99 % certainty per day needs K_day with
//     0.95^K_day <= 0.01, K_day >= 90 (log 0.01 / log 0.95 = 89.8). A round
//     every RoundEpochs = 720 epochs (2 h; the default, a genesis may set
//     another) is 12 rounds a day; K = 8 per
//     round is 96 challenges a day: 0.95^96 = 0.72 % chance of passing a
//     day, so a cheater that dropped 5 % is caught within a day with
//     probability 99.28 %. After MaxMisses (3) missed rounds its order is
//     revoked: a cheater at 5 % misses a round with 1 - 0.95^8 = 33.7 %,
//     so it is revoked after about 9 rounds (18 h).
//   - Bytes: a segment of 1 KiB and its path (16 hashes of 32 bytes for
//     the 65,536 segments of 64 MiB) is about 1.5 KiB; a proof (8 of them
//     and framing) about 12.3 KiB; 12 a day 148 KiB, 0.23 % of 64 MiB per
//     replica per day (the goal is < 1 %), and less for larger roots
//     (0.12 % at 128 MiB). A 1 TiB root (2^30 segments, 30 hashes a path)
//     still fits a proof transaction in 16 KiB (MaxProofSize).
//   - CPU: verifying a proof is 8 × (1 + 16) SHA-256 (one over 1 KiB,
//     16 over 65 bytes): about 150 µs on one core of the 2-core test
//     machine, which lacks SHA extensions (BenchmarkVerify64MiB), and no
//     signature check (the proof is its own authority; whoever submits it
//     only pays the box it names). The committee's load at 100,000 held
//     replicas: 1.2 M proofs a day, 13.9 a second, about 2 ms of CPU a
//     second, beside receipts that cost two Ed25519 checks each. A box answering reads the root once per
//     round to rebuild the tree (Tree: 32 bytes per segment, 2 MiB for 64
//     MiB) and hashes it: about 0.1 s of CPU per 64 MiB root per round.
//   - Block bytes: 100,000 proofs per 2 h round are 1.2 GiB per round,
//     about 170 KB a second through the committee.
//
// # What it does not defend against
//
//   - Outsourcing: a box that, when challenged, fetches the 8 segments from
//     another box (or the publisher's gateway) answers correctly without
//     storing anything. The ledger sees only epochs: a proof is accepted
//     in a block up to ProofWindow epochs after the beacon's epoch, which
//     is minutes, not the milliseconds that would separate a local read
//     from a remote one. What is defended: a box that keeps nothing and
//     has no one to fetch from; a box that dropped part of a root and
//     cannot fetch it back in time; replaying an older proof (each round's
//     challenges are new, each (box, root, round) is paid once).
//   - Grinding by a faulty member: Ed25519 signatures are not unique (any
//     nonce verifies), so a faulty member of the quorum can sign block h-1
//     many ways and pick among seeds, and the leader of the beacon block
//     picks which quorum of the precommits it received to include (at
//     most C(n, quorum) choices: 4 in a committee of 4). A box colluding
//     with neither cannot predict or steer its challenges; a box
//     colluding with a member can. A unique threshold signature (BLS) or a
//     VRF closes this and is left for later.
//   - Sybil replicas: three boxes of one operator sharing one disk pass
//     every proof; the ledger pays storage per box an order names.
//   - Deadlines finer than an epoch: a box that answers within the window
//     is paid for the whole round, even if it held the data only then.
package storeproof
