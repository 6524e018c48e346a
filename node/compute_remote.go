package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// ComputeProtocol is the job exchange: a requester asks a runner for a
// job, the runner answers with its signed claim (a pod.JobReceipt naming
// the requester), the requester fetches the output (a delivery like any
// other) and sends back the receipt countersigned. Boxes serve it only
// with WithComputeService.
const ComputeProtocol = protocol.ID("/ore/compute/1.0.0")

// Bounds of the exchange's frames.
const (
	maxJobRequest = 4096
	maxJobAnswer  = pod.MaxJobEncoded + 4096
	// computeStreamTimeout bounds a whole exchange, the job's run included
	// (the engine's own bound is 5 minutes).
	computeStreamTimeout = 6 * time.Minute
)

// WithComputeMemory bounds the linear memory the box's jobs hold at once
// (compute.EngineConfig.Memory; 0: the profile's share of the RAM,
// computeMemory).
func WithComputeMemory(bytes int64) Option {
	return func(c *Config) error {
		if bytes < 0 {
			return fmt.Errorf("node: %d bytes of job memory", bytes)
		}
		c.ComputeMemory = bytes
		return nil
	}
}

// WithComputeService makes the box run jobs for other peers, at most jobs
// at once (half the cores by default, DefaultComputeConcurrency; 0: it
// runs none for others), one per peer at a time.
func WithComputeService(jobs int) Option {
	return func(c *Config) error {
		if jobs < 0 {
			return fmt.Errorf("node: %d jobs for other peers", jobs)
		}
		c.ComputeService = jobs
		return nil
	}
}

type jobRequest struct {
	Fn    cid.Cid  `json:"fn"`
	Input cid.Cid  `json:"input"`
	Args  []string `json:"args"`
}

// jobAnswer is the runner's answer: a claim, or why not. Kind names a
// failure the requester maps back to compute's errors.
type jobAnswer struct {
	Claim []byte `json:"claim,omitempty"`
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"` // "limit", "function", "" (any other)
}

func writeFrame(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Write(binary.AppendUvarint(nil, uint64(len(b))))
	w.Write(b)
	return w.Flush()
}

func readFrame(r *bufio.Reader, max int, v any) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > uint64(max) {
		return fmt.Errorf("node: a frame of %d bytes, the limit is %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// computeService serves ComputeProtocol.
type computeService struct {
	n     *Node
	slots chan struct{}
	mu    sync.Mutex
	busy  map[peer.ID]bool
}

// startComputeService serves jobs to other peers when the box lends its CPU.
func (n *Node) startComputeService() {
	if n.cfg.ComputeService <= 0 {
		return
	}
	s := &computeService{n: n, slots: make(chan struct{}, n.cfg.ComputeService), busy: map[peer.ID]bool{}}
	n.computeSvc = s
	n.host.SetStreamHandler(ComputeProtocol, s.handle)
}

func (s *computeService) handle(st network.Stream) {
	defer st.Close()
	from := st.Conn().RemotePeer()
	_ = st.SetDeadline(time.Now().Add(computeStreamTimeout))
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	answer := func(a jobAnswer) { _ = writeFrame(w, a) }
	// One job a peer at a time, and no more than the box lends at once:
	// a refusal costs the asker a round trip and the box nothing.
	s.mu.Lock()
	if s.busy[from] {
		s.mu.Unlock()
		answer(jobAnswer{Error: "one job at a time per peer"})
		return
	}
	s.busy[from] = true
	s.mu.Unlock()
	// The peer's turn and the slot end with the job's answer, not with
	// the countersignature that follows: a requester that asks again once
	// it has countersigned is not turned away.
	var slot bool
	var once sync.Once
	release := func() {
		once.Do(func() {
			if slot {
				<-s.slots
			}
			s.mu.Lock()
			delete(s.busy, from)
			s.mu.Unlock()
		})
	}
	defer release()
	select {
	case s.slots <- struct{}{}:
		slot = true
	default:
		answer(jobAnswer{Error: fmt.Sprintf("this box runs %d jobs for others at once, all taken; ask another", cap(s.slots))})
		return
	}
	var req jobRequest
	if err := readFrame(r, maxJobRequest, &req); err != nil {
		answer(jobAnswer{Error: "bad request: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(s.n.ctx, computeStreamTimeout)
	defer cancel()
	claim, err := s.n.claimJob(ctx, req.Fn, req.Input, req.Args, from)
	if err != nil {
		kind := ""
		switch {
		case errors.Is(err, compute.ErrLimit):
			kind = "limit"
		case errors.Is(err, compute.ErrFunction):
			kind = "function"
		}
		answer(jobAnswer{Error: err.Error(), Kind: kind})
		return
	}
	release()
	answer(jobAnswer{Claim: claim.Marshal()})
	// The requester countersigns once it holds the output.
	var back jobAnswer
	if err := readFrame(r, maxJobAnswer, &back); err != nil {
		s.n.log.Debug("job receipt not countersigned", "requester", from, "err", err)
		return
	}
	signed, err := pod.UnmarshalJobReceipt(back.Claim)
	if err != nil || signed.Verify() != nil || signed.RunnerSig == nil || string(signed.RunnerSig) != string(claim.RunnerSig) {
		s.n.log.Debug("bad countersigned job receipt", "requester", from, "err", err)
		return
	}
	s.n.log.Info("job receipt countersigned", "requester", from, "work", signed.Work)
}

// claimJob runs (or finds) the job and signs a claim naming requester: a
// requester pays once per job, whether this box ran it for it or before.
func (n *Node) claimJob(ctx context.Context, fn, input cid.Cid, args []string, requester peer.ID) (*pod.JobReceipt, error) {
	e, err := n.Compute()
	if err != nil {
		return nil, err
	}
	out, err := e.Run(ctx, fn, input, args, requester)
	if err != nil {
		return nil, err
	}
	c := out.Claim
	if c.Requester == requester && c.Runner == n.ID() {
		return c, nil
	}
	r := &pod.JobReceipt{Version: pod.JobReceiptVersion, Network: n.cfg.Network.Network,
		Epoch: n.cfg.Network.EpochAt(time.Now()), Runner: n.ID(), Requester: requester,
		Fn: fn, Input: input, Args: args, Output: c.Output, Work: c.Work}
	if err := r.SignRunner(n.key); err != nil {
		return nil, err
	}
	return r, nil
}

// ErrJobMismatch: a runner's claim differs from this box's own run of the
// job. Jobs are deterministic, so the runner's signed claim is evidence
// that it lied (MismatchError carries it).
var ErrJobMismatch = errors.New("node: the runner's claim differs from the job's outcome here")

// MismatchError is a caught runner: its signed claim and this box's own.
type MismatchError struct {
	Claim, Ours *pod.JobReceipt
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: runner %s claims output %s in %d work units, this box got %s in %d",
		ErrJobMismatch, e.Claim.Runner, e.Claim.Output, e.Claim.Work, e.Ours.Output, e.Ours.Work)
}

func (e *MismatchError) Unwrap() error { return ErrJobMismatch }

// JobOption tunes RunJobOn.
type JobOption func(*jobOptions)

type jobOptions struct{ verify bool }

// VerifyJob re-runs the job on this box before countersigning: a claim
// whose output or work differs is not signed and fails with a
// *MismatchError. A requester that verifies a random fraction of its
// jobs makes lying cost a runner its pay for every job it is caught on.
func VerifyJob() JobOption { return func(o *jobOptions) { o.verify = true } }

// RunJobOn asks runner to run the job (fn, input, args) for this box,
// checks the claim, fetches the output into this box's store, and
// countersigns: the receipt is then a job the ledger pays (submitted when
// the box has a ledger network whose rules take jobs).
func (n *Node) RunJobOn(ctx context.Context, runner peer.ID, fn, input cid.Cid, args []string, opts ...JobOption) (*pod.JobReceipt, error) {
	var o jobOptions
	for _, f := range opts {
		f(&o)
	}
	if err := pod.CheckJobArgs(args); err != nil {
		return nil, err
	}
	if err := n.checkRunner(ctx, runner); err != nil {
		return nil, err
	}
	st, err := n.host.NewStream(ctx, runner, ComputeProtocol)
	if err != nil {
		return nil, fmt.Errorf("node: runner %s: %w", runner, err)
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	} else {
		_ = st.SetDeadline(time.Now().Add(computeStreamTimeout))
	}
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	if err := writeFrame(w, jobRequest{Fn: fn, Input: input, Args: args}); err != nil {
		return nil, fmt.Errorf("node: send the job to %s: %w", runner, err)
	}
	var a jobAnswer
	if err := readFrame(r, maxJobAnswer, &a); err != nil {
		return nil, fmt.Errorf("node: the answer of %s: %w", runner, err)
	}
	if a.Error != "" {
		switch a.Kind {
		case "limit":
			return nil, fmt.Errorf("%w (runner %s): %s", compute.ErrLimit, runner, a.Error)
		case "function":
			return nil, fmt.Errorf("%w (runner %s): %s", compute.ErrFunction, runner, a.Error)
		}
		return nil, fmt.Errorf("node: runner %s: %s", runner, a.Error)
	}
	c, err := pod.UnmarshalJobReceipt(a.Claim)
	if err != nil {
		return nil, fmt.Errorf("node: the claim of %s: %w", runner, err)
	}
	switch {
	case c.VerifyRunner() != nil:
		return nil, fmt.Errorf("node: the claim of %s is not signed by it", runner)
	case c.Runner != runner || c.Requester != n.ID() || c.Fn != fn || c.Input != input || c.JobID() != pod.JobID(fn, input, args):
		return nil, fmt.Errorf("node: the claim of %s is not of the job asked", runner)
	case n.cfg.Network.CheckJob(c) != nil:
		return nil, fmt.Errorf("node: the claim of %s: %w", runner, n.cfg.Network.CheckJob(c))
	}
	// The output must exist before this box signs that it received it.
	if _, err := n.Fetch(ctx, c.Output, nil); err != nil {
		return nil, fmt.Errorf("node: the output %s claimed by %s: %w", c.Output, runner, err)
	}
	if o.verify {
		ours, err := n.RunJob(ctx, fn, input, args)
		if err != nil {
			return nil, fmt.Errorf("node: verifying the claim of %s: %w", runner, err)
		}
		if ours.Claim.Output != c.Output || ours.Claim.Work != c.Work {
			n.log.Warn("runner caught: its claim differs from this box's run", "runner", runner, "claimed", c.Output, "got", ours.Claim.Output)
			return nil, &MismatchError{Claim: c, Ours: ours.Claim}
		}
	}
	if err := c.SignRequester(n.key); err != nil {
		return nil, err
	}
	if err := writeFrame(w, jobAnswer{Claim: c.Marshal()}); err != nil {
		n.log.Debug("countersigned job receipt not sent back", "runner", runner, "err", err)
	}
	if g := n.cfg.Genesis; g != nil && g.Rules >= ledger.RulesV4 {
		if err := n.SubmitTx(ctx, ledger.NewJobTx(c)); err != nil {
			return c, fmt.Errorf("node: job done, receipt not submitted to the ledger: %w", err)
		}
	}
	return c, nil
}
