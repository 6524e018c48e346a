package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// Jobs verified, with consequences (RulesV5).
//
// A runner's receipt is its word alone: a runner could claim any output
// and the most work, and be paid. RulesV5 makes that a losing bet:
//
//   - Bonds. A runner is paid only while its bond (KindBond: balance
//     locked as a bond) covers Genesis.JobBondFactor times what it has at
//     stake: the pay of its jobs still under challenge plus the new job's.
//     The factor is 1000/JobCheckRate rounded up, so bond >= pay /
//     sampling rate: a runner that cheats on a job is caught with at
//     least the sampling rate's chance and then loses at least the factor
//     times the job's pay, more than cheating ever earns.
//   - Held pay. A job's pay leaves the payer's escrow when its receipt is
//     taken (so the payer's cap and escrow bound it as before) but reaches
//     the runner only JobChallengeWindow epochs after the block that took it:
//     until then the job is pending, and a proven mismatch returns the pay
//     to the payer. A job that is not challenged by then is paid, and its
//     job -> output mapping stands on a final block.
//   - Sampling after the fact. A pending job is sampled for a check when
//     SHA-256 over the hash of the block that paid it and the job's key
//     falls under the genesis's JobCheckRate per mille: no one knows which jobs are
//     checked before their block is final (State.JobsToCheck lists them
//     for the committee's checkers).
//   - Proof of a mismatch (KindJobMismatch). A job's outcome (output CID,
//     work units) is a function of the job (package compute), so the
//     proof is the runner's signed claim (the receipt a final block paid)
//     and Quorum committee members' signed checks (pod.JobCheck) of the
//     same job that agree with each other and not with the claim. One
//     member cannot slash an honest runner alone, as it cannot finalize a
//     block alone. A proof returns the held pay to the payer, forfeits
//     the runner's whole bond to the checkers (what pays for checking),
//     and records the runner (State.Cheated), whom the planners send no
//     more jobs.
//   - Unbonding (KindUnbond) moves the bond back to the balance
//     JobChallengeWindow+1 epochs after the block that takes it: every job
//     paid while the bond stood is past its challenge window by then, and
//     the amount unbonding no longer covers new jobs.
//   - Tickets. A job under a ticket pays from the ticket's publisher's
//     escrow, as delivery does: the ticket must be on the ledger and cover
//     the job (its root is the job's input, or any root, registered by the
//     publisher; its client the requester, or anyone; not expired), and
//     its Cap counts work units for jobs (bytes for delivery), over every
//     runner. A job under no ticket pays from the requester's escrow, as
//     under RulesV4: the requester countersigned it.
//
// The transaction kinds 20 to 24 are this file's (20 to 22 used).
const (
	// KindBond: From locks Amount of its balance as its runner bond.
	KindBond Kind = 20
	// KindUnbond: From asks that Amount of its bond return to its balance
	// JobChallengeWindow+1 epochs later; a new one replaces a pending one.
	KindUnbond Kind = 21
	// KindJobMismatch: proof that a pending job's runner claimed a wrong
	// outcome (JobMismatch); anyone may submit it.
	KindJobMismatch Kind = 22
)

// RulesV5's parameters of jobs. The sampling rate and the challenge
// window are the genesis's (Genesis.JobCheckRate, JobChallengeWindow);
// these are their defaults.
const (
	// DefaultJobCheckPermille is the share of paid jobs, per mille,
	// sampled for a check: 5 %, so checking costs a twentieth of the
	// compute sold.
	DefaultJobCheckPermille = 50
	// DefaultJobChallengeEpochs is how long a job's pay is held after
	// the block that took it (10 minutes at 10 s epochs): the time the
	// checkers have to re-run the sampled jobs and prove a mismatch.
	DefaultJobChallengeEpochs = 60
	// MaxMismatchChecks bounds the checks of one proof: one per member of
	// the largest committee.
	MaxMismatchChecks = 5
)

// Refusal reasons of RulesV5's jobs.
const (
	ReasonInsufficientBond Reason = "insufficient_bond" // a runner's bond does not cover what it would have at stake
	ReasonNotPending       Reason = "not_pending"       // a mismatch of no job under challenge
	ReasonNoMismatch       Reason = "no_mismatch"       // checks that agree with the runner
)

// Bond is a runner's bond.
type Bond struct {
	Amount uint64 // locked; forfeited by a proven mismatch
	// Unbonding of Amount returns to the balance at the first block of
	// epoch At or later (at most what is left then).
	Unbonding, At uint64
	// Staked is the pay of the runner's jobs still under challenge.
	Staked uint64
}

// PendingJob is a paid job under challenge: its runner's claim, and the
// pay held until Release.
type PendingJob struct {
	Job       [32]byte // pod.JobID
	Runner    peer.ID
	Requester peer.ID
	Payer     peer.ID // whose escrow paid: the requester, or the ticket's publisher
	Fn, Input cid.Cid
	Output    cid.Cid
	Work      uint64
	Held      uint64 // the runner's pay, held
	Height    uint64 // of the block that paid it
	Release   uint64 // the first epoch the pay reaches the runner
	Sampled   bool   // set by the block after Height: checked by the committee
}

// Cheat records the proven mismatches of a runner.
type Cheat struct {
	Count uint64
	Epoch uint64 // of the block that took the last proof
}

// JobMismatch proves that the runner of the pending job (Job, Requester)
// claimed a wrong outcome: Checks, sorted by checker, are signed by
// distinct committee members, at least the genesis's Quorum, agree with
// each other, and not with the runner's claim.
type JobMismatch struct {
	Requester peer.ID
	Job       [32]byte
	Checks    []pod.JobCheck
}

// NewBond locks amount of from's balance as its runner bond.
func NewBond(from peer.ID, nonce, amount uint64) Tx {
	return Tx{Kind: KindBond, From: from, Nonce: nonce, Amount: amount}
}

// NewUnbond asks that amount of from's bond return to its balance after
// the challenge window.
func NewUnbond(from peer.ID, nonce, amount uint64) Tx {
	return Tx{Kind: KindUnbond, From: from, Nonce: nonce, Amount: amount}
}

// NewJobMismatchTx wraps a proof; its checks are put in checker order.
func NewJobMismatchTx(requester peer.ID, job [32]byte, checks []pod.JobCheck) Tx {
	cs := slices.Clone(checks)
	slices.SortFunc(cs, func(a, b pod.JobCheck) int { return bytes.Compare([]byte(a.Checker), []byte(b.Checker)) })
	return Tx{Kind: KindJobMismatch, Mismatch: &JobMismatch{Requester: requester, Job: job, Checks: cs}}
}

const maxMismatchTx = 64 + pod.MaxPeerIDLen + 32 + MaxMismatchChecks*pod.MaxJobCheckEncoded

func (m *JobMismatch) appendTo(b []byte) []byte {
	b = wire.AppendPeer(b, m.Requester)
	b = append(b, m.Job[:]...)
	b = binary.AppendUvarint(b, uint64(len(m.Checks)))
	for i := range m.Checks {
		b = m.Checks[i].AppendTo(b)
	}
	return b
}

func readJobMismatch(d *wire.Decoder) *JobMismatch {
	m := &JobMismatch{Requester: d.Peer(maxPeerIDLen, "requester"), Job: d.Hash("job")}
	n := d.Count(MaxMismatchChecks, "checks")
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Checks = append(m.Checks, pod.ReadJobCheck(d))
		if i > 0 && d.Err() == nil && m.Checks[i-1].Checker >= m.Checks[i].Checker {
			d.Failf("checks not in checker order, or one checker twice")
		}
	}
	return m
}

// verifySigs checks every check's signature.
func (m *JobMismatch) verifySigs() error {
	for i := range m.Checks {
		if err := m.Checks[i].Verify(); err != nil {
			return refuse(ReasonBadSignature, "check %d: %w", i, err)
		}
	}
	return nil
}

// jobKey names a (job, requester) pair: what a block pays once, and what
// a pending job is known by.
func jobKey(job [32]byte, requester peer.ID) [32]byte {
	return sha256.Sum256(wire.AppendPeer(append([]byte("ore/ledger/v1/job-paid\x00"), job[:]...), requester))
}

const jobSampleDomain = "ore/ledger/v5/job-sample\x00"

// JobCheckRate is the share of paid jobs, per mille, the committee
// checks: JobCheckPermille, or DefaultJobCheckPermille.
func (g *Genesis) JobCheckRate() uint64 {
	if g.JobCheckPermille == 0 {
		return DefaultJobCheckPermille
	}
	return uint64(g.JobCheckPermille)
}

// JobBondFactor is how many times what it has at stake a runner's bond
// must cover: 1 / the sampling rate, rounded up, so that bond >= pay /
// rate holds for any rate the genesis sets.
func (g *Genesis) JobBondFactor() uint64 {
	r := g.JobCheckRate()
	return (1000 + r - 1) / r
}

// JobChallengeWindow is how many epochs a job's pay is held after the
// block that took it: JobChallengeEpochs, or DefaultJobChallengeEpochs.
func (g *Genesis) JobChallengeWindow() uint64 {
	if g.JobChallengeEpochs == 0 {
		return DefaultJobChallengeEpochs
	}
	return g.JobChallengeEpochs
}

// jobSampled is the sampling rule: the job keyed key, paid by the block
// of hash block, is checked, with the chance of rate per mille.
func jobSampled(key, block [32]byte, rate uint64) bool {
	h := sha256.Sum256(append(append([]byte(jobSampleDomain), block[:]...), key[:]...))
	return binary.BigEndian.Uint64(h[:8])%1000 < rate
}

// Bond returns id's runner bond.
func (s *State) Bond(id peer.ID) Bond {
	if s.jobs == nil {
		return Bond{}
	}
	return s.jobs.bonds[id]
}

// Cheated reports the proven mismatches of a runner.
func (s *State) Cheated(runner peer.ID) (Cheat, bool) {
	if s.jobs == nil {
		return Cheat{}, false
	}
	c, ok := s.jobs.cheats[runner]
	return c, ok
}

// PendingJob returns the job (job, requester) while it is under challenge.
func (s *State) PendingJob(job [32]byte, requester peer.ID) (PendingJob, bool) {
	if s.jobs == nil {
		return PendingJob{}, false
	}
	p, ok := s.jobs.pending[jobKey(job, requester)]
	return p, ok
}

// JobsToCheck lists the pending jobs sampled for a check, by key: those
// the block after theirs sampled, and those of the state's own last block
// (sampled by its hash, which the state knows).
func (s *State) JobsToCheck() []PendingJob {
	if s.jobs == nil {
		return nil
	}
	var out []PendingJob
	for _, k := range slices.SortedFunc(maps.Keys(s.jobs.pending), func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) }) {
		p := s.jobs.pending[k]
		if p.Sampled || p.Height == s.height && jobSampled(k, s.lastHash, s.g.JobCheckRate()) {
			out = append(out, p)
		}
	}
	return out
}

// locked is the money the jobs' part holds outside the accounts: bonds
// and held pay. The supply is the accounts' money plus this.
func (j *jobLedger) locked() uint64 {
	if j == nil {
		return 0
	}
	var n uint64
	for _, b := range j.bonds {
		n += b.Amount
	}
	for _, p := range j.pending {
		n += p.Held
	}
	return n
}

// freeBond is what of a bond covers new jobs: the amount not unbonding.
func (b Bond) free() uint64 { return b.Amount - min(b.Unbonding, b.Amount) }

// applyBond applies a KindBond or KindUnbond to From's account a (nonce
// and signature already checked); n is unchanged if it fails.
func (n *State) applyBond(t *Tx, a *Account) error {
	if t.Amount == 0 {
		return refuse(ReasonZeroAmount, "amount is zero")
	}
	b := n.Bond(t.From)
	switch t.Kind {
	case KindBond:
		if err := debit(a, t.Amount); err != nil {
			return err
		}
		b.Amount += t.Amount // cannot overflow: the supply fits in a uint64
	case KindUnbond:
		if t.Amount > b.Amount {
			return refuse(ReasonInsufficientBond, "unbonding %d of a bond of %d", t.Amount, b.Amount)
		}
		// Past the challenge window of every job paid until this block.
		b.Unbonding, b.At = t.Amount, n.epoch+n.g.JobChallengeWindow()+1
	}
	n.writableJobs().bonds[t.From] = b
	return nil
}

// payJobV5 pays a job receipt under RulesV5 (stateless rules, signatures,
// function and work already checked; key not paid yet): from the ticket's
// publisher or the requester, into held pay, if the runner's bond covers it.
func (n *State) payJobV5(r *pod.JobReceipt, fn FunctionReg, key [32]byte) error {
	payer, work := r.Requester, r.Work
	var tk ticketEntry
	ticketed := r.Ticket != ([32]byte{})
	if ticketed {
		var ok bool
		if tk, ok = n.ticket(r.Ticket); !ok {
			return refuse(ReasonUnknownTicket, "ticket %x is not on the ledger: hand it over (a ticket transaction) before jobs under it", r.Ticket[:8])
		}
		if tk.Root != "" && tk.Root != r.Input.KeyString() || tk.Client != "" && tk.Client != r.Requester || r.Epoch > tk.Expires {
			return refuse(ReasonTicketMismatch, "ticket %x does not cover the job (its root, client or expiry at epoch %d)", r.Ticket[:8], tk.Expires)
		}
		if _, ok := n.RegistrationOf(tk.Publisher, r.Input); !ok {
			return refuse(ReasonTicketMismatch, "ticket %x: its publisher did not register the job's input %s", r.Ticket[:8], r.Input)
		}
		payer = tk.Publisher
		work = min(work, tk.Cap-min(tk.Spent, tk.Cap))
	}
	due := owed(work, fn.PricePerGiWk)
	b := n.Bond(r.Runner)
	if need := satMul(n.g.JobBondFactor(), b.Staked+due); due > 0 && b.free() < need {
		return refuse(ReasonInsufficientBond, "runner %s has a free bond of %d; with this job's pay of %d it needs %d (%d times its pay under challenge)",
			r.Runner, b.free(), due, need, n.g.JobBondFactor())
	}
	j := n.writableJobs()
	if j.paid[r.Epoch] == nil {
		j.paid[r.Epoch] = map[[32]byte]uint64{}
	}
	j.paid[r.Epoch][key] = r.Work
	due = n.take(payer, due, n.section(r.Epoch))
	if ticketed {
		tk.Spent += work
		n.ticketShard(r.Ticket[0]).m[r.Ticket] = tk
	}
	b.Staked += due
	j.bonds[r.Runner] = b
	j.pending[key] = PendingJob{Job: r.JobID(), Runner: r.Runner, Requester: r.Requester, Payer: payer, Fn: r.Fn, Input: r.Input,
		Output: r.Output, Work: r.Work, Held: due, Height: n.height + 1, Release: n.epoch + n.g.JobChallengeWindow()}
	return nil
}

// applyJobMismatch applies a proof of a wrong outcome.
func (n *State) applyJobMismatch(m *JobMismatch) error {
	if m == nil {
		return refuse(ReasonMalformed, "mismatch transaction without a proof")
	}
	key := jobKey(m.Job, m.Requester)
	pj, ok := n.PendingJob(m.Job, m.Requester)
	if !ok {
		return refuse(ReasonNotPending, "job %x of %s is not under challenge (never paid, paid out, or proven already)", m.Job[:8], m.Requester)
	}
	if len(m.Checks) < n.g.Quorum() {
		return refuse(ReasonBadProof, "%d checks, a proof needs %d committee members'", len(m.Checks), n.g.Quorum())
	}
	first := &m.Checks[0]
	for i := range m.Checks {
		c := &m.Checks[i]
		switch {
		case c.Network != n.params.Network || c.Job != m.Job:
			return refuse(ReasonBadProof, "check %d is of another job or network", i)
		case !n.g.IsMember(c.Checker) || n.Excluded(c.Checker):
			return refuse(ReasonBadProof, "check %d is by %s, not a signing committee member", i, c.Checker)
		case i > 0 && c.Checker <= m.Checks[i-1].Checker:
			return refuse(ReasonBadProof, "checks not in checker order, or one checker twice")
		case !c.Output.Equals(first.Output) || c.Work != first.Work:
			return refuse(ReasonBadProof, "checks %d and 0 disagree: a job's outcome is one", i)
		}
	}
	if first.Output.Equals(pj.Output) && first.Work == pj.Work {
		return refuse(ReasonNoMismatch, "the checks agree with the runner's claim")
	}
	if err := m.verifySigs(); err != nil {
		return err
	}
	j := n.writableJobs()
	delete(j.pending, key)
	payer := n.accounts[pj.Payer]
	payer.Escrow += pj.Held
	n.put(pj.Payer, payer)
	b := j.bonds[pj.Runner]
	b.Staked -= pj.Held
	forfeit := b.Amount
	b.Amount, b.Unbonding, b.At = 0, 0, 0
	putBond(j, pj.Runner, b)
	// The forfeited bond pays the checkers, evenly, the first in checker
	// order taking the remainder: it pays for the checking.
	share := forfeit / uint64(len(m.Checks))
	for i := range m.Checks {
		a := n.accounts[m.Checks[i].Checker]
		a.Balance += share
		if i == 0 {
			a.Balance += forfeit - share*uint64(len(m.Checks))
		}
		n.put(m.Checks[i].Checker, a)
	}
	c := j.cheats[pj.Runner]
	j.cheats[pj.Runner] = Cheat{Count: c.Count + 1, Epoch: n.epoch}
	j.dispute(pj.Job, pj.Output, pj.Work, n.epoch)
	return nil
}

func putBond(j *jobLedger, id peer.ID, b Bond) {
	if b == (Bond{}) {
		delete(j.bonds, id)
		return
	}
	j.bonds[id] = b
}

// settleJobs is RulesV5's part of a new block's state n after prev:
// decides which jobs of prev's last block are sampled (by its hash), pays
// runners the jobs whose challenge window ended and records their
// outputs as final (joboutputs.go), drops the final records past their
// age, and returns the bonds that finished unbonding.
func (n *State) settleJobs(prev *State) {
	j := n.jobs
	if n.g.Rules < RulesV5 || j == nil {
		return
	}
	due := false
	for _, p := range j.pending {
		due = due || p.Release <= n.epoch || p.Height == prev.height && !p.Sampled
	}
	for _, b := range j.bonds {
		due = due || b.Unbonding > 0 && b.At <= n.epoch
	}
	for _, f := range j.final {
		due = due || finalExpired(f.Epoch, n.epoch)
	}
	if !due {
		return
	}
	j = n.writableJobs()
	for k, p := range j.pending {
		switch {
		case p.Release <= n.epoch:
			delete(j.pending, k)
			j.finalize(p, n.epoch)
			b := j.bonds[p.Runner]
			b.Staked -= p.Held
			putBond(j, p.Runner, b)
			a := n.accounts[p.Runner]
			a.Balance += p.Held
			n.put(p.Runner, a)
		case p.Height == prev.height && !p.Sampled && jobSampled(k, prev.lastHash, n.g.JobCheckRate()):
			p.Sampled = true
			j.pending[k] = p
		}
	}
	for k, f := range j.final {
		if finalExpired(f.Epoch, n.epoch) {
			delete(j.final, k)
		}
	}
	for id, b := range j.bonds {
		if b.Unbonding == 0 || b.At > n.epoch {
			continue
		}
		amount := min(b.Unbonding, b.Amount)
		b.Amount -= amount
		b.Unbonding, b.At = 0, 0
		putBond(j, id, b)
		a := n.accounts[id]
		a.Balance += amount
		n.put(id, a)
	}
}

const jobsV5Domain = "ore/ledger/v5/jobs\x00"

// appendJobsV5Hash appends RulesV5's part of the jobs' hash: bonds,
// pending jobs (by key) and cheats, each sorted.
func (j *jobLedger) appendV5Hash(b []byte) []byte {
	b = append(b, jobsV5Domain...)
	b = binary.AppendUvarint(b, uint64(len(j.bonds)))
	for _, id := range slices.Sorted(maps.Keys(j.bonds)) {
		x := j.bonds[id]
		b = wire.AppendPeer(b, id)
		for _, v := range []uint64{x.Amount, x.Unbonding, x.At, x.Staked} {
			b = binary.AppendUvarint(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(j.pending)))
	for _, k := range slices.SortedFunc(maps.Keys(j.pending), func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) }) {
		p := j.pending[k]
		b = append(b, k[:]...)
		b = append(b, p.Job[:]...)
		b = wire.AppendPeer(b, p.Runner)
		b = wire.AppendPeer(b, p.Requester)
		b = wire.AppendPeer(b, p.Payer)
		b = wire.AppendCID(b, p.Fn)
		b = wire.AppendCID(b, p.Input)
		b = wire.AppendCID(b, p.Output)
		for _, v := range []uint64{p.Work, p.Held, p.Height, p.Release} {
			b = binary.AppendUvarint(b, v)
		}
		if p.Sampled {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(j.cheats)))
	for _, id := range slices.Sorted(maps.Keys(j.cheats)) {
		b = wire.AppendPeer(b, id)
		b = binary.AppendUvarint(b, j.cheats[id].Count)
		b = binary.AppendUvarint(b, j.cheats[id].Epoch)
	}
	return j.appendFinalHash(b)
}

// ReporterBond is the bond (KindBond, the same a compute runner posts) a
// box keeps to have its heat reports count under RulesV5: the demand a
// report claims cannot be checked, and a new key costs nothing, so what
// makes a crowd of fake reporters cost its owner is the bond locked by
// each of them (1 ore; see heat.Vouch and the committee's planner).
const ReporterBond = 1_000_000_000

// Vouched reports whether id's heat reports count under RulesV5: it keeps
// at least ReporterBond bonded (less what it is unbonding).
func (s *State) Vouched(id peer.ID) bool {
	b := s.Bond(id)
	return b.Amount >= b.Unbonding && b.Amount-b.Unbonding >= ReporterBond
}
