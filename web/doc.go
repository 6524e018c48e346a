// Package web is the box's dashboard: what a box owner and a publisher
// want to see (earnings by delivery, storage and compute, balance,
// traffic, storage, proofs of storage, jobs run, reachability, the
// monthly data cap; registered roots, spend, replicas, offload, storage
// offers, functions, tickets),
// and on a coordinator what runs the chain (head, finality, leader,
// members, pools, the replica plan), served by the daemon on a listener of
// its own.
//
// It exists apart from node because it is a view: it reads node's views
// (node.Node.Status, the same function behind `ore status`, and
// node.Account, behind `ore ledger balance`) and the ledger's blocks, and
// keeps no engine state of its own — only caches it can recompute (the
// figures of the blocks it read since it started, a traffic history of
// bitswap's counters, the providers the DHT found) and the sessions of the
// people logged in.
//
// Use:
//
//	l, _ := net.Listen("tcp", "127.0.0.1:4503")
//	d, err := web.New(web.Config{Node: n, Listener: l, Warnings: w})
//	fmt.Println(d.LoginURL()) // a one-time link; `ore dashboard` prints one
//	defer d.Close()
//
// Invariants:
//   - Never on the public gateway nor the control API: its own listener,
//     loopback unless the owner names a LAN address.
//   - Every request's Host is the listener's (an IP literal with its port,
//     localhost or the machine's name): a DNS name rebound to the box is
//     refused.
//   - A session starts only from a one-time login token (256 bits, five
//     minutes, consumed on first use), minted through the control API,
//     which needs the repo's token: whoever can read the repo can log in,
//     nobody else. The session cookie is HttpOnly, SameSite=Strict and
//     Secure over TLS; the login redirects to a URL with no secret in it.
//   - A request that changes something (the data cap, logging out) is a
//     POST from the dashboard's own Origin with the session's CSRF token.
//   - Every asset is embedded (go:embed): no CDN, nothing fetched from the
//     internet; charts are SVG drawn by the server.
//   - Every table is bounded: logins (16), sessions (64), warnings (64),
//     traffic samples (360), epoch and day figures (720, 90), roots
//     (1,024), tickets (256), jobs listed (256), held jobs followed
//     (65,536; past that the figures say they are incomplete), functions
//     (256), recent blocks (12); the chain is read a page at a time
//     (node.Node.LedgerBlocksFrom), never held whole.
//   - An account's earnings in a block are what its balance gained beyond
//     the money it moved itself; storage is what its proof records earned
//     in the block and compute the job pay the block released, both the
//     ledger's own figures, and delivery the rest.
package web
