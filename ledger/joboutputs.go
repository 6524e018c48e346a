package ledger

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/internal/wire"
)

// The index of final job outputs (RulesV5).
//
// A job's pay reaches its runner when its challenge window ends without a
// proof of a mismatch (settleJobs). From then on the job's mapping, job ID
// -> (output CID, work units), stands on the ledger: the state keeps it in
// this index, so a box asked for the job consults the ledger instead of
// running it again or trusting a runner's claim (State.FinalJob).
//
// Rules:
//   - A job whose window ends is recorded at that block's epoch. The same
//     job paid out again (another requester's receipt) with the same
//     outcome refreshes the record's epoch; with another outcome, two
//     runners' claims disagree and neither was proven wrong, so the
//     record is Disputed: FinalJob answers nothing for it until it ages
//     out, and boxes run the job themselves.
//   - A proof of a mismatch against a runner whose wrong outcome is the
//     record's makes the record Disputed too.
//   - Bounded: a record is dropped FinalJobEpochs after its epoch, and the
//     index holds at most MaxFinalJobs records; past that, the oldest
//     quarter (by epoch, then job ID) is dropped at once, so that a flood
//     of cheap jobs (a free function, a runner paying itself) costs the
//     ledger one sort per MaxFinalJobs/4 new records, and pushes out old
//     records, never the state's bound.
const (
	// FinalJobEpochs is how long a job's final output stays in the index
	// after it was last paid out: a day of 10 s epochs.
	FinalJobEpochs = 8640
	// MaxFinalJobs bounds the index (about 150 bytes a record).
	MaxFinalJobs = 1 << 16
)

// FinalJob is a job's outcome as the ledger records it past its
// challenge window.
type FinalJob struct {
	Output   cid.Cid
	Work     uint64
	Epoch    uint64 // of the block that last paid the job out (or disputed it)
	Disputed bool   // two paid-out outcomes disagree, or a proof hit this one
}

// FinalJob returns the output and work of job (a pod.JobID) once a final
// block paid it out past its challenge window, undisputed.
func (s *State) FinalJob(job [32]byte) (FinalJob, bool) {
	if s.jobs == nil {
		return FinalJob{}, false
	}
	f, ok := s.jobs.final[job]
	if !ok || f.Disputed {
		return FinalJob{}, false
	}
	return f, true
}

// finalize records a pending job whose window ended at epoch (j is
// writable).
func (j *jobLedger) finalize(p PendingJob, epoch uint64) {
	f, ok := j.final[p.Job]
	switch {
	case !ok:
		f = FinalJob{Output: p.Output, Work: p.Work}
	case !f.Output.Equals(p.Output) || f.Work != p.Work:
		f.Disputed = true
	}
	f.Epoch = epoch
	j.final[p.Job] = f
	if len(j.final) > MaxFinalJobs {
		j.evictFinal()
	}
}

// dispute marks job's record disputed if its outcome is output, work: a
// proof showed that outcome wrong (j is writable).
func (j *jobLedger) dispute(job [32]byte, output cid.Cid, work uint64, epoch uint64) {
	if f, ok := j.final[job]; ok && f.Output.Equals(output) && f.Work == work {
		f.Disputed, f.Epoch = true, epoch
		j.final[job] = f
	}
}

// evictFinal drops the oldest quarter of the records.
func (j *jobLedger) evictFinal() {
	type rec struct {
		job   [32]byte
		epoch uint64
	}
	all := make([]rec, 0, len(j.final))
	for k, f := range j.final {
		all = append(all, rec{k, f.Epoch})
	}
	slices.SortFunc(all, func(a, b rec) int {
		if c := cmp.Compare(a.epoch, b.epoch); c != 0 {
			return c
		}
		return bytes.Compare(a.job[:], b.job[:])
	})
	for _, r := range all[:len(all)/4] {
		delete(j.final, r.job)
	}
}

// finalExpired reports whether a record of epoch e is dropped at epoch now.
func finalExpired(e, now uint64) bool { return e+FinalJobEpochs < now }

const finalJobsDomain = "ore/ledger/v5/final-jobs\x00"

// appendFinalHash appends the index to the state hash, by job ID; nothing
// while it is empty.
func (j *jobLedger) appendFinalHash(b []byte) []byte {
	if len(j.final) == 0 {
		return b
	}
	b = append(b, finalJobsDomain...)
	b = binary.AppendUvarint(b, uint64(len(j.final)))
	for _, k := range slices.SortedFunc(maps.Keys(j.final), func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) }) {
		f := j.final[k]
		b = append(b, k[:]...)
		b = wire.AppendCID(b, f.Output)
		b = binary.AppendUvarint(b, f.Work)
		b = binary.AppendUvarint(b, f.Epoch)
		if f.Disputed {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}
