package meter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/pod"
)

// Defaults.
const (
	DefaultCreditWindow = 4 << 20 // bytes a server sends a new client ahead of its receipts
	// DefaultMaxCreditWindow is the most a client's window grows to as it
	// pays (see Server.windowOf): enough for the bytes in flight between a
	// server's gate and a client's receipt on a fast link (a bulk stream's
	// buffers, the stream's flow-control window, socket buffers: on
	// loopback TCP a 4 MiB window held the stream 12 % of the time).
	DefaultMaxCreditWindow = 32 << 20
	DefaultReceiptEvery    = 1 << 20 // bytes a client receives from a server between its first receipts (see receiptInterval)
	// TickEvery is how often the caller runs Client.Tick and
	// Server.AgeDebts. It bounds how long received bytes wait for their
	// receipt: a server whose credit window holds blocks back for bytes a
	// client got but has not receipted (under the interval, from a server
	// that sends no more) would otherwise wait forever, and so would the
	// client.
	TickEvery = time.Second
	// StreamTimeout bounds one receipt exchange.
	StreamTimeout = 10 * time.Second
	// FlushTimeout bounds how long Flush waits for the servers' answers.
	FlushTimeout = 10 * time.Second
	// MaxDebtors bounds the server's debt table (one entry a client). A
	// client that left is forgotten after the debt grace (see AgeDebts);
	// this bound holds even for a peer that connects with a new identity
	// faster than the grace forgets the old ones. At the bound a new
	// client pushes out the entry idle the longest: that client gets a
	// fresh window if it comes back, as any new identity does.
	MaxDebtors = 1 << 16
)

// Store keeps receipts: the box's metadata records (store.Store is one).
type Store interface {
	GetMeta(ctx context.Context, key []byte) (value []byte, ok bool, err error)
	PutMeta(ctx context.Context, key, value []byte) error
	ScanMeta(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error
}

// Transport carries a client-signed receipt to the server it names and
// returns the server's answer: the countersigned receipt, or the refusal
// (a *pod.RefusedError). Over libp2p it is the /ore/pod/1.0.0 exchange
// (HostTransport); tests connect a Client to a Server directly.
type Transport interface {
	RoundTrip(ctx context.Context, r *pod.Receipt) (*pod.Receipt, error)
}

// ReceiptTaker is a Transport that knows which servers take receipts: the
// client signs none for a server that does not.
type ReceiptTaker interface {
	TakesReceipts(server peer.ID) bool
}

// ErrNoReceipts is what a Transport answers for a server that does not
// speak the receipt protocol (Kubo, Helia): it never countersigns, so its
// deliveries go unreceipted, and that is no fault to warn about.
var ErrNoReceipts = fmt.Errorf("%w: the server does not speak %s", pod.ErrRefused, pod.ProtocolID)

// Peers says whether a peer is connected now (the server keeps the debt
// of a connected client however long it idles).
type Peers interface {
	Connected(p peer.ID) bool
}

// Config is what a Client or a Server is built from. Fields a side does
// not use are ignored.
type Config struct {
	Params pod.Params     // network ID, epochs
	Key    crypto.PrivKey // the box's key: it signs receipts as client or server
	Store  Store          // where receipts are kept
	Clock  func() time.Time
	Logger *slog.Logger
	// Registry takes the metrics (ore_pod_*); nil: not registered.
	Registry prometheus.Registerer

	// Client side.
	Transport    Transport
	ReceiptEvery int64                           // bytes between the first receipts (0: DefaultReceiptEvery)
	Go           func(func(ctx context.Context)) // runs a sender goroutine until the box closes

	// Server side.
	CreditWindow int64 // bytes sent to a new client ahead of its receipts (0: DefaultCreditWindow)
	// MaxCreditWindow bounds the window a paying client grows to (0:
	// DefaultMaxCreditWindow; below CreditWindow: CreditWindow, no growth).
	MaxCreditWindow int64
	Blocks          Blocks // the blocks the box serves: a receipt's root's DAG is read from it
	Peers           Peers
	// Release asks bitswap to send what the gate held back for p
	// (bitswap.Exchange.Release); called without the meter's lock.
	Release func(p peer.ID)
	// Countersigned is called once for every receipt the server
	// countersigned and kept: added is the bytes it adds to the one before
	// it for the same (client, root, epoch), first says there was none.
	// The box fans it out to heat and gossip. Called without the meter's
	// lock.
	Countersigned func(r *pod.Receipt, added uint64, first bool)
}

func (c *Config) defaults() error {
	if err := c.Params.Validate(); err != nil {
		return fmt.Errorf("meter: %w", err)
	}
	if c.Key == nil {
		return errors.New("meter: no key")
	}
	if c.Store == nil {
		return errors.New("meter: no receipt store")
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReceiptEvery <= 0 {
		c.ReceiptEvery = DefaultReceiptEvery
	}
	if c.CreditWindow <= 0 {
		c.CreditWindow = DefaultCreditWindow
	}
	if c.MaxCreditWindow == 0 {
		c.MaxCreditWindow = max(DefaultMaxCreditWindow, c.CreditWindow)
	}
	c.MaxCreditWindow = max(c.MaxCreditWindow, c.CreditWindow)
	return nil
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("meter: register metrics: %w", err)
		}
	}
	return nil
}

// Keys of receipts in the store's meta records:
// pod/s/ + epoch (8 bytes, big-endian) + client + root: receipts this box
// countersigned as server; pod/c/ + epoch + server + root: receipts it
// holds as client.
var (
	servedPrefix   = []byte("pod/s/")
	receivedPrefix = []byte("pod/c/")
)

func receiptKey(prefix []byte, epoch uint64, other peer.ID, root cid.Cid) []byte {
	k := append([]byte(nil), prefix...)
	k = binary.BigEndian.AppendUint64(k, epoch)
	k = binary.AppendUvarint(k, uint64(len(other)))
	k = append(k, other...)
	return append(k, root.Bytes()...)
}

// Side names the receipts a box keeps: as server or as client.
type Side int

const (
	Served   Side = iota // countersigned by this box as server
	Received             // held by this box as client
)

// Receipts returns the countersigned receipts kept in st for one side,
// from epoch since on, oldest epoch first.
func Receipts(ctx context.Context, st Store, side Side, since uint64) ([]*pod.Receipt, error) {
	prefix := servedPrefix
	if side == Received {
		prefix = receivedPrefix
	}
	var out []*pod.Receipt
	err := st.ScanMeta(ctx, prefix, func(k, v []byte) error {
		if len(k) >= len(prefix)+8 && binary.BigEndian.Uint64(k[len(prefix):]) < since {
			return nil
		}
		r, err := pod.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("stored receipt %x is damaged: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("meter: read receipts: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Epoch < out[j].Epoch })
	return out, nil
}
