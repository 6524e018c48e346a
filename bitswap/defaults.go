package bitswap

import "time"

// Tunables, each chosen for a box that serves and fetches large files on a
// home uplink; boxo's own defaults are sized for Kubo's many small requests.
const (
	// DefaultMaxOutstandingBytesPerPeer bounds the bytes the server queues
	// for one peer before it waits for them to be sent. 2, 8, 16 and 32 MiB
	// measured the same throughput within the noise (`ore bench transfer`);
	// 2 MiB stays under the proof-of-delivery credit window (4 MiB), so an
	// honest client that receipts every 1 MiB is rarely held back by the
	// gate, and blocks are not queued twice.
	DefaultMaxOutstandingBytesPerPeer = 2 << 20

	// DefaultEngineTaskWorkers is the number of goroutines that pack blocks
	// into outgoing messages.
	DefaultEngineTaskWorkers = 8

	// DefaultEngineBlockstoreWorkers is the number of goroutines that read
	// requested blocks from the store.
	DefaultEngineBlockstoreWorkers = 32

	// DefaultTargetMessageSize is the size the server aims for in one
	// message: a few 256 KiB blocks per message amortizes framing. Keep it
	// well under libp2p's network.MessageSizeMax (4 MiB), which the
	// receiving bitswap enforces: at 4 MiB a message of 16 blocks plus
	// framing is refused and the fetch stalls (measured with receipts off:
	// stalled after 7 blocks of 1031). 256 KiB, 1 MiB and 2 MiB measured
	// the same within the noise of a 2-core box (`ore bench transfer` ratio
	// 0.39-0.48, ~2 CPU-seconds per 256 MiB fetch).
	DefaultTargetMessageSize = 1 << 20

	// DefaultProviderSearchDelay is how long a session waits for connected
	// peers to answer before it asks the DHT. ore fetches usually start with
	// no connection to a provider, so the wait is short.
	DefaultProviderSearchDelay = 100 * time.Millisecond

	// DefaultMinDontHaveTimeout is the least time a want-block waits for
	// an answer before bitswap takes it as DONT_HAVE and asks another peer
	// (boxo: 50 ms; twice the recent message latency, up to 7 s, above
	// that). A box whose upload is busy answers later than 50 ms: the want
	// then goes to a second box too and both send the block, and every such
	// timeout counts toward boxo dropping the peer from the session after 16
	// in a row, which also forgets the blocks it announced. Measured with
	// `ore bench swarm` (50 boxes, 2 MiB/s uplinks), crowd bytes received
	// over needed: 1.42 at 1 s, 1.27 at 3 s, and the crowd done in 71 s
	// instead of 85 s (two runs). 3 s still moves a want off a seed that
	// holds it back (WithSpread) well within the hold.
	DefaultMinDontHaveTimeout = 3 * time.Second

	// DefaultBroadcastRandomPeers is how many peers that are no broadcast
	// target (none sent this box a block, none is peered or local) get a
	// broadcast want anyway, picked at random, so that a box still finds a
	// block its known peers lack.
	DefaultBroadcastRandomPeers = 4

	// DefaultMaxWantlistPerPeer bounds the wants kept in memory per peer.
	DefaultMaxWantlistPerPeer = 4096

	// spreadTick is how often held-back wants whose hold passed are sent.
	spreadTick = 100 * time.Millisecond
)
