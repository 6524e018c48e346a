package ledger

import (
	"encoding/binary"
	"testing"

	"github.com/orecdn/ore/pod"
)

// A job paid out past its window is in the index of final outputs; a
// second paid-out outcome that disagrees disputes it; records age out.
func TestFinalJobOutputs(t *testing.T) {
	f := jobV5FixtureWith(t, func(g *Genesis) { g.JobChallengeEpochs = 5 })
	req, run, other, free := f.pubs[1], f.srvs[0], f.srvs[1], f.clis[0]
	r := jobReceipt(t, f, run, req, 5, GiB, nil)
	f.advance(t, 5, NewJobTx(r))
	f.advance(t, 9)
	if _, ok := f.s.FinalJob(r.JobID()); ok {
		t.Fatal("a job under challenge is final")
	}
	f.advance(t, 10)
	got, ok := f.s.FinalJob(r.JobID())
	if !ok || !got.Output.Equals(r.Output) || got.Work != GiB || got.Epoch != 10 {
		t.Fatalf("final %+v (%v), want %s, %d units, epoch 10", got, ok, r.Output, uint64(GiB))
	}
	// Another requester's receipt of the same job, with the same outcome
	// (its escrow is empty: nothing is held), refreshes the record.
	f.advance(t, 11, NewJobTx(jobReceipt(t, f, run, free, 11, GiB, nil)), f.signed(t, f.s, NewBond(other.ID, 0, 100_000)))
	f.advance(t, 16)
	if got, ok := f.s.FinalJob(r.JobID()); !ok || got.Epoch != 16 {
		t.Fatalf("refreshed: %+v (%v), want epoch 16", got, ok)
	}
	// Another runner's claim of another outcome, paid out: the record is
	// disputed, the index answers nothing.
	f.advance(t, 17, NewJobTx(jobReceipt(t, f, other, f.srvs[2], 17, GiB, func(j *pod.JobReceipt) { j.Output = testRoot(t, "other") })))
	f.advance(t, 22)
	if _, ok := f.s.FinalJob(r.JobID()); ok {
		t.Fatal("a disputed job is final")
	}
	if d := f.s.jobs.final[r.JobID()]; !d.Disputed || d.Epoch != 22 {
		t.Fatalf("record %+v, want disputed at epoch 22", d)
	}
	// It ages out FinalJobEpochs after its epoch.
	f.advance(t, 22+FinalJobEpochs)
	if _, ok := f.s.jobs.final[r.JobID()]; !ok {
		t.Fatal("dropped before its age")
	}
	f.advance(t, 22+FinalJobEpochs+1)
	if n := len(f.s.jobs.final); n != 0 {
		t.Fatalf("%d records past their age", n)
	}
}

// A proof against a runner whose wrong outcome the index holds (paid out
// for one requester, proven wrong for another) disputes the record.
func TestFinalJobDisputedByProof(t *testing.T) {
	f := jobV5FixtureWith(t, func(g *Genesis) { g.JobChallengeEpochs = 5 })
	req, run, free := f.pubs[1], f.srvs[0], f.clis[0]
	r := jobReceipt(t, f, run, req, 5, GiB, nil)
	f.advance(t, 5, NewJobTx(r))
	f.advance(t, 10, NewJobTx(jobReceipt(t, f, run, free, 10, GiB, nil)))
	if _, ok := f.s.FinalJob(r.JobID()); !ok {
		t.Fatal("not final")
	}
	real := testRoot(t, "real")
	f.advance(t, 11, NewJobMismatchTx(free.ID, r.JobID(), []pod.JobCheck{
		jobCheck(t, f.com[0], r.JobID(), real, GiB), jobCheck(t, f.com[1], r.JobID(), real, GiB)}))
	if _, ok := f.s.Cheated(run.ID); !ok {
		t.Fatal("the proof was not taken")
	}
	if _, ok := f.s.FinalJob(r.JobID()); ok {
		t.Fatal("an outcome proven wrong is still final")
	}
}

// Past MaxFinalJobs records the oldest quarter goes, by epoch then job.
func TestFinalJobsBounded(t *testing.T) {
	j := &jobLedger{final: map[[32]byte]FinalJob{}}
	out := testRoot(t, "out")
	for i := range MaxFinalJobs + 1 {
		var job [32]byte
		binary.BigEndian.PutUint64(job[:], uint64(i))
		j.finalize(PendingJob{Job: job, Output: out, Work: 1}, uint64(i/16))
	}
	if n, want := len(j.final), MaxFinalJobs+1-(MaxFinalJobs+1)/4; n != want {
		t.Fatalf("%d records, want %d", n, want)
	}
	for k, f := range j.final {
		if i := binary.BigEndian.Uint64(k[:]); i < (MaxFinalJobs+1)/4 || f.Epoch != i/16 {
			t.Fatalf("record %d of epoch %d kept, the oldest quarter should be gone", i, f.Epoch)
		}
	}
}
