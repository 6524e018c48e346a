package node

import (
	"context"
	"fmt"
	"path/filepath"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/committee"
	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/pod"
)

// startGossip starts gossipsub and the receipts intake: every box validates
// and forwards receipts; a server publishes each receipt it countersigns.
func (n *Node) startGossip() error {
	// Receipts arrive by the thousand per second on coordinators: the
	// default queues (32 messages per peer) would drop them.
	ps, err := pubsub.NewGossipSub(n.ctx, n.host, append(intake.GossipOptions(),
		pubsub.WithPeerOutboundQueueSize(4096), pubsub.WithValidateQueueSize(8192))...)
	if err != nil {
		return fmt.Errorf("node: gossipsub: %w", err)
	}
	n.pubsub = ps
	opts := []intake.Option{intake.WithRegistry(n.reg)}
	if n.cfg.Role == RoleCoordinator {
		pool := intake.NewPool()
		n.receiptPool = pool
		opts = append(opts, intake.WithPool(pool))
		for _, c := range []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_intake_pool_receipts",
				Help: fmt.Sprintf("Receipts waiting in the coordinator's pool for a block (at most %d).", intake.MaxPoolReceipts)},
				func() float64 { return float64(pool.Len()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ore_intake_pool_refused_total",
				Help: "Receipts of new keys the full pool refused."},
				func() float64 { return float64(pool.Refused()) }),
		} {
			if err := n.reg.Register(c); err != nil {
				return fmt.Errorf("node: register intake pool metrics: %w", err)
			}
		}
	}
	if n.intake, err = intake.New(ps, n.cfg.Network, opts...); err != nil {
		return err
	}
	return nil
}

// startCommittee makes this box a coordinator of the genesis committee.
func (n *Node) startCommittee(ctx context.Context) error {
	if n.cfg.Genesis == nil {
		return fmt.Errorf("node: the coordinator role needs the network's genesis (WithGenesis, or `ore init --genesis FILE`)")
	}
	cfg := committee.Config{
		Genesis: n.cfg.Genesis, Host: n.host, Key: n.key, PubSub: n.pubsub, Pool: n.receiptPool,
		Dir: filepath.Join(n.cfg.RepoDir, "ledger"), Logger: n.log, Registry: n.reg,
	}
	if !n.cfg.SchedulingOff {
		cfg.Schedule = &committee.Scheduler{Params: n.cfg.Schedule, Reports: n.sched.latestReports, Publish: n.sched.publishOrder}
	}
	c, err := committee.New(ctx, cfg)
	if err != nil {
		return err
	}
	n.committee = c
	return nil
}

// publishReceipt gossips a receipt this box countersigned, for the ledger.
func (n *Node) publishReceipt(r *pod.Receipt) {
	if n.intake == nil {
		return
	}
	n.spawn(func(ctx context.Context) {
		if err := n.intake.Publish(ctx, r); err != nil && ctx.Err() == nil {
			n.log.Debug("gossip receipt", "err", err)
		}
	})
}

// GossipReceipt publishes a countersigned receipt on /ore/receipts/1 (servers
// do it for every receipt they countersign; benchmarks feed the ledger
// with it).
func (n *Node) GossipReceipt(ctx context.Context, r *pod.Receipt) error {
	return n.intake.Publish(ctx, r)
}

// GossipReceipts publishes many receipts, MaxBatch to a message; the ones
// that break the rules are left out and named in the error.
func (n *Node) GossipReceipts(ctx context.Context, rs []*pod.Receipt) error {
	return n.intake.PublishBatch(ctx, rs)
}

// Committee is the box's coordinator (nil unless its role is coordinator).
func (n *Node) Committee() *committee.Committee { return n.committee }

// Genesis is the network's genesis (nil on a network without a ledger).
func (n *Node) Genesis() *ledger.Genesis { return n.cfg.Genesis }

// SubmitTx gossips a signed account transaction (deposit, register,
// transfer) to the coordinators.
func (n *Node) SubmitTx(ctx context.Context, tx ledger.Tx) error {
	if n.cfg.Genesis == nil {
		return fmt.Errorf("node: this box has no ledger network (no genesis)")
	}
	if err := tx.Authenticate(n.cfg.Genesis.Network); err != nil {
		return err
	}
	if n.committee != nil {
		return n.committee.Submit(ctx, tx)
	}
	return committee.SubmitTx(ctx, n.host, n.cfg.Genesis, tx)
}

// LedgerView returns the ledger as this box sees it: a coordinator's own
// state and chain, or, on any other box, the chain synced from the
// coordinators and verified from genesis.
func (n *Node) LedgerView(ctx context.Context) (*ledger.State, []*ledger.Block, error) {
	if n.cfg.Genesis == nil {
		return nil, nil, fmt.Errorf("node: this box has no ledger network (start it with a genesis: `ore init --genesis FILE`)")
	}
	if n.committee != nil {
		blocks, err := n.committee.Blocks(1)
		if err != nil {
			return nil, nil, err
		}
		return n.committee.State(), blocks, nil
	}
	return committee.SyncChain(ctx, n.host, n.cfg.Genesis)
}

// LedgerState is the state after the last final block. A coordinator
// reads its own; another box syncs the blocks since the state it verified
// last (from genesis the first time) and verifies only those.
func (n *Node) LedgerState(ctx context.Context) (*ledger.State, error) {
	if n.cfg.Genesis == nil {
		return nil, fmt.Errorf("node: this box has no ledger network (start it with a genesis: `ore init --genesis FILE`)")
	}
	if n.committee != nil {
		return n.committee.State(), nil
	}
	n.synced.Lock()
	defer n.synced.Unlock()
	st, _, err := committee.SyncFrom(ctx, n.host, n.cfg.Genesis, n.synced.state)
	if err != nil {
		return nil, err
	}
	n.synced.state = st
	return st, nil
}

// SignAndSubmit signs an account transaction as this box (its key is the
// account), with the next nonce the ledger expects, and submits it. It
// returns the transaction as submitted.
func (n *Node) SignAndSubmit(ctx context.Context, tx ledger.Tx) (ledger.Tx, error) {
	st, err := n.LedgerState(ctx)
	if err != nil {
		return tx, err
	}
	tx.From = n.ID()
	tx.Nonce = st.Nonce(n.ID()) + 1
	if err := tx.Sign(n.cfg.Genesis.Network, n.key); err != nil {
		return tx, err
	}
	return tx, n.SubmitTx(ctx, tx)
}

// ReplicaTargets is the committee's latest replica plan, as this
// coordinator made it when it last led (an epoch of 0: it has not).
func (n *Node) ReplicaTargets() (uint64, []heat.Target, error) {
	if n.committee == nil {
		return 0, nil, fmt.Errorf("node: replica targets live on the coordinators; this box is a %s", n.cfg.Role)
	}
	e, t := n.committee.Targets()
	return e, t, nil
}
