package node

import (
	"context"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/orecdn/ore/meter"
	"github.com/orecdn/ore/pod"
)

// Proof-of-delivery defaults (the meter's).
const (
	DefaultCreditWindow = meter.DefaultCreditWindow
	DefaultReceiptEvery = meter.DefaultReceiptEvery
	DefaultNetwork      = "ore-devnet"
)

// receipts is the box's proof of delivery: the meter's two sides, wired
// to the host, the store, bitswap, heat and gossip.
type receipts struct {
	client *meter.Client
	server *meter.Server
	signs  bool // the client side signs receipts (off: WithReceipts(false), or a test's freeloader)
}

// startReceipts builds the meter. The server is bitswap's gate, so it
// exists before the exchange; Release reads n.ex when a receipt pays a
// debt, by then set.
func (n *Node) startReceipts(key crypto.PrivKey) error {
	cfg := meter.Config{
		Params: n.cfg.Network, Key: key, Store: n.store, Logger: n.log.With("part", "pod"), Registry: n.reg,
		Transport: podTransport{meter.HostTransport{Host: n.host}}, ReceiptEvery: n.cfg.ReceiptEvery, Go: n.spawn,
		CreditWindow: n.cfg.CreditWindow, Blocks: n.store, Peers: meter.HostPeers{Host: n.host},
		Release:       n.release,
		Countersigned: n.countersigned,
	}
	var err error
	rc := &receipts{signs: !n.cfg.noReceipts && !n.cfg.ReceiptsOff}
	if rc.server, err = meter.NewServer(cfg); err != nil {
		return err
	}
	if rc.client, err = meter.NewClient(cfg); err != nil {
		return err
	}
	n.pod = rc
	if !n.cfg.ReceiptsOff {
		n.host.SetStreamHandler(protocol.ID(pod.ProtocolID), rc.server.HandleStream)
		n.every(meter.TickEvery, rc.server.AgeDebts)
	}
	if rc.signs {
		n.every(meter.TickEvery, rc.client.Tick)
	}
	return nil
}

// countersigned fans a receipt the server side countersigned out to heat
// (the bytes this box served of the root) and to gossip (for the ledger).
func (n *Node) countersigned(r *pod.Receipt, added uint64, first bool) {
	n.sched.delivered(r.Root, int64(added), first)
	n.publishReceipt(r)
}

// want records that blocks are fetched for root (see meter.Client.Want).
func (rc *receipts) want(root cid.Cid, cids []cid.Cid) {
	if rc.signs {
		rc.client.Want(root, cids)
	}
}

// received is bitswap's BlockReceived hook.
func (rc *receipts) received(from peer.ID, b blocks.Block) {
	if rc.signs {
		rc.client.Received(from, b)
	}
}

// flush sends root's final receipts and returns them (meter.Client.Flush).
func (rc *receipts) flush(ctx context.Context, root cid.Cid) []*pod.Receipt {
	if !rc.signs {
		return nil
	}
	return rc.client.Flush(ctx, root)
}

// finalize sends root's final receipts without waiting.
func (rc *receipts) finalize(root cid.Cid) {
	if rc.signs {
		rc.client.Finalize(root)
	}
}

// ServedReceipts returns the countersigned receipts this box holds as a
// server, from epoch since on: what it submits to the ledger.
func (n *Node) ServedReceipts(ctx context.Context, since uint64) ([]*pod.Receipt, error) {
	return meter.Receipts(ctx, n.store, meter.Served, since)
}

// ReceivedReceipts returns the countersigned receipts this box holds as a
// client, from epoch since on.
func (n *Node) ReceivedReceipts(ctx context.Context, since uint64) ([]*pod.Receipt, error) {
	return meter.Receipts(ctx, n.store, meter.Received, since)
}

// podTransport sends receipts only to servers that speak the receipt
// protocol: one that does not (Kubo) never countersigns.
type podTransport struct{ meter.HostTransport }

// TakesReceipts is meter.ReceiptTaker.
func (t podTransport) TakesReceipts(server peer.ID) bool { return speaksPod(t.Host, server) }
