// Package intake is the ledger's gossip intake: servers publish countersigned
// receipts on the gossipsub topic /ore/receipts/1, and every peer's topic
// validator drops anything that breaks the receipt rules before it is
// forwarded, so an invalid receipt costs its sender peer score, not network
// bandwidth. Coordinators keep what arrives in a Pool, the latest receipt
// per (server, client, root, epoch), from which the leader builds blocks.
//
// Signatures are checked in batches (pod.BatchVerify) across concurrent
// validations, which is what lets a coordinator take 20,000 receipts/s on
// two cores.
//
// Usage:
//
//	in, err := intake.New(ps, params, intake.WithPool(pool))
//	err = in.Publish(ctx, receipt)      // a server, after countersigning
//	rs := pool.Take(epoch)              // the leader, closing an epoch
//
// Why its own package: it is networking (libp2p pubsub) and the ledger's
// state machine must stay pure.
package intake
