package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// Checking jobs (RulesV5, see ledger/jobcheck.go). A paid job is under
// challenge for ledger.JobChallengeEpochs; the ledger samples some of
// them. Each coordinator re-runs the sampled jobs given to it (one member
// per job, by the job's key, so a sampled job costs one run in the honest
// case) and, when its outcome differs from the runner's, asks the other
// members for theirs (CheckProtocol). A quorum of members' checks that
// disagree with the runner is the proof (ledger.KindJobMismatch) that
// forfeits its bond. Any box may start the same challenge of a pending
// job (ChallengeJob): a requester that re-ran a job and got another
// outcome, for one.

// CheckProtocol asks a coordinator for its signed check (pod.JobCheck) of
// a job under challenge on its ledger. Only coordinators serve it, and
// only for pending jobs: members are not free compute.
const CheckProtocol = protocol.ID("/ore/compute/check/1.0.0")

type checkRequest struct {
	Fn        cid.Cid  `json:"fn"`
	Input     cid.Cid  `json:"input"`
	Args      []string `json:"args"`
	Requester peer.ID  `json:"requester"`
}

type checkAnswer struct {
	Check []byte `json:"check,omitempty"`
	Error string `json:"error,omitempty"`
}

// CheckJob runs the job (fn, input, args) on this box (or answers from
// its own earlier run) and signs its outcome as a check.
func (n *Node) CheckJob(ctx context.Context, fn, input cid.Cid, args []string) (pod.JobCheck, error) {
	out, err := n.RunJob(ctx, fn, input, args)
	if err != nil {
		return pod.JobCheck{}, fmt.Errorf("node: checking job %x: %w", pod.JobID(fn, input, args), err)
	}
	c := pod.JobCheck{Network: n.cfg.Network.Network, Job: pod.JobID(fn, input, args), Output: out.Claim.Output,
		Work: out.Claim.Work, Checker: n.ID()}
	if err := c.Sign(n.key); err != nil {
		return c, err
	}
	return c, nil
}

func (n *Node) serveChecks(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(computeStreamTimeout))
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	answer := func(a checkAnswer) { _ = writeFrame(w, a) }
	var req checkRequest
	if err := readFrame(r, maxJobRequest, &req); err != nil {
		answer(checkAnswer{Error: "bad request: " + err.Error()})
		return
	}
	id := pod.JobID(req.Fn, req.Input, req.Args)
	ctx, cancel := context.WithTimeout(n.ctx, computeStreamTimeout)
	defer cancel()
	if _, ok := n.committee.State().PendingJob(id, req.Requester); !ok {
		answer(checkAnswer{Error: fmt.Sprintf("job %x of %s is not under challenge on this ledger", id[:8], req.Requester)})
		return
	}
	c, err := n.CheckJob(ctx, req.Fn, req.Input, req.Args)
	if err != nil {
		answer(checkAnswer{Error: err.Error()})
		return
	}
	answer(checkAnswer{Check: c.AppendTo(nil)})
}

// askCheck asks member m for its check of the job.
func (n *Node) askCheck(ctx context.Context, m ledger.Member, req checkRequest) (pod.JobCheck, error) {
	ai, err := m.AddrInfo()
	if err != nil {
		return pod.JobCheck{}, err
	}
	if err := n.host.Connect(ctx, ai); err != nil {
		return pod.JobCheck{}, fmt.Errorf("node: member %s: %w", m.ID, err)
	}
	st, err := n.host.NewStream(ctx, m.ID, CheckProtocol)
	if err != nil {
		return pod.JobCheck{}, fmt.Errorf("node: member %s: %w", m.ID, err)
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	if err := writeFrame(w, req); err != nil {
		return pod.JobCheck{}, fmt.Errorf("node: ask member %s: %w", m.ID, err)
	}
	var a checkAnswer
	if err := readFrame(r, maxJobAnswer, &a); err != nil {
		return pod.JobCheck{}, fmt.Errorf("node: the answer of member %s: %w", m.ID, err)
	}
	if a.Error != "" {
		return pod.JobCheck{}, fmt.Errorf("node: member %s: %s", m.ID, a.Error)
	}
	d := wire.NewDecoder(a.Check, pod.ErrBadJob)
	c := pod.ReadJobCheck(d)
	if err := d.End(); err != nil {
		return c, fmt.Errorf("node: the check of member %s: %w", m.ID, err)
	}
	if c.Checker != m.ID || c.Job != pod.JobID(req.Fn, req.Input, req.Args) || c.Network != n.cfg.Network.Network || c.Verify() != nil {
		return c, fmt.Errorf("node: member %s answered a check that is not its own of the job asked", m.ID)
	}
	return c, nil
}

// ErrNoQuorum: the members' checks make no quorum either way (members
// down, or failing to run the job).
var ErrNoQuorum = errors.New("node: the members' checks of the job make no quorum")

// Challenge is what a challenge of a job found.
type Challenge struct {
	Mismatch bool           // a quorum disagrees with the runner: the proof was submitted
	Checks   []pod.JobCheck // the quorum's checks
}

// ChallengeJob checks the runner's claim r (a job receipt a final block
// paid, under challenge) against the committee: every member runs the
// job (this box's own check counts if it is a member); a quorum that
// agrees with the runner clears it, a quorum that agrees on another
// outcome is a proof this box submits, forfeiting the runner's bond.
func (n *Node) ChallengeJob(ctx context.Context, r *pod.JobReceipt) (Challenge, error) {
	g := n.cfg.Genesis
	if g == nil || g.Rules < ledger.RulesV5 {
		return Challenge{}, fmt.Errorf("node: challenges of jobs need a ledger of rules version %d", ledger.RulesV5)
	}
	st, err := n.LedgerState(ctx)
	if err != nil {
		return Challenge{}, err
	}
	pj, ok := st.PendingJob(r.JobID(), r.Requester)
	if !ok || !pj.Output.Equals(r.Output) || pj.Work != r.Work || pj.Runner != r.Runner {
		return Challenge{}, fmt.Errorf("node: the claim of job %x is not one under challenge on the ledger", r.JobID())
	}
	req := checkRequest{Fn: r.Fn, Input: r.Input, Args: r.Args, Requester: r.Requester}
	checks := make([]pod.JobCheck, len(g.Committee))
	errs := make([]error, len(g.Committee))
	var wg sync.WaitGroup
	for i, m := range g.Committee {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.ID == n.ID() {
				checks[i], errs[i] = n.CheckJob(ctx, r.Fn, r.Input, r.Args)
				return
			}
			checks[i], errs[i] = n.askCheck(ctx, m, req)
		}()
	}
	wg.Wait()
	// Group the checks by outcome; a quorum of one outcome decides.
	type outcome struct {
		out  string
		work uint64
	}
	groups := map[outcome][]pod.JobCheck{}
	for i, c := range checks {
		if errs[i] != nil {
			n.log.Debug("member's check failed", "member", g.Committee[i].ID, "err", errs[i])
			continue
		}
		k := outcome{c.Output.KeyString(), c.Work}
		groups[k] = append(groups[k], c)
	}
	for k, cs := range groups {
		if len(cs) < g.Quorum() {
			continue
		}
		if k.out == r.Output.KeyString() && k.work == r.Work {
			return Challenge{Checks: cs}, nil
		}
		tx := ledger.NewJobMismatchTx(r.Requester, r.JobID(), cs[:g.Quorum()])
		if err := n.SubmitTx(ctx, tx); err != nil {
			return Challenge{Mismatch: true, Checks: cs}, fmt.Errorf("node: submitting the proof of a mismatch: %w", err)
		}
		n.log.Warn("runner proven wrong: proof submitted", "runner", r.Runner, "job", fmt.Sprintf("%x", r.JobID()), "claimed", r.Output, "checked", cs[0].Output)
		return Challenge{Mismatch: true, Checks: cs}, nil
	}
	return Challenge{}, fmt.Errorf("%w: %d of %d members answered (%v)", ErrNoQuorum, len(checks)-countErrs(errs), len(checks), errors.Join(errs...))
}

func countErrs(errs []error) int {
	k := 0
	for _, e := range errs {
		if e != nil {
			k++
		}
	}
	return k
}

// ErrCheater: the ledger holds a proof that the runner claimed a wrong
// outcome; this box sends it no jobs.
var ErrCheater = errors.New("node: the runner was proven to claim wrong outcomes")

// checkRunner refuses a runner the ledger (rules 5) caught cheating.
func (n *Node) checkRunner(ctx context.Context, runner peer.ID) error {
	if g := n.cfg.Genesis; g == nil || g.Rules < ledger.RulesV5 {
		return nil
	}
	st, err := n.LedgerState(ctx)
	if err != nil {
		return fmt.Errorf("node: reading the ledger before asking %s for a job: %w", runner, err)
	}
	if c, ok := st.Cheated(runner); ok {
		return fmt.Errorf("%w: %s, %d proof(s), the last at epoch %d", ErrCheater, runner, c.Count, c.Epoch)
	}
	return nil
}

// JobReceiptIn finds the receipt of a pending job in the blocks that
// paid it: the ledger keeps the job's outcome, the blocks its arguments.
func JobReceiptIn(blocks []*ledger.Block, pj ledger.PendingJob) (*pod.JobReceipt, bool) {
	for _, b := range blocks {
		if b.Header.Height != pj.Height {
			continue
		}
		for _, tx := range b.Txs {
			if tx.Kind == ledger.KindJob && tx.Job != nil && tx.Job.JobID() == pj.Job && tx.Job.Requester == pj.Requester {
				return tx.Job, true
			}
		}
	}
	return nil, false
}

// startJobChecker makes a coordinator of a RulesV5 network serve checks
// and check the sampled jobs given to it, once an epoch.
func (n *Node) startJobChecker() {
	if n.committee == nil || n.cfg.Genesis.Rules < ledger.RulesV5 {
		return
	}
	n.host.SetStreamHandler(CheckProtocol, n.serveChecks)
	done := map[pendingKey]bool{}
	n.every(n.cfg.Genesis.EpochLength, func(ctx context.Context) { n.checkSampled(ctx, done) })
}

type pendingKey struct {
	job       [32]byte
	requester peer.ID
}

// checkSampled checks the sampled jobs this member is given (by the
// job's ID, over the committee) and not checked yet, and challenges the
// runner of any whose outcome here differs.
func (n *Node) checkSampled(ctx context.Context, done map[pendingKey]bool) {
	st := n.committee.State()
	g := n.cfg.Genesis
	seen := map[pendingKey]bool{}
	for _, pj := range st.JobsToCheck() {
		key := pendingKey{pj.Job, pj.Requester}
		seen[key] = true
		if done[key] || g.Committee[int(pj.Job[31])%len(g.Committee)].ID != n.ID() {
			continue
		}
		done[key] = true
		b, ok := n.committee.Block(pj.Height)
		if !ok {
			continue
		}
		r, ok := JobReceiptIn([]*ledger.Block{b}, pj)
		if !ok {
			continue
		}
		c, err := n.CheckJob(ctx, r.Fn, r.Input, r.Args)
		if err != nil {
			n.log.Warn("a sampled job could not be checked", "job", fmt.Sprintf("%x", pj.Job), "err", err)
			continue
		}
		if c.Agrees(r) {
			n.log.Debug("sampled job checked", "job", fmt.Sprintf("%x", pj.Job), "runner", pj.Runner)
			continue
		}
		if _, err := n.ChallengeJob(ctx, r); err != nil {
			n.log.Warn("challenging a job failed", "job", fmt.Sprintf("%x", pj.Job), "err", err)
		}
	}
	for k := range done {
		if !seen[k] { // out of its window: it will not be sampled again
			delete(done, k)
		}
	}
}
