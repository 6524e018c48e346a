package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/committee"
	"github.com/orecdn/ore/storeproof"
)

// Status is the box's state as `ore status` prints it and the dashboard
// shows it: one function builds it for both, so their figures never
// disagree.
type Status struct {
	Peer        string   `json:"peer"`
	Role        string   `json:"role"`
	Version     string   `json:"version"`
	Started     int64    `json:"started_unix"` // when the box started
	Addrs       []string `json:"addrs"`
	Peers       int      `json:"peers"`
	DHTMode     string   `json:"dht_mode"`
	DHTPeers    int      `json:"dht_peers"`
	StoreUsed   int64    `json:"store_used"`
	StoreQuota  int64    `json:"store_quota"`
	StoreDisk   int64    `json:"store_disk"`   // what the store takes on disk
	UploadLimit int64    `json:"upload_limit"` // bytes per second (0: none)
	Pins        []string `json:"pins"`
	BytesSent   uint64   `json:"bytes_sent"`
	BytesRecvd  uint64   `json:"bytes_received"`
	BlocksSent  uint64   `json:"blocks_sent"`
	BlocksRecvd uint64   `json:"blocks_received"`
	Network     string   `json:"network"`
	Epoch       uint64   `json:"epoch"`
	// Reach is how the internet reaches the box.
	Reach Reachability `json:"reachability"`
	// DataCap is the monthly data cap and its use.
	DataCap DataCapView `json:"data_cap"`
	// Receipts of the last hour: countersigned as server, held as client.
	ServedReceipts   int    `json:"served_receipts"`
	ServedBytes      uint64 `json:"served_receipt_bytes"`
	ReceivedReceipts int    `json:"received_receipts"`
	ReceivedBytes    uint64 `json:"received_receipt_bytes"`
	// Ledger is the box's view of the ledger, when it joined one.
	Ledger *StatusLedger `json:"ledger,omitempty"`
	// Roots is the content stored whole on the box, hottest first, with
	// the replication orders that hold it.
	Roots []RootInfo `json:"roots"`
	// Targets is the committee's replica plan (coordinators: the last one
	// this member made as leader).
	Targets     []StatusTarget `json:"replica_targets,omitempty"`
	TargetEpoch uint64         `json:"replica_targets_epoch,omitempty"`
}

// StatusTarget is one root of the committee's replica plan.
type StatusTarget struct {
	Root     string  `json:"root"`
	Reason   string  `json:"reason"`
	Requests float64 `json:"requests"`
	Replicas int     `json:"replicas"`
	Holders  int     `json:"holders"`
	Ordered  int     `json:"ordered"`
	Until    uint64  `json:"until_epoch"`
}

// StatusLedger is the ledger part of a box's status.
type StatusLedger struct {
	Height    uint64 `json:"height"`
	StateHash string `json:"state_hash"`
	Balance   uint64 `json:"balance"`
	Escrow    uint64 `json:"escrow"`
	Leader    string `json:"leader,omitempty"` // the Raft leader, as a coordinator knows it
	IsLeader  bool   `json:"is_leader,omitempty"`
	Error     string `json:"error,omitempty"` // why the ledger could not be read
	// Storage is the box's proof record per root it is ordered to hold
	// under a storage offer (rules version 5).
	Storage []StorageView `json:"storage,omitempty"`
	// Coordinator is a coordinator's view of the chain (nil on other boxes).
	Coordinator *StatusCoordinator `json:"coordinator,omitempty"`
}

// StorageView is a box's proof record of one root.
type StorageView struct {
	Root      string `json:"root"`
	Bytes     uint64 `json:"bytes"`     // the committed length
	PerEpoch  uint64 `json:"per_epoch"` // what a proven round pays, per epoch of it
	Proofs    uint64 `json:"proofs"`
	Misses    uint64 `json:"misses"`
	LastRound int64  `json:"last_round"` // -1: none proven
	Earned    uint64 `json:"earned"`
	Revoked   bool   `json:"revoked,omitempty"`
	Why       string `json:"why,omitempty"` // why it was revoked
}

// StorageViews is box's proof records in st.
func StorageViews(st *ledger.State, box peer.ID) []StorageView {
	var out []StorageView
	for _, r := range st.ReplicaRecords(box) {
		v := StorageView{Root: r.Root.String(), Proofs: r.Proofs, Misses: r.Misses, LastRound: int64(r.Last) - 1,
			Earned: r.Earned, Revoked: r.Revoked}
		if o, ok := st.StorageOffer(r.Root); ok {
			v.Bytes = o.Commitment.Length
			v.PerEpoch = st.Genesis().RoundPay(o.Commitment.Length, o.Price) / st.Genesis().ChallengeRound()
		}
		if r.Revoked {
			v.Why = fmt.Sprintf("missed %d challenge rounds (the ledger revokes after %d): the box did not prove it holds the root", r.Misses, storeproof.MaxMisses)
		}
		out = append(out, v)
	}
	return out
}

// StatusCoordinator is what a coordinator knows of the chain it makes:
// its head, how final it is, and what waits for the next block.
type StatusCoordinator struct {
	Head      uint64 `json:"head"`       // the height of the last block this member applied
	HeadEpoch uint64 `json:"head_epoch"` // that block's epoch
	// Final is the highest block a quorum signed, as far as this member
	// has gathered the signatures (looked back at most finalLookBack
	// blocks from the head; 0: none found there). HeadSigs is the head
	// block's signatures so far.
	Final    uint64 `json:"final_height"`
	HeadSigs int    `json:"head_signatures"`
	// The genesis's finality: the rule (majority or bft), the signatures
	// that make a block final, the members, and how many of them may
	// crash, or lie, with the chain still making final blocks.
	Rule      string `json:"finality_rule"`
	Quorum    int    `json:"quorum"`
	Members   int    `json:"members"`
	Crashed   int    `json:"tolerates_crashed"`
	Byzantine int    `json:"tolerates_byzantine"`
	// The pools: account transactions and receipts waiting for a block,
	// and the receipts of new keys the full receipt pool refused.
	TxPool          int    `json:"tx_pool"`
	ReceiptPool     int    `json:"receipt_pool"`
	ReceiptsRefused uint64 `json:"receipts_refused"`
}

// finalLookBack bounds the blocks a status reads back from the head to
// find the last final one (headers only).
const finalLookBack = 256

// coordinatorStatus is StatusCoordinator for this member.
func (n *Node) coordinatorStatus() *StatusCoordinator {
	c, g := n.committee, n.cfg.Genesis
	st := c.State()
	out := &StatusCoordinator{Head: st.Height(), Quorum: g.Quorum(), Members: len(g.Committee), TxPool: c.TxPool()}
	out.Crashed, out.Byzantine = g.Tolerates()
	out.Rule = "majority"
	if g.FinalityRule() == ledger.FinalityBFT {
		out.Rule = "bft"
	}
	if n.receiptPool != nil {
		out.ReceiptPool, out.ReceiptsRefused = n.receiptPool.Len(), n.receiptPool.Refused()
	}
	for h := out.Head; h > 0 && out.Head-h < finalLookBack; h-- {
		b, ok := c.Head(h)
		if !ok {
			break
		}
		if h == out.Head {
			out.HeadEpoch, out.HeadSigs = b.Header.Epoch, b.VerifySignatures(g)
		}
		if b.Final(g) {
			out.Final = h
			break
		}
	}
	return out
}

// ledgerStatusTimeout bounds the chain sync a status may wait for.
const ledgerStatusTimeout = 10 * time.Second

// Status gathers the box's status. It fails only when the store cannot be
// read; a ledger that cannot be reached is reported in Ledger.Error.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st := Status{
		Peer:        n.ID().String(),
		Role:        string(n.Role()),
		Version:     Version,
		Started:     n.started.Unix(),
		Peers:       len(n.host.Network().Peers()),
		DHTMode:     n.router.Mode().String(),
		DHTPeers:    n.router.RoutingTableSize(),
		StoreUsed:   n.store.Used(),
		StoreQuota:  n.store.Quota(),
		StoreDisk:   n.store.DiskUsage(),
		UploadLimit: n.cfg.UploadLimit,
		Reach:       n.Reachability(),
		DataCap:     n.DataCap(),
	}
	for _, a := range n.P2PAddrs() {
		st.Addrs = append(st.Addrs, a.String())
	}
	pins, err := n.store.Pins(ctx)
	if err != nil {
		return st, fmt.Errorf("node: status: %w", err)
	}
	for _, p := range pins {
		st.Pins = append(st.Pins, p.String())
	}
	params := n.Network()
	st.Network, st.Epoch = params.Network, params.EpochAt(time.Now())
	since := uint64(0)
	if hour := uint64(time.Hour / params.EpochLength); st.Epoch > hour {
		since = st.Epoch - hour
	}
	served, err := n.ServedReceipts(ctx, since)
	if err != nil {
		return st, fmt.Errorf("node: status: %w", err)
	}
	for _, rc := range served {
		st.ServedReceipts++
		st.ServedBytes += rc.Bytes
	}
	received, err := n.ReceivedReceipts(ctx, since)
	if err != nil {
		return st, fmt.Errorf("node: status: %w", err)
	}
	for _, rc := range received {
		st.ReceivedReceipts++
		st.ReceivedBytes += rc.Bytes
	}
	if bs, err := n.ex.Stats(); err == nil {
		st.BytesSent, st.BytesRecvd, st.BlocksSent, st.BlocksRecvd = bs.DataSent, bs.DataReceived, bs.BlocksSent, bs.BlocksReceived
	}
	if n.Genesis() != nil {
		st.Ledger = n.ledgerStatus(ctx)
	}
	if st.Roots, err = n.Roots(ctx); err != nil {
		return st, fmt.Errorf("node: status: %w", err)
	}
	if n.committee != nil {
		e, targets, _ := n.ReplicaTargets()
		st.TargetEpoch = e
		for _, t := range targets {
			st.Targets = append(st.Targets, StatusTarget{Root: t.Root.String(), Reason: t.Reason.String(), Requests: t.Requests,
				Replicas: t.Replicas, Holders: len(t.Holders), Ordered: len(t.Boxes), Until: t.Until})
		}
	}
	return st, nil
}

func (n *Node) ledgerStatus(ctx context.Context) *StatusLedger {
	out := &StatusLedger{}
	if c := n.committee; c != nil {
		if id := c.LeaderID(); id != "" {
			out.Leader = id.String()
		}
		out.IsLeader = c.Leader()
		out.Coordinator = n.coordinatorStatus()
	}
	ctx, cancel := context.WithTimeout(ctx, ledgerStatusTimeout)
	defer cancel()
	ls, err := n.LedgerState(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	h := ls.Hash()
	out.Height, out.StateHash = ls.Height(), hex.EncodeToString(h[:])
	out.Balance, out.Escrow = ls.Balance(n.ID()), ls.Escrow(n.ID())
	out.Storage = StorageViews(ls, n.ID())
	return out
}

// AccountView is one account as `ore ledger balance` prints it and the
// dashboard's publisher tab shows it.
type AccountView struct {
	Network   string `json:"network"`
	Height    uint64 `json:"height"`
	Epoch     uint64 `json:"epoch"`
	StateHash string `json:"state_hash"`
	Account   string `json:"account"`
	Balance   uint64 `json:"balance"`
	Escrow    uint64 `json:"escrow"`
	Nonce     uint64 `json:"nonce"`
	Supply    uint64 `json:"supply"`
	// EpochCap is the most the escrow pays for one epoch's deliveries (0:
	// none); Spent is what it paid for the current epoch's so far.
	EpochCap uint64 `json:"epoch_cap,omitempty"`
	Spent    uint64 `json:"spent,omitempty"`
	// Withdrawing moves from escrow to balance at epoch WithdrawAt.
	Withdrawing uint64 `json:"withdrawing,omitempty"`
	WithdrawAt  uint64 `json:"withdraw_at,omitempty"`
	// Prewarms are the account's active pre-warms.
	Prewarms []PrewarmView `json:"prewarms,omitempty"`
	// StorageEarned is what the account earned for proven storage of the
	// roots it is still ordered to hold (rules version 5); the rest of its
	// balance came from deliveries and transfers.
	StorageEarned uint64 `json:"storage_earned,omitempty"`
}

// PrewarmView is one active pre-warm.
type PrewarmView struct {
	Root     string `json:"root"`
	Replicas uint32 `json:"replicas"`
	Until    uint64 `json:"until"` // the last epoch
}

// Account is account's view in the ledger state st.
func Account(st *ledger.State, account peer.ID) AccountView {
	h := st.Hash()
	v := AccountView{Network: st.Genesis().Network, Height: st.Height(), Epoch: st.Epoch(),
		StateHash: hex.EncodeToString(h[:]), Account: account.String(), Balance: st.Balance(account),
		Escrow: st.Escrow(account), Nonce: st.Nonce(account), Supply: st.Supply(),
		EpochCap: st.Account(account).EpochCap, Spent: st.Spent(account, st.Epoch())}
	if wd, ok := st.Withdrawal(account); ok {
		v.Withdrawing, v.WithdrawAt = wd.Amount, wd.At
	}
	for _, r := range st.ReplicaRecords(account) {
		v.StorageEarned += r.Earned
	}
	for _, p := range st.Prewarms() {
		if p.Publisher == account {
			v.Prewarms = append(v.Prewarms, PrewarmView{Root: p.Root.String(), Replicas: p.Replicas, Until: p.Until})
		}
	}
	return v
}

// LedgerBlocksFrom returns the ledger's blocks after base's height (base
// nil: from height 1), at most maxBlocksPerRead of them, and a state: a
// coordinator's applied chain and its head state, or, on any other box,
// the final blocks synced from the coordinators, verified from base, and
// the state they end at. A view that follows the chain (the dashboard's
// earnings) applies them itself, reads only what it has not seen, and
// asks again until no block comes back: a long chain is read a page at a
// time, never all in memory.
func (n *Node) LedgerBlocksFrom(ctx context.Context, base *ledger.State) (*ledger.State, []*ledger.Block, error) {
	if n.cfg.Genesis == nil {
		return nil, nil, fmt.Errorf("node: this box has no ledger network (start it with a genesis: `ore init --genesis FILE`)")
	}
	if n.committee == nil {
		return committee.SyncPage(ctx, n.host, n.cfg.Genesis, base, maxBlocksPerRead)
	}
	from := uint64(1)
	if base != nil {
		from = base.Height() + 1
	}
	st := n.committee.State()
	var blocks []*ledger.Block
	for h := from; h <= st.Height() && len(blocks) < maxBlocksPerRead; h++ {
		b, ok := n.committee.Block(h)
		if !ok {
			return nil, nil, fmt.Errorf("node: block %d of the applied chain is not in the store", h)
		}
		blocks = append(blocks, b)
	}
	return st, blocks, nil
}

// maxBlocksPerRead bounds the blocks a view gets at once: a view that
// starts on a long chain reads it in steps, not all in memory.
const maxBlocksPerRead = 512
