package ledger

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// Jobs (RulesV4): functions over content (package compute) paid per unit
// of work.
//
//   - KindFunction: a publisher registers a function (the CID of its
//     descriptor) with a price per GiWork (2^30 work units: work is the
//     WebAssembly instructions a job executed, so a price reads like a
//     price per GiB) and the most work one job may be paid for (the
//     function's work limit, at most pod.MaxJobWork). Only its
//     registrant may change it.
//   - KindJob: a pod.JobReceipt signed by its runner and countersigned by
//     its requester pays the runner owed(work, price) from the
//     requester's escrow (at most what is there, within the requester's
//     spending cap, by the receipt's epoch): the requester asked for the
//     job and signed that it received the output. A receipt is paid once
//     per (job, requester): another receipt of the same job for the same
//     requester, from any runner, pays nothing, since the job's output is
//     content the requester already holds. Its epoch must be at most
//     MaxSkew epochs before the block's and not after it, as a delivery
//     receipt's; the (job, requester) pairs paid are kept as long.
//
// RulesV5 adds runner bonds, held pay, sampled checks, proofs of a
// mismatch and jobs under tickets (jobcheck.go).

// FunctionReg is a registered function.
type FunctionReg struct {
	Fn           cid.Cid
	Publisher    peer.ID
	PricePerGiWk uint64 // base units per 2^30 work units
	MaxWork      uint64 // the most work one job is paid for
}

// jobLedger is the jobs' part of a State. It is shared between states
// until a block writes to it (owner).
type jobLedger struct {
	owner *State
	fns   map[string]FunctionReg         // by CID bytes
	paid  map[uint64]map[[32]byte]uint64 // receipt epoch -> jobPaidKey -> work paid
	// RulesV5 (jobcheck.go): runner bonds, paid jobs under challenge by
	// jobKey, and the runners proven to have cheated.
	bonds   map[peer.ID]Bond
	pending map[[32]byte]PendingJob
	cheats  map[peer.ID]Cheat
	final   map[[32]byte]FinalJob // by pod.JobID (joboutputs.go)
}

// Function returns a registered function.
func (s *State) Function(fn cid.Cid) (FunctionReg, bool) {
	if s.jobs == nil {
		return FunctionReg{}, false
	}
	r, ok := s.jobs.fns[string(fn.Bytes())]
	return r, ok
}

// NewRegisterFunction registers fn for publisher from at price per GiWork,
// paying jobs of at most maxWork units.
func NewRegisterFunction(from peer.ID, nonce uint64, fn cid.Cid, price, maxWork uint64) Tx {
	return Tx{Kind: KindFunction, From: from, Nonce: nonce, Root: fn, Price: price, Amount: maxWork}
}

// NewJobTx wraps a job receipt signed by its runner and requester.
func NewJobTx(r *pod.JobReceipt) Tx { return Tx{Kind: KindJob, From: r.Requester, Job: r} }

// jobPaidKey names a (job, requester) pair.
func jobPaidKey(r *pod.JobReceipt) [32]byte { return jobKey(r.JobID(), r.Requester) }

// writableJobs returns n's jobs, copied first if n shares them.
func (n *State) writableJobs() *jobLedger {
	j := n.jobs
	if j == nil {
		j = &jobLedger{fns: map[string]FunctionReg{}, paid: map[uint64]map[[32]byte]uint64{},
			bonds: map[peer.ID]Bond{}, pending: map[[32]byte]PendingJob{}, cheats: map[peer.ID]Cheat{}, final: map[[32]byte]FinalJob{}}
	} else if j.owner != n {
		c := &jobLedger{fns: maps.Clone(j.fns), paid: make(map[uint64]map[[32]byte]uint64, len(j.paid)),
			bonds: cloneOrNew(j.bonds), pending: cloneOrNew(j.pending), cheats: cloneOrNew(j.cheats), final: cloneOrNew(j.final)}
		for e, m := range j.paid {
			c.paid[e] = maps.Clone(m)
		}
		j = c
	}
	j.owner = n
	n.jobs = j
	return j
}

// advanceJobs drops the paid pairs of epochs whose receipts are refused
// from epoch on.
func (j *jobLedger) advance(epoch, skew uint64) *jobLedger {
	if j == nil {
		return nil
	}
	drop := false
	for e := range j.paid {
		drop = drop || tooOld(e, epoch, skew)
	}
	if !drop {
		return j
	}
	c := &jobLedger{owner: nil, fns: j.fns, paid: make(map[uint64]map[[32]byte]uint64, len(j.paid)),
		bonds: j.bonds, pending: j.pending, cheats: j.cheats, final: j.final}
	for e, m := range j.paid {
		if !tooOld(e, epoch, skew) {
			c.paid[e] = m
		}
	}
	return c
}

// applyRegisterFunction applies a KindFunction's rules (nonce and
// signature already checked).
func (n *State) applyRegisterFunction(t *Tx) error {
	if !t.Root.Defined() || len(t.Root.Bytes()) > maxCIDLen {
		return refuse(ReasonMalformed, "function registration without a valid CID")
	}
	if t.Amount == 0 || t.Amount > pod.MaxJobWork {
		return refuse(ReasonWorkOutOfRange, "a job's work limit of %d is outside [1, %d]", t.Amount, uint64(pod.MaxJobWork))
	}
	key := string(t.Root.Bytes())
	if r, ok := n.Function(t.Root); ok && r.Publisher != t.From {
		return refuse(ReasonNotOwner, "function %s is registered by %s", t.Root, r.Publisher)
	}
	n.writableJobs().fns[key] = FunctionReg{Fn: t.Root, Publisher: t.From, PricePerGiWk: t.Price, MaxWork: t.Amount}
	return nil
}

// applyJob pays a job receipt's runner.
func (n *State) applyJob(r *pod.JobReceipt) error {
	if r == nil {
		return refuse(ReasonMalformed, "job transaction without a receipt")
	}
	if err := n.params.CheckJob(r); err != nil {
		return refuse(ReasonMalformed, "%w", err)
	}
	if r.Epoch > n.epoch || tooOld(r.Epoch, n.epoch, n.params.MaxSkew) {
		return refuse(ReasonEpochOutOfRange, "job receipt of epoch %d in a block of epoch %d (at most %d before)", r.Epoch, n.epoch, n.params.MaxSkew)
	}
	if r.Ticket != ([32]byte{}) && n.g.Rules < RulesV5 {
		return refuse(ReasonNotInRules, "jobs paid under a ticket need rules version %d: the requester pays", RulesV5)
	}
	if err := r.Verify(); err != nil {
		return refuse(ReasonBadSignature, "%w", err)
	}
	fn, ok := n.Function(r.Fn)
	if !ok {
		return refuse(ReasonNotRegistered, "function %s is not registered", r.Fn)
	}
	if r.Work == 0 || r.Work > fn.MaxWork {
		return refuse(ReasonWorkOutOfRange, "a job of %d work units, function %s pays at most %d", r.Work, r.Fn, fn.MaxWork)
	}
	key := jobPaidKey(r)
	if n.jobs != nil {
		for _, m := range n.jobs.paid {
			if _, ok := m[key]; ok {
				return nil // paid already, by this or another runner's receipt
			}
		}
	}
	if n.g.Rules >= RulesV5 {
		return n.payJobV5(r, fn, key)
	}
	j := n.writableJobs()
	if j.paid[r.Epoch] == nil {
		j.paid[r.Epoch] = map[[32]byte]uint64{}
	}
	j.paid[r.Epoch][key] = r.Work
	n.pay(r.Requester, r.Runner, owed(r.Work, fn.PricePerGiWk), n.section(r.Epoch))
	return nil
}

// appendJobsHash appends the jobs' part of the state hash: the functions
// by CID bytes, then the paid pairs by epoch and key. Absent while no
// function was ever registered, so chains without jobs keep their hashes.
func (s *State) appendJobsHash(b []byte) []byte {
	j := s.jobs
	if j == nil || len(j.fns) == 0 && len(j.paid) == 0 && len(j.bonds) == 0 && len(j.pending) == 0 && len(j.cheats) == 0 && len(j.final) == 0 {
		return b
	}
	b = append(b, "ore/ledger/v1/jobs\x00"...)
	b = binary.AppendUvarint(b, uint64(len(j.fns)))
	for _, k := range slices.Sorted(maps.Keys(j.fns)) {
		f := j.fns[k]
		b = wire.AppendBytes(b, []byte(k))
		b = wire.AppendPeer(b, f.Publisher)
		b = binary.AppendUvarint(b, f.PricePerGiWk)
		b = binary.AppendUvarint(b, f.MaxWork)
	}
	b = binary.AppendUvarint(b, uint64(len(j.paid)))
	for _, e := range slices.Sorted(maps.Keys(j.paid)) {
		m := j.paid[e]
		b = binary.AppendUvarint(b, e)
		b = binary.AppendUvarint(b, uint64(len(m)))
		keys := slices.SortedFunc(maps.Keys(m), func(x, y [32]byte) int { return slices.Compare(x[:], y[:]) })
		for _, k := range keys {
			b = append(b, k[:]...)
			b = binary.AppendUvarint(b, m[k])
		}
	}
	if s.g.Rules >= RulesV5 {
		b = j.appendV5Hash(b)
	}
	return b
}

// cloneOrNew copies m, or makes a map if m is nil.
func cloneOrNew[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return maps.Clone(m)
}
