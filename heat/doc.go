// Package heat decides which content is replicated where: it measures
// request heat per root CID, carries it between boxes and the committee,
// and turns it into replication orders.
//
// It has these parts:
//
//   - Counter: request and byte counts per root CID with exponential decay
//     and a bound on its size. The gateway counts every request in one.
//   - Report: what a box (or gateway) gossips once per epoch on ReportTopic
//     (/ore/heat/1), signed by its Ed25519 peer key: the heat it saw (the
//     MaxHeat hottest roots), the roots it holds whole, its quota and usage,
//     the state of the orders it executes, and how the internet reaches it
//     (Reach: directly, behind a NAT, behind a symmetric NAT), and what
//     it lends to jobs (Compute: slots, engine cap and load, compiler
//     or interpreter, arch).
//   - ChooseRunners: the pure choice of a job's runner among the boxes
//     that lend CPU: fresh reports with spare room (counting the jobs
//     the chooser sent since), compilers first for heavy jobs, then the
//     most room, ties by rendezvous hashing of the job.
//   - Order: what the committee's leader signs, "these boxes fetch root R
//     whole and hold it through epoch Until", for heat or for a
//     publisher's pre-warm request. It puts the order in its next block,
//     and once the block is final gossips it on OrderTopic (/ore/orders/2)
//     with the block's proof (ledger.OrderProof): boxes obey orders a
//     quorum's block holds, not one member's signature.
//   - Plan: the pure planner that turns the latest reports (and pre-warm
//     requests) into a replica target per root and the boxes that should
//     take the missing replicas, ranked by capacity-weighted rendezvous
//     hashing, so every coordinator computes the same assignment and a box
//     joining or leaving moves only its own share.
//   - Vouch: reports whose demand counts only if the reporter keeps the
//     ledger's reporter bond (ledger rules 5: a report's word about
//     demand cannot be checked, and a new key costs nothing but the bond).
//   - Back: reports as far as the ledger's proofs of storage back them
//     (ledger rules 5): a holding of a root under a storage offer counts
//     only with a recent proof, a proven holder stays on the root's order,
//     and a box the ledger revoked for missed proofs is not chosen again.
//
// Why its own package: the gateway (counting), node (reporting, executing
// orders) and ledger/committee (planning) all use it, and none of them
// should depend on another for it. Heat, reports and orders are soft
// state: they are never ledger state, a lost report or order costs one
// epoch, and a box reconstructs everything from the next round of gossip.
//
// The package is pure: no networking and no clock. Callers pass now (for
// the counter) and epochs (for the rules and the planner).
//
// Usage:
//
//	// gateway: count requests
//	c := heat.NewCounter(10*time.Minute, 100_000)
//	c.Record(root, n, time.Now())
//
//	// box: report once per epoch
//	r := &heat.Report{Epoch: e, Quota: q, Used: u, Heat: heat.Top(c.Snapshot(now)), Held: held, Orders: states}
//	err := r.Sign(network, key)
//	publish(heat.ReportTopic, r.Marshal())
//
//	// committee leader: plan and order
//	r, err := heat.UnmarshalReport(msg)
//	err = heat.CheckReport(r, network, e, 1)
//	for _, t := range heat.Plan(heat.DefaultParams(), e, latest, prewarms) {
//		if len(t.Boxes) == 0 {
//			continue
//		}
//		o := t.Order(network, self, e)
//		err = o.Sign(network, key)
//		propose(ledger.NewOrderTx(o)) // into the next block; once final:
//		publish(heat.OrderTopic, proofOf(o).Marshal())
//	}
//
//	// box: execute orders that name it
//	o, err := heat.UnmarshalOrder(msg)
//	err = heat.CheckOrder(o, network, genesis.IsMember, e, 1)
//	if err == nil && o.Names(self) { fetch and pin o.Root until o.Until }
//
// Invariants:
//
//   - A box behind a symmetric NAT (ReachSymmetric) is no source for
//     boxes behind other NATs: Plan neither counts nor orders it replicas
//     of a root that a box not known to be directly reachable asked for,
//     or that a pre-warm covers (see Plan).
//   - Reports and orders have one canonical, versioned binary encoding
//     (a report that states its Reach is ReportVersionReach, one that
//     does not is encoded as builds before Reach encoded it; one that
//     lends CPU is ReportVersionCompute, one that lends none is not);
//     the decoders refuse oversized input before decoding it, trailing
//     bytes, over-long lists, duplicate roots, unsorted or repeated boxes,
//     unparseable CIDs and peer IDs, and unknown versions, states and
//     reasons. Fuzz tests check that every accepted input re-encodes to
//     itself.
//   - Signatures are Ed25519 over a domain-separated payload that includes
//     the network, by the key embedded in the reporter's or issuer's peer
//     ID; CheckOrder also requires the issuer to be a committee member,
//     and an order to run at most MaxOrderEpochs(reason) epochs after its
//     own (64 for heat, the ledger's pre-warm maximum for pre-warms): one
//     member signs an order, so one signature must not pin a root on a
//     box for good. Plan never orders longer (the leader renews an order
//     every epoch while it is needed).
//   - A report is one box's word: Plan counts it for at most
//     Params.MaxReporterRequests requests of a root (one lying box alone
//     makes a root hot at the floor), and a box's capacity weight for at
//     most 1 TiB (a claimed quota of 2^64−1 wins no more roots than an
//     unlimited one).
//   - Plan is deterministic: the same reports and pre-warms, in any order,
//     give the same targets. Replica targets stay within [Floor, Ceiling]
//     for hot roots and never exceed Ceiling; a box is never assigned more
//     bytes than the free space it reported, counted across one Plan call.
//   - Every error of the decoders and of CheckReport and CheckOrder wraps
//     one of the package's named errors.
package heat
