// Package intake is the ledger's gossip intake: servers publish countersigned
// receipts on the gossipsub topic /ore/receipts/1, and every peer's topic
// validator drops anything that breaks the receipt rules before it is
// forwarded, so an invalid receipt costs its sender peer score, not network
// bandwidth. Coordinators keep what arrives in a Pool, the latest receipt
// per (server, client, root, epoch), from which the leader builds blocks.
//
// Peer scoring: GossipOptions, which every ore peer creates its PubSub
// with, turns on gossipsub's peer scoring, and ScoreTopic puts each other
// ore topic (block signatures, transactions, heat reports, orders) under
// the same parameters. A message its validator rejects costs the peer that
// sent it score, quadratically in the count of such messages, decaying
// over minutes: a peer with a negative score leaves the meshes, and after
// about ten rejected messages it is graylisted (everything it sends is
// ignored). A message with receipts that are only outside the receiver's
// epoch window is ignored instead, which costs nothing: clocks differ, and
// the sender may have been right by its own. See score.go.
//
// A message carries up to MaxBatch receipts: receipts published at the
// same time travel together (group commit), so a burst of thousands is a
// few dozen messages, not thousands that overflow gossipsub's queues. A
// message with one bad receipt is dropped whole; its sender checked what
// it published, so only a faulty or hostile sender makes one. Signatures
// are verified in Ed25519 batches on all cores, once per process
// (pod.VerifyReceipts).
//
// Usage:
//
//	in, err := intake.New(ps, params, intake.WithPool(pool))
//	err = in.Publish(ctx, receipt)      // a server, after countersigning
//	err = in.PublishBatch(ctx, rs)      // many; bad ones are named, the rest go
//	rs := pool.Pending(epoch)           // the leader, closing an epoch
//
// Why its own package: it is networking (libp2p pubsub) and the ledger's
// state machine must stay pure.
package intake
