package node

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// Jobs on boxes with idle CPU. A box that lends CPU (WithComputeService,
// ore init --compute-share) says so in its heat report (heat.Compute:
// the slots it lends, its engine's cap and load, compiler or
// interpreter); a gateway keeps the latest word of every such box and
// sends a job it has no answer for to the one heat.ChooseRunners ranks
// first, falling back to the next and then to its own engine. Jobs never
// starve delivery on either side: a runner runs at most its lent slots
// for others (and its engine at most its cap, half the cores by
// default), and a gateway's own runs are bounded by its engine's cap.

// maxRunners bounds the lending boxes a gateway remembers (a few dozen
// bytes each). Any key may sign a report, so past it the report of the
// oldest epoch is pushed out, as with maxReports.
const maxRunners = 4096

// remoteTries is how many runners a gateway asks for one job before it
// runs the job itself: a refusal (the runner's slots all taken since its
// report) costs a round trip.
const remoteTries = 2

// computeReport is what this box lends, for its heat report: nothing
// unless it serves jobs to other peers.
func (n *Node) computeReport() heat.Compute {
	s := n.computeSvc
	if s == nil {
		return heat.Compute{}
	}
	e, err := n.Compute()
	if err != nil {
		return heat.Compute{}
	}
	c := heat.Compute{
		Slots:  uint32(min(cap(s.slots), heat.MaxComputeSlots)),
		Cap:    uint32(min(e.Cap(), heat.MaxComputeSlots)),
		Engine: heat.EngineInterpreter,
		Arch:   runtime.GOARCH,
	}
	c.Busy = min(uint32(len(s.slots)), c.Slots)
	c.Running = min(uint32(max(e.Running(), 0)), c.Cap)
	if e.Compiled() {
		c.Engine = heat.EngineCompiler
	}
	return c
}

// keepRunner remembers r's reporter as a runner if it lends CPU, and
// forgets it if it stopped.
func (s *sched) keepRunner(r *heat.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, known := s.runners[r.Reporter]
	if known && old.Epoch > r.Epoch {
		return
	}
	if !r.Compute.Lends() {
		delete(s.runners, r.Reporter)
		return
	}
	if !known && len(s.runners) >= maxRunners {
		var oldest peer.ID
		for p, x := range s.runners {
			if oldest == "" || x.Epoch < s.runners[oldest].Epoch {
				oldest = p
			}
		}
		delete(s.runners, oldest)
	}
	s.runners[r.Reporter] = heat.Runner{ID: r.Reporter, Epoch: r.Epoch, Compute: r.Compute, Pending: old.Pending}
}

// chooseRunners ranks the boxes that may run job now (heat.ChooseRunners).
func (s *sched) chooseRunners(job [32]byte, work uint64, n int) []peer.ID {
	s.mu.Lock()
	rs := make([]heat.Runner, 0, len(s.runners))
	for _, r := range s.runners {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	return heat.ChooseRunners(heat.DefaultRunnerParams(), rs, s.n.ID(), s.epoch(), job, work, n)
}

// sent counts a job this box sent runner (d = 1) or had answered (d = -1).
func (s *sched) sent(runner peer.ID, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runners[runner]
	if !ok {
		return
	}
	if d > 0 {
		r.Pending++
	} else if r.Pending > 0 {
		r.Pending--
	}
	s.runners[runner] = r
}

// remoteJobKey is where a box keeps the claim of a job another box ran
// for it: apart from IndexKey, which holds only this box's own claims
// (the ones it signs again for other requesters, see claimJob).
func remoteJobKey(id [32]byte) []byte { return append([]byte("compute/remote/"), id[:]...) }

// finalLookup bounds the ledger read of a job's final output: past it,
// the gateway runs the job rather than wait on the coordinators.
const finalLookup = 3 * time.Second

// finalJob reads job's output from the ledger's index of final outputs
// (rules 5; ledger.State.FinalJob).
func (n *Node) finalJob(ctx context.Context, job [32]byte) (ledger.FinalJob, bool) {
	if g := n.cfg.Genesis; g == nil || g.Rules < ledger.RulesV5 {
		return ledger.FinalJob{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, finalLookup)
	defer cancel()
	st, err := n.LedgerState(ctx)
	if err != nil {
		n.log.Debug("ledger not read for a job's final output", "err", err)
		return ledger.FinalJob{}, false
	}
	return st.FinalJob(job)
}

// runJobAnywhere answers a job for this box's gateway: from its index or
// the ledger's final outputs, else on a box with spare CPU, else on its
// own engine.
func (n *Node) runJobAnywhere(ctx context.Context, fn, input cid.Cid, args []string) (compute.Outcome, error) {
	e, err := n.Compute()
	if err != nil {
		return compute.Outcome{}, err
	}
	if err := pod.CheckJobArgs(args); err != nil {
		return compute.Outcome{}, err
	}
	id := pod.JobID(fn, input, args)
	if c, ok, err := e.Lookup(ctx, id); err != nil {
		return compute.Outcome{}, err
	} else if ok {
		return compute.Outcome{Claim: c, Cached: true}, nil
	}
	if b, ok, err := n.store.GetMeta(ctx, remoteJobKey(id)); err == nil && ok {
		if c, err := pod.UnmarshalJobReceipt(b); err == nil {
			return compute.Outcome{Claim: c, Cached: true}, nil
		}
	}
	if f, ok := n.finalJob(ctx, id); ok {
		return compute.Outcome{Final: &compute.Final{Job: id, Output: f.Output, Work: f.Work}, Cached: true}, nil
	}
	s := n.sched
	var runners []peer.ID
	s.mu.Lock()
	lenders := len(s.runners)
	s.mu.Unlock()
	if lenders > 0 {
		d, err := e.Function(ctx, fn)
		if err != nil {
			return compute.Outcome{}, err
		}
		runners = s.chooseRunners(id, d.Limits.Work, remoteTries)
	}
	for _, runner := range runners {
		s.sent(runner, 1)
		c, err := n.RunJobOn(ctx, runner, fn, input, args)
		s.sent(runner, -1)
		if c == nil {
			// Whatever the runner said (busy, gone, even a limit or the
			// function's error, which this box's own run will tell for
			// itself), the next one or this box answers.
			n.log.Debug("job not run by the chosen runner", "runner", runner, "fn", fn, "err", err)
			if ctx.Err() != nil {
				return compute.Outcome{}, ctx.Err()
			}
			continue
		}
		if err != nil {
			n.log.Warn("job run by a runner, its receipt not paid", "runner", runner, "err", err)
		}
		if err := n.store.PutMeta(ctx, remoteJobKey(id), c.Marshal()); err != nil {
			n.log.Debug("keeping a runner's claim", "err", err)
		}
		n.log.Info("job run on a runner", "runner", runner, "fn", fn, "output", c.Output, "work", c.Work)
		return compute.Outcome{Claim: c}, nil
	}
	return e.Run(ctx, fn, input, args, n.ID())
}

// Runners lists the boxes this box knows to lend CPU (gateways and
// coordinators learn them from heat reports), with the jobs it has sent
// each and not had answered.
func (n *Node) Runners() []heat.Runner {
	if n.sched == nil {
		return nil
	}
	s := n.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]heat.Runner, 0, len(s.runners))
	for _, r := range s.runners {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b heat.Runner) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}
