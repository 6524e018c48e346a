// Package dht is an ore box's content routing: a Kademlia DHT
// (go-libp2p-kad-dht) on the private protocol prefix "/ore", so an ore
// network never mixes with the public IPFS DHT.
//
// A Router announces the roots a box holds (Provide on add, and again every
// reprovide interval, because provider records expire) and finds the boxes
// that hold a root (FindProviders) for a get. Bitswap sessions use the Router
// as their provider finder.
//
// Usage:
//
//	r, err := dht.New(host,
//		dht.WithMode(dht.ModeServer),
//		dht.WithBootstrapPeers(peers),
//		dht.WithRoots(store.Pins))
//	if err != nil { ... }
//	defer r.Close()
//	if err := r.Bootstrap(ctx); err != nil { ... }
//	err = r.Provide(ctx, root)
//	provs, err := r.FindProviders(ctx, root, 10)
//
// Invariants: the protocol prefix is always "/ore" (kad protocol
// "/ore/kad/1.0.0"); Close stops the reprovide loop before closing the DHT.
package dht
