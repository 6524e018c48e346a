package committee

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/ledger"
)

// Block epochs against the members' clocks.
//
// The state machine does not read a clock (ledger.Apply takes the epoch a
// block names, provided it does not go back), so a leader could write any
// epoch: a block at epoch 2^62 would make every later receipt too old
// (epoch_out_of_range) and stop payments for good. Each member therefore
// checks a block's epoch against its own clock before it signs: it signs
// only blocks at most maxEpochLead epochs ahead of its clock (a correct
// leader closes the epoch that just ended, one behind the clock, so this
// leaves a leader two epochs of clock error) and not behind the previous
// block's epoch (which Apply refuses anyway). The leader, the only
// proposer, refuses to propose such an epoch too.
//
// A member that refuses still applies the block: every member applies
// every block the Raft log commits, so refusing to apply would make this
// member's state differ from the others' without anyone noticing. It
// withholds its signature instead, counts the refusal and logs it, so the
// block is not final unless a majority signs it. With today's rule (a
// majority of the committee: 2 of 3) a leader and one other member, both
// wrong or colluding, still make such a block final; a rule of more than
// two thirds, with members that vote before a block is applied, is what
// closes that.
const maxEpochLead = 1

// Reasons a member refuses to sign a block it applied.
var (
	// ErrFutureEpoch is a block whose epoch is more than maxEpochLead
	// ahead of this member's clock.
	ErrFutureEpoch = errors.New("committee: block epoch ahead of this member's clock")
	// ErrPastEpoch is a block whose epoch is before its parent's.
	ErrPastEpoch = errors.New("committee: block epoch before the previous block's")
)

// checkEpoch is the signing rule on a block's epoch: not before parent's
// (the previous block's epoch) and at most maxEpochLead after now (the
// epoch of this member's clock).
func checkEpoch(epoch, parent, now uint64) error {
	switch {
	case epoch < parent:
		return fmt.Errorf("%w: epoch %d, the previous block's is %d", ErrPastEpoch, epoch, parent)
	case epoch > now && epoch-now > maxEpochLead:
		return fmt.Errorf("%w: epoch %d, this member's clock is in epoch %d (at most %d ahead signed)", ErrFutureEpoch, epoch, now, maxEpochLead)
	}
	return nil
}

// epochReason is the metric label of a checkEpoch error.
func epochReason(err error) string {
	if errors.Is(err, ErrPastEpoch) {
		return "past_epoch"
	}
	return "future_epoch"
}

// forgetSlack is how many epochs beyond MaxSkew a member keeps receipts
// its clock calls too old while the chain's state does not (see
// forgetBefore).
const forgetSlack = 8

// forgetBefore is the epoch below which no later block can pay a receipt,
// so the pool may forget it. Block epochs never go back, so a block after
// a state of epoch stateEpoch pays no receipt older than stateEpoch-maxSkew
// (the ledger refuses those): that bound comes from the chain and holds
// whatever the clocks say. This member's clock (closed, the epoch that
// just ended by it) is no such bound: were it fast, receipts that a leader
// with a correct clock can still pay would be dropped. It only caps what
// the pool keeps while no block comes: receipts more than
// maxSkew+forgetSlack epochs behind it go.
func forgetBefore(stateEpoch, closed, maxSkew uint64) uint64 {
	before := sub0(stateEpoch, maxSkew)
	return max(before, sub0(closed, maxSkew+forgetSlack))
}

func sub0(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// epochMetrics show how the leaders' clocks compare to this member's.
type epochMetrics struct {
	unsigned *prometheus.CounterVec // blocks applied, not signed, by reason
	lead     prometheus.Gauge       // last block's epoch minus this member's
	offset   prometheus.Gauge       // last block's leader time minus this member's clock
}

func newEpochMetrics() epochMetrics {
	m := epochMetrics{
		unsigned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_ledger_blocks_unsigned_total",
			Help: "Blocks this coordinator applied but refused to sign, by reason (future_epoch: ahead of its clock by more than one epoch; past_epoch)."}, []string{"reason"}),
		lead: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ore_ledger_block_epoch_lead",
			Help: "Epoch of the last block applied minus the epoch of this coordinator's clock when it applied it: -1 normally (a block closes the epoch that ended); above 1 the block is not signed."}),
		offset: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ore_ledger_leader_clock_offset_seconds",
			Help: "The last applied block's leader time minus this coordinator's clock when it applied the block: the leader's clock error, less the block's way here."}),
	}
	for _, r := range []string{"future_epoch", "past_epoch"} {
		m.unsigned.WithLabelValues(r)
	}
	return m
}

func (m epochMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.unsigned, m.lead, m.offset}
}

// judgeEpoch applies checkEpoch to a block this member applied, on parent
// epoch, and records the leader's clock against this member's.
func (c *Committee) judgeEpoch(h *ledger.Header, parent uint64) error {
	now := c.cfg.Clock()
	clock := c.cfg.Genesis.Params().EpochAt(now)
	lead := float64(h.Epoch) - float64(clock)
	c.metrics.epoch.lead.Set(lead)
	offset := time.Unix(0, h.Time).Sub(now)
	c.metrics.epoch.offset.Set(offset.Seconds())
	err := checkEpoch(h.Epoch, parent, clock)
	if err != nil {
		c.metrics.epoch.unsigned.WithLabelValues(epochReason(err)).Inc()
		c.log.Warn("block applied but not signed: its epoch is wrong by this member's clock",
			"height", h.Height, "epoch", h.Epoch, "clock_epoch", clock, "proposer", h.Proposer, "leader_offset", offset, "err", err)
		return err
	}
	if lead > 0 {
		c.log.Warn("the leader's clock runs ahead of this member's", "height", h.Height, "epoch", h.Epoch,
			"clock_epoch", clock, "proposer", h.Proposer, "leader_offset", offset)
	}
	return nil
}
