package bitswap

import "time"

// Tunables, each chosen for a box that serves and fetches large files on a
// home uplink; boxo's own defaults are sized for Kubo's many small requests.
const (
	// DefaultMaxOutstandingBytesPerPeer bounds the bytes the server queues
	// for one peer before it waits for them to be sent. boxo's 1 MiB keeps a
	// fast link idle between messages; 8 MiB keeps a loopback or LAN link
	// full (see `ore bench transfer`).
	DefaultMaxOutstandingBytesPerPeer = 8 << 20

	// DefaultEngineTaskWorkers is the number of goroutines that pack blocks
	// into outgoing messages.
	DefaultEngineTaskWorkers = 8

	// DefaultEngineBlockstoreWorkers is the number of goroutines that read
	// requested blocks from the store.
	DefaultEngineBlockstoreWorkers = 32

	// DefaultTargetMessageSize is the size the server aims for in one
	// message: a few 256 KiB blocks per message amortizes framing.
	DefaultTargetMessageSize = 1 << 20

	// DefaultProviderSearchDelay is how long a session waits for connected
	// peers to answer before it asks the DHT. ore fetches usually start with
	// no connection to a provider, so the wait is short.
	DefaultProviderSearchDelay = 100 * time.Millisecond

	// DefaultMaxWantlistPerPeer bounds the wants kept in memory per peer.
	DefaultMaxWantlistPerPeer = 4096
)
