package committee

import (
	"context"
	"fmt"
	"sync"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
)

// Scheduler is how the committee places hot content: when an epoch
// closes, the leader plans replicas from the boxes' latest heat reports and
// the ledger's pre-warm orders (heat.Plan), signs one replication order per
// root and puts it in its next block (a KindOrder transaction, which every
// member checks before it signs the block). Once that block is final, the
// leader publishes each order with the proof (ledger.OrderProof): boxes
// obey only orders a quorum's block holds, never one member's word, and
// the ledger pays replication only for orders it recorded. The
// coordinator's box gathers the reports and gossips the proofs; the
// committee only decides. Planning is soft state: a new leader plans from
// the next reports, and rendezvous hashing gives it the same boxes for the
// same inputs. Orders need RulesV4 (a chain of earlier rules schedules
// nothing).
type Scheduler struct {
	Params  heat.Params
	Reports func() []*heat.Report                           // latest valid report per box
	Publish func(context.Context, *ledger.OrderProof) error // gossip a proven order
}

// targets is the leader's latest plan.
type targets struct {
	mu    sync.Mutex
	epoch uint64
	list  []heat.Target
}

// Targets returns the replica targets of the last plan this member made
// as leader, and its epoch (0 when it has not planned).
func (c *Committee) Targets() (uint64, []heat.Target) {
	c.targets.mu.Lock()
	defer c.targets.mu.Unlock()
	return c.targets.epoch, append([]heat.Target(nil), c.targets.list...)
}

// schedule plans epoch's replicas and publishes the orders (leader only).
func (c *Committee) schedule(ctx context.Context, epoch uint64) error {
	s := c.cfg.Schedule
	if s == nil || s.Reports == nil || s.Publish == nil {
		return nil
	}
	if c.cfg.Genesis.Rules < ledger.RulesV4 {
		c.schedOnce.Do(func() {
			c.log.Warn("replication orders need ledger rules 4: this chain's genesis has earlier rules, the committee orders no replicas",
				"rules", c.cfg.Genesis.Rules)
		})
		return nil
	}
	var prewarms []heat.Prewarm
	for _, p := range c.fsm.current().Prewarms() {
		prewarms = append(prewarms, heat.Prewarm{Root: p.Root, Replicas: int(p.Replicas), Until: p.Until})
	}
	plan := heat.Plan(s.Params, epoch, backedReports(c.fsm.current(), s.Reports()), prewarms)
	c.targets.mu.Lock()
	c.targets.epoch, c.targets.list = epoch, plan
	c.targets.mu.Unlock()
	network := c.cfg.Genesis.Network
	var orders []ledger.Tx
	for _, t := range plan {
		if len(t.Boxes) == 0 {
			continue
		}
		o := t.Order(network, c.self, epoch)
		if err := o.Sign(network, c.cfg.Key); err != nil {
			return fmt.Errorf("committee: sign order for %s: %w", t.Root, err)
		}
		orders = append(orders, ledger.NewOrderTx(o))
		if len(t.Assigned) > 0 {
			c.log.Info("replication order", "root", t.Root, "reason", t.Reason, "replicas", t.Replicas,
				"holders", len(t.Holders), "assigned", len(t.Assigned), "until_epoch", t.Until)
		}
	}
	// Into this member's next block: an order is no one's to submit, so
	// it does not travel as a transaction.
	c.requeue(orders)
	return nil
}

// ordersLoop publishes the orders of the final blocks this member
// proposed.
func (c *Committee) ordersLoop(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-c.finalOrders:
			c.publishOrders(ctx, h)
		}
	}
}

// publishOrders publishes, with its proof, each order this member issued
// in the final block at height.
func (c *Committee) publishOrders(ctx context.Context, height uint64) {
	s := c.cfg.Schedule
	if s == nil || s.Publish == nil {
		return
	}
	b, err := c.chain.get(height)
	if err != nil || !b.Final(c.cfg.Genesis) {
		c.log.Warn("read final block for its orders", "height", height, "err", err)
		return
	}
	for i := range b.Txs {
		if b.Txs[i].Kind != ledger.KindOrder || b.Txs[i].From != c.self {
			continue
		}
		p, err := ledger.NewOrderProof(b, i)
		if err == nil {
			err = s.Publish(ctx, p)
		}
		if err != nil {
			c.log.Warn("publish replication order", "height", b.Header.Height, "root", b.Txs[i].Order.Root, "err", err)
			continue
		}
		c.metrics.orders.Inc()
	}
}
