package committee

import (
	"context"
	"fmt"
	"sync"

	"github.com/orecdn/ore/heat"
)

// Scheduler is how the committee places hot content: when an epoch
// closes, the leader plans replicas from the boxes' latest heat reports and
// the ledger's pre-warm orders (heat.Plan), signs one replication order per
// root and publishes it. The coordinator's box gathers the reports and
// gossips the orders; the committee only decides. Planning is soft state:
// a new leader plans from the next reports, and rendezvous hashing gives
// it the same boxes for the same inputs.
type Scheduler struct {
	Params  heat.Params
	Reports func() []*heat.Report                    // latest valid report per box
	Publish func(context.Context, *heat.Order) error // gossip an order on /ore/orders/1
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
	var prewarms []heat.Prewarm
	for _, p := range c.fsm.current().Prewarms() {
		prewarms = append(prewarms, heat.Prewarm{Root: p.Root, Replicas: int(p.Replicas), Until: p.Until})
	}
	plan := heat.Plan(s.Params, epoch, s.Reports(), prewarms)
	c.targets.mu.Lock()
	c.targets.epoch, c.targets.list = epoch, plan
	c.targets.mu.Unlock()
	network := c.cfg.Genesis.Network
	var errs []error
	for _, t := range plan {
		if len(t.Boxes) == 0 {
			continue
		}
		o := t.Order(network, c.self, epoch)
		if err := o.Sign(network, c.cfg.Key); err != nil {
			return fmt.Errorf("committee: sign order for %s: %w", t.Root, err)
		}
		if err := s.Publish(ctx, o); err != nil {
			errs = append(errs, err)
			continue
		}
		c.metrics.orders.Inc()
		if len(t.Assigned) > 0 {
			c.log.Info("replication order", "root", t.Root, "reason", t.Reason, "replicas", t.Replicas,
				"holders", len(t.Holders), "assigned", len(t.Assigned), "until_epoch", t.Until)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("committee: publish %d of the epoch's orders: %w", len(errs), errs[0])
	}
	return nil
}
