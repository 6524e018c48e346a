// Package testnet runs ore networks for tests, benchmarks and the demo: real
// boxes (node.New) with real libp2p hosts on loopback and real badger
// stores in temporary directories, all in one process.
//
// Usage:
//
//	net, err := testnet.New(ctx, 8, testnet.WithNodeOptions(node.WithStallTimeout(5*time.Second)))
//	if err != nil { ... }
//	defer net.Close()
//	res, err := net.Nodes[0].AddPath(ctx, "file")
//	_, err = net.Nodes[7].Fetch(ctx, res.Root, nil)
//
// Box 0 is every other box's bootstrap peer; New returns once every box has
// joined the DHT. Hosts listen on port 0, so networks never collide.
package testnet
