package ledger

import (
	"bytes"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/pod"
)

// jobV5Fixture: a rules-5 network where pubs[0] registered a function at
// 1000 per GiWork paying at most 8 GiWork a job, pubs[1] (the requester)
// deposited 10,000, and the runners srvs[0] and srvs[1] hold 1,000,000
// each, of which srvs[0] bonded 100,000: enough for 5,000 at stake.
func jobV5Fixture(t *testing.T) *fixture { return jobV5FixtureWith(t, nil) }

// jobV5FixtureWith is jobV5Fixture on a genesis edit changed.
func jobV5FixtureWith(t *testing.T, edit func(*Genesis)) *fixture {
	t.Helper()
	f := newFixture(t, 2, 3, 1, 10_000_000)
	f.g.Rules = RulesV5
	if edit != nil {
		edit(f.g)
		if err := f.g.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	p := f.pubs[0].ID
	f.advance(t, 3, f.signed(t, f.s, NewRegisterFunction(p, 1, testRoot(t, "fn"), 1000, 8*GiB)),
		f.signed(t, f.s, NewTransfer(p, f.srvs[0].ID, 2, 1_000_000)),
		f.signed(t, f.s, NewTransfer(p, f.srvs[1].ID, 3, 1_000_000)),
		f.signed(t, f.s, NewDeposit(f.pubs[1].ID, 0, 10_000)))
	f.advance(t, 4, f.signed(t, f.s, NewBond(f.srvs[0].ID, 0, 100_000)))
	return f
}

// jobCheck is member m's signed check of job: output out, work units.
func jobCheck(t *testing.T, m party, job [32]byte, out cid.Cid, work uint64) pod.JobCheck {
	t.Helper()
	c := pod.JobCheck{Network: testNetwork, Job: job, Output: out, Work: work, Checker: m.ID}
	if err := c.Sign(m.Key); err != nil {
		t.Fatal(err)
	}
	return c
}

// A job's pay leaves the escrow when its receipt is taken and reaches the
// runner when its challenge window ends; a replay pays nothing more.
func TestJobPayHeldThroughTheWindow(t *testing.T) {
	f := jobV5Fixture(t)
	req, run := f.pubs[1], f.srvs[0]
	r := jobReceipt(t, f, run, req, 5, 5*GiB, nil)
	f.advance(t, 5, NewJobTx(r))
	p, ok := f.s.PendingJob(r.JobID(), req.ID)
	if !ok || p.Held != 5000 || p.Release != 5+DefaultJobChallengeEpochs || !p.Output.Equals(r.Output) {
		t.Fatalf("pending job %+v (%v), want 5000 held until epoch %d", p, ok, 5+DefaultJobChallengeEpochs)
	}
	if f.s.Balance(run.ID) != 900_000 || f.s.Escrow(req.ID) != 5000 || f.s.Bond(run.ID).Staked != 5000 {
		t.Fatalf("runner %d, escrow %d, staked %d: want 900,000, 5000, 5000", f.s.Balance(run.ID), f.s.Escrow(req.ID), f.s.Bond(run.ID).Staked)
	}
	// The receipt again, and the job by another runner for the same
	// requester: nothing more.
	f.advance(t, 6, NewJobTx(r), NewJobTx(jobReceipt(t, f, f.srvs[1], req, 6, 5*GiB, nil)))
	if f.s.Escrow(req.ID) != 5000 || f.s.Balance(f.srvs[1].ID) != 1_000_000 {
		t.Fatalf("a replay moved money: escrow %d, other runner %d", f.s.Escrow(req.ID), f.s.Balance(f.srvs[1].ID))
	}
	f.advance(t, 5+DefaultJobChallengeEpochs-1)
	if _, ok := f.s.PendingJob(r.JobID(), req.ID); !ok || f.s.Balance(run.ID) != 900_000 {
		t.Fatal("paid before the challenge window ended")
	}
	f.advance(t, 5+DefaultJobChallengeEpochs)
	if _, ok := f.s.PendingJob(r.JobID(), req.ID); ok || f.s.Balance(run.ID) != 905_000 || f.s.Bond(run.ID) != (Bond{Amount: 100_000}) {
		t.Fatalf("after the window: runner %d, bond %+v; want 905,000 and nothing staked", f.s.Balance(run.ID), f.s.Bond(run.ID))
	}
}

// A runner that claims a wrong outcome is proven wrong by a quorum of
// members' checks: the job is unpaid, the bond goes to the checkers, and
// the runner is recorded.
func TestJobMismatchForfeitsBond(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		work uint64
	}{{"wrong output", "real", 5 * GiB}, {"inflated work", "out", 2 * GiB}} {
		t.Run(tc.name, func(t *testing.T) {
			f := jobV5Fixture(t)
			req, run := f.pubs[1], f.srvs[0]
			r := jobReceipt(t, f, run, req, 5, 5*GiB, nil)
			f.advance(t, 5, NewJobTx(r))
			out := testRoot(t, tc.out)
			proof := NewJobMismatchTx(req.ID, r.JobID(), []pod.JobCheck{
				jobCheck(t, f.com[2], r.JobID(), out, tc.work), jobCheck(t, f.com[0], r.JobID(), out, tc.work)})
			before := f.s.Balance(f.com[0].ID) + f.s.Balance(f.com[2].ID)
			f.advance(t, 5+DefaultJobChallengeEpochs-1, proof)
			if _, ok := f.s.PendingJob(r.JobID(), req.ID); ok {
				t.Fatal("a proven job is still pending")
			}
			if f.s.Escrow(req.ID) != 10_000 || f.s.Bond(run.ID) != (Bond{}) {
				t.Fatalf("escrow %d, bond %+v: want the pay back (10,000) and no bond", f.s.Escrow(req.ID), f.s.Bond(run.ID))
			}
			if got := f.s.Balance(f.com[0].ID) + f.s.Balance(f.com[2].ID) - before; got != 100_000 {
				t.Fatalf("the checkers got %d, want the bond of 100,000", got)
			}
			if c, ok := f.s.Cheated(run.ID); !ok || c.Count != 1 || c.Epoch != 5+DefaultJobChallengeEpochs-1 {
				t.Fatalf("cheat record %+v %v", c, ok)
			}
			// The window's end pays the runner nothing; a second proof finds
			// no job.
			f.wantReason(t, f.s, 5+DefaultJobChallengeEpochs, proof, ReasonNotPending)
			f.advance(t, 5+DefaultJobChallengeEpochs)
			if f.s.Balance(run.ID) != 900_000 {
				t.Fatalf("a proven cheat was paid: %d", f.s.Balance(run.ID))
			}
			// A runner without a bond left is not paid again.
			f.wantReason(t, f.s, 5+DefaultJobChallengeEpochs, NewJobTx(jobReceipt(t, f, run, f.pubs[0], 5+DefaultJobChallengeEpochs, GiB, nil)), ReasonInsufficientBond)
		})
	}
}

// Each crafted proof that would take an honest runner's bond is refused.
func TestJobMismatchRefusals(t *testing.T) {
	f := jobV5Fixture(t)
	req, run := f.pubs[1], f.srvs[0]
	r := jobReceipt(t, f, run, req, 5, 5*GiB, nil)
	f.advance(t, 5, NewJobTx(r))
	id, wrong := r.JobID(), testRoot(t, "wrong")
	c := func(m party, out cid.Cid, work uint64) pod.JobCheck { return jobCheck(t, m, id, out, work) }
	for _, tc := range []struct {
		name string
		tx   func() Tx
		want Reason
	}{
		{"checks that agree with the runner", func() Tx {
			return NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], r.Output, r.Work), c(f.com[1], r.Output, r.Work)})
		}, ReasonNoMismatch},
		{"one member's word", func() Tx { return NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work)}) }, ReasonBadProof},
		{"a box's check for a member's", func() Tx {
			return NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work), c(f.srvs[1], wrong, r.Work)})
		}, ReasonBadProof},
		{"checks that disagree", func() Tx {
			return NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work), c(f.com[1], testRoot(t, "other"), r.Work)})
		}, ReasonBadProof},
		{"one member twice", func() Tx {
			tx := NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work)})
			tx.Mismatch.Checks = append(tx.Mismatch.Checks, c(f.com[0], wrong, r.Work))
			return tx
		}, ReasonBadProof},
		{"a check of another job", func() Tx {
			other := jobCheck(t, f.com[1], pod.JobID(r.Fn, r.Input, []string{"other"}), wrong, r.Work)
			return NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work), other})
		}, ReasonBadProof},
		{"a check changed after signing", func() Tx {
			tx := NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], r.Output, r.Work), c(f.com[1], r.Output, r.Work)})
			for i := range tx.Mismatch.Checks {
				tx.Mismatch.Checks[i].Output = wrong
			}
			return tx
		}, ReasonBadSignature},
		{"a job never paid", func() Tx {
			return NewJobMismatchTx(f.pubs[0].ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work), c(f.com[1], wrong, r.Work)})
		}, ReasonNotPending},
	} {
		t.Run(tc.name, func(t *testing.T) { f.wantReason(t, f.s, 6, tc.tx(), tc.want) })
	}
	// The window past, a true proof comes too late: the job is paid.
	late := NewJobMismatchTx(req.ID, id, []pod.JobCheck{c(f.com[0], wrong, r.Work), c(f.com[1], wrong, r.Work)})
	f.advance(t, 5+DefaultJobChallengeEpochs)
	f.wantReason(t, f.s, 5+DefaultJobChallengeEpochs, late, ReasonNotPending)
	if f.s.Balance(run.ID) != 905_000 {
		t.Fatalf("the runner has %d, want 905,000", f.s.Balance(run.ID))
	}
}

// A runner is paid only while its free bond covers BondFactor times what
// it would have at stake; unbonding frees nothing before every job paid
// while it stood is past its window.
func TestJobBondRules(t *testing.T) {
	f := jobV5Fixture(t)
	req, run, bare := f.pubs[1], f.srvs[0], f.srvs[1]
	f.wantReason(t, f.s, 5, NewJobTx(jobReceipt(t, f, bare, req, 5, GiB, nil)), ReasonInsufficientBond)
	// 5,000 at stake fills srvs[0]'s bond; one unit more does not fit.
	f.advance(t, 5, NewJobTx(jobReceipt(t, f, run, req, 5, 5*GiB, nil)))
	more := NewJobTx(jobReceipt(t, f, run, req, 5, GiB, func(j *pod.JobReceipt) { j.Args = []string{"gzip", "1"} }))
	f.wantReason(t, f.s, 6, more, ReasonInsufficientBond)
	// A bond too small for one job (another job: the first is paid), and
	// bonds beyond the balance.
	other := func(j *pod.JobReceipt) { j.Args = []string{"gzip", "2"} }
	f.advance(t, 6, f.signed(t, f.s, NewBond(bare.ID, 0, 19_999)))
	f.wantReason(t, f.s, 7, NewJobTx(jobReceipt(t, f, bare, req, 7, GiB, other)), ReasonInsufficientBond)
	f.wantReason(t, f.s, 7, f.signed(t, f.s, NewBond(bare.ID, 0, 1_000_000)), ReasonInsufficientFunds)
	f.wantReason(t, f.s, 7, f.signed(t, f.s, NewUnbond(bare.ID, 0, 20_000)), ReasonInsufficientBond)
	f.wantReason(t, f.s, 7, f.signed(t, f.s, NewUnbond(bare.ID, 0, 0)), ReasonZeroAmount)
	// Unbonding: the amount stops covering new jobs at once, and returns
	// DefaultJobChallengeEpochs+1 epochs later, not before.
	f.advance(t, 7, f.signed(t, f.s, NewBond(bare.ID, 0, 1)), f.signed(t, f.s, NewUnbond(bare.ID, f.s.Nonce(bare.ID)+2, 10_000)))
	f.wantReason(t, f.s, 8, NewJobTx(jobReceipt(t, f, bare, req, 8, GiB, other)), ReasonInsufficientBond)
	at := uint64(7 + DefaultJobChallengeEpochs + 1)
	f.advance(t, at-1)
	if f.s.Bond(bare.ID).Amount != 20_000 || f.s.Balance(bare.ID) != 980_000 {
		t.Fatalf("unbonded early: bond %+v, balance %d", f.s.Bond(bare.ID), f.s.Balance(bare.ID))
	}
	f.advance(t, at)
	if f.s.Bond(bare.ID) != (Bond{Amount: 10_000}) || f.s.Balance(bare.ID) != 990_000 {
		t.Fatalf("after unbonding: bond %+v, balance %d; want 10,000 and 990,000", f.s.Bond(bare.ID), f.s.Balance(bare.ID))
	}
	// Older rules know no bonds.
	g := newFixture(t, 1, 1, 1, 1000)
	g.g.Rules = RulesV4
	var err error
	if g.s, err = NewState(g.g); err != nil {
		t.Fatal(err)
	}
	g.wantReason(t, g.s, 1, g.signed(t, g.s, NewBond(g.pubs[0].ID, 0, 1)), ReasonNotInRules)
	g.wantReason(t, g.s, 1, NewJobMismatchTx(g.pubs[0].ID, [32]byte{1}, nil), ReasonNotInRules)
}

// A runner that asks its bond back the moment it is paid for a wrong
// result still loses it: the bond stands until the job's window ends.
func TestUnbondDoesNotOutrunTheChallenge(t *testing.T) {
	f := jobV5Fixture(t)
	req, run := f.pubs[1], f.srvs[0]
	r := jobReceipt(t, f, run, req, 5, 5*GiB, nil)
	f.advance(t, 5, NewJobTx(r), f.signed(t, f.s, NewUnbond(run.ID, 0, 100_000)))
	if b := f.s.Bond(run.ID); b.At <= 5+DefaultJobChallengeEpochs {
		t.Fatalf("the bond returns at epoch %d, inside the job's window (to %d)", b.At, 5+DefaultJobChallengeEpochs)
	}
	f.advance(t, 5+DefaultJobChallengeEpochs-1, NewJobMismatchTx(req.ID, r.JobID(), []pod.JobCheck{
		jobCheck(t, f.com[0], r.JobID(), testRoot(t, "real"), r.Work), jobCheck(t, f.com[1], r.JobID(), testRoot(t, "real"), r.Work)}))
	f.advance(t, 5+DefaultJobChallengeEpochs+2)
	if f.s.Balance(run.ID) != 900_000 || f.s.Bond(run.ID) != (Bond{}) {
		t.Fatalf("the cheat kept %d and bond %+v; want 900,000 and none", f.s.Balance(run.ID), f.s.Bond(run.ID))
	}
}

// A job under a ticket pays from the publisher's escrow, for at most the
// ticket's cap of work, only if the ticket covers it; a job under no
// ticket pays from the requester's escrow only.
func TestJobTickets(t *testing.T) {
	f := jobV5Fixture(t)
	pub, req, run := f.pubs[0], f.pubs[1], f.srvs[0]
	in, block := sizedRoot(t, "photo", 1<<20, false)
	newTicket := func(root cid.Cid, client party, capWork, expires, nonce uint64) *pod.Ticket {
		tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: pub.ID, Root: root, Client: client.ID,
			Cap: capWork, Expires: expires, Nonce: nonce}
		if err := tk.Sign(pub.Key); err != nil {
			t.Fatal(err)
		}
		return tk
	}
	tk := newTicket(in, req, 3*GiB, 100, 1)
	unregistered := newTicket(testRoot(t, "not-registered"), req, GiB, 100, 2)
	other := newTicket(in, f.clis[0], GiB, 100, 3)
	short := newTicket(in, req, GiB, 6, 4)
	f.advance(t, 5, f.signed(t, f.s, NewDeposit(pub.ID, 0, 50_000)), f.signed(t, f.s, NewRegisterRoot(pub.ID, 5, in, block, 0, 0)),
		NewTicketTx(tk), NewTicketTx(unregistered), NewTicketTx(other), NewTicketTx(short))
	under := func(tk *pod.Ticket, input cid.Cid, epoch, work uint64, arg string) Tx {
		return NewJobTx(jobReceipt(t, f, run, req, epoch, work, func(j *pod.JobReceipt) {
			j.Ticket, j.Input, j.Args = tk.ID(), input, []string{arg}
		}))
	}
	for _, tc := range []struct {
		name string
		tx   Tx
		want Reason
	}{
		{"a ticket the ledger never learned", under(newTicket(in, req, GiB, 100, 9), in, 6, GiB, "a"), ReasonUnknownTicket},
		{"another input", under(tk, testRoot(t, "in"), 6, GiB, "b"), ReasonTicketMismatch},
		{"another client's ticket", under(other, in, 6, GiB, "c"), ReasonTicketMismatch},
		{"an input its publisher did not register", func() Tx {
			return under(unregistered, testRoot(t, "not-registered"), 6, GiB, "d")
		}(), ReasonTicketMismatch},
		{"after the ticket expired", under(short, in, 7, GiB, "e"), ReasonTicketMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) { f.wantReason(t, f.s, 7, tc.tx, tc.want) })
	}
	// 5 GiWork under a ticket of 3: the publisher pays 3, the requester nothing.
	j1 := under(tk, in, 7, 5*GiB, "f")
	f.advance(t, 7, j1)
	p, _ := f.s.PendingJob(j1.Job.JobID(), req.ID)
	if p.Held != 3000 || p.Payer != pub.ID || f.s.Escrow(pub.ID) != 47_000 || f.s.Escrow(req.ID) != 10_000 {
		t.Fatalf("held %d from %s; escrows %d and %d: want 3000 from the publisher", p.Held, p.Payer, f.s.Escrow(pub.ID), f.s.Escrow(req.ID))
	}
	if _, _, spent, _, _ := f.s.Ticket(tk.ID()); spent != 3*GiB {
		t.Fatalf("ticket spent %d, want its cap", spent)
	}
	// The cap spent, the next job under it pays nothing.
	j2 := under(tk, in, 8, GiB, "g")
	f.advance(t, 8, j2)
	if p, _ := f.s.PendingJob(j2.Job.JobID(), req.ID); p.Held != 0 || f.s.Escrow(pub.ID) != 47_000 {
		t.Fatalf("past the cap: held %d, escrow %d", p.Held, f.s.Escrow(pub.ID))
	}
	// Under no ticket, a requester without escrow pays nothing.
	j3 := NewJobTx(jobReceipt(t, f, run, f.clis[0], 8, GiB, nil))
	f.advance(t, 9, j3)
	if p, ok := f.s.PendingJob(j3.Job.JobID(), f.clis[0].ID); !ok || p.Held != 0 {
		t.Fatalf("an empty escrow paid %d", p.Held)
	}
}

// About DefaultJobCheckPermille of paid jobs are sampled, chosen by the hash of
// the block that paid them: the sampled ones the state lists at once are
// the ones the next block marks.
func TestJobSampling(t *testing.T) {
	f := jobV5Fixture(t)
	req := f.pubs[1]
	f.advance(t, 5, f.signed(t, f.s, NewBond(f.srvs[1].ID, 0, 1_000_000)))
	var txs []Tx
	const n = 400
	for i := range n {
		txs = append(txs, NewJobTx(jobReceipt(t, f, f.srvs[1], req, 6, 1, func(j *pod.JobReceipt) { j.Args = []string{"x", string(rune('a' + i%26)), string(rune('a' + i/26))} })))
	}
	f.advance(t, 6, txs...)
	first := f.s.JobsToCheck()
	f.advance(t, 7)
	second := f.s.JobsToCheck()
	if len(first) != len(second) {
		t.Fatalf("%d sampled at once, %d marked by the next block", len(first), len(second))
	}
	for i := range first {
		if first[i].Job != second[i].Job || !second[i].Sampled {
			t.Fatalf("sample %d differs: %x and %x", i, first[i].Job[:8], second[i].Job[:8])
		}
	}
	// 5 % of 400 is 20; a binomial that far from its mean has odds below 1e-6.
	if len(first) < 4 || len(first) > 45 {
		t.Fatalf("%d of %d jobs sampled, want about %d", len(first), n, n*DefaultJobCheckPermille/1000)
	}
}

func TestJobV5TxEncoding(t *testing.T) {
	f := jobV5Fixture(t)
	r := jobReceipt(t, f, f.srvs[0], f.pubs[1], 5, 5, nil)
	m := NewJobMismatchTx(f.pubs[1].ID, r.JobID(), []pod.JobCheck{jobCheck(t, f.com[0], r.JobID(), r.Output, 4),
		jobCheck(t, f.com[1], r.JobID(), r.Output, 4), jobCheck(t, f.com[2], r.JobID(), r.Output, 4)})
	for _, tx := range []Tx{f.signed(t, f.s, NewBond(f.srvs[1].ID, 0, 5)), f.signed(t, f.s, NewUnbond(f.srvs[0].ID, 0, 5)), m} {
		enc := tx.Marshal()
		got, err := UnmarshalTx(enc)
		if err != nil {
			t.Fatal(tx.Kind, err)
		}
		if !bytes.Equal(got.Marshal(), enc) || got.ID() != tx.ID() {
			t.Fatalf("%s: round trip changed it", tx.Kind)
		}
		if err := got.Authenticate(testNetwork); err != nil {
			t.Fatal(tx.Kind, err)
		}
	}
	// Checks out of order do not decode: one encoding per proof.
	m.Mismatch.Checks[0], m.Mismatch.Checks[1] = m.Mismatch.Checks[1], m.Mismatch.Checks[0]
	if _, err := UnmarshalTx(m.Marshal()); err == nil {
		t.Fatal("a proof with its checks out of order decoded")
	}
}

// A box's heat reports count (Vouched) while it keeps the reporter bond:
// a crafted bond of one base unit less does not vouch, and unbonding
// below it ends the vouch at once.
func TestVouchedTakesTheReporterBond(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 10*ReporterBond)
	f.g.Rules = RulesV5
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	p := f.pubs[0].ID
	if f.s.Vouched(p) {
		t.Fatal("vouched without a bond")
	}
	f.advance(t, 3, f.signed(t, f.s, NewBond(p, 0, ReporterBond-1)))
	if f.s.Vouched(p) {
		t.Fatal("vouched with one base unit less than the reporter bond")
	}
	f.advance(t, 4, f.signed(t, f.s, NewBond(p, 0, 1)))
	if !f.s.Vouched(p) {
		t.Fatal("not vouched with the reporter bond")
	}
	f.advance(t, 5, f.signed(t, f.s, NewUnbond(p, 0, 1)))
	if f.s.Vouched(p) {
		t.Fatal("still vouched while unbonding below the reporter bond")
	}
}

// A genesis sets the jobs' sampling rate and challenge window (rules 5
// only): they are in its hash and JSON (a genesis that sets neither
// hashes as before they existed), and the ledger follows them: the bond
// a runner needs is pay / rate, rounded up; the pay is held for the
// window; at 1000 per mille every job is checked.
func TestJobParamsInGenesis(t *testing.T) {
	base := newFixture(t, 1, 0, 0, 1<<30)
	g := *base.g
	g.JobCheckPermille = 300
	if g.Validate() == nil {
		t.Fatal("a job sampling rate under rules 3 validated")
	}
	g.JobCheckPermille, g.JobChallengeEpochs = 0, 7
	if g.Validate() == nil {
		t.Fatal("a job challenge window under rules 3 validated")
	}
	g.Rules = RulesV5
	def := g
	def.JobChallengeEpochs = 0
	if def.JobCheckRate() != DefaultJobCheckPermille || def.JobChallengeWindow() != DefaultJobChallengeEpochs || def.JobBondFactor() != 20 {
		t.Fatalf("defaults: %d per mille, %d epochs, factor %d", def.JobCheckRate(), def.JobChallengeWindow(), def.JobBondFactor())
	}
	g.JobCheckPermille = 300
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if g.JobBondFactor() != 4 {
		t.Fatalf("bond factor %d at 300 per mille, want 4 (1000/300 rounded up)", g.JobBondFactor())
	}
	for _, bad := range []func(*Genesis){
		func(g *Genesis) { g.JobCheckPermille = 1001 },
		func(g *Genesis) { g.JobChallengeEpochs = MaxPrewarmEpochs + 1 },
	} {
		b := g
		bad(&b)
		if b.Validate() == nil {
			t.Fatalf("validated %d per mille, %d epochs", b.JobCheckPermille, b.JobChallengeEpochs)
		}
	}
	// The hash: unchanged by neither field, changed by either.
	plain := g
	plain.JobCheckPermille, plain.JobChallengeEpochs = 0, 0
	old := plain.Hash()
	for _, e := range []func(*Genesis){
		func(g *Genesis) { g.JobCheckPermille = 300 },
		func(g *Genesis) { g.JobChallengeEpochs = 7 },
	} {
		x := plain
		e(&x)
		if x.Hash() == old {
			t.Fatalf("%d per mille, %d epochs: not in the hash", x.JobCheckPermille, x.JobChallengeEpochs)
		}
	}
	data, err := g.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseGenesis(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.JobCheckPermille != 300 || back.JobChallengeEpochs != 7 || back.Hash() != g.Hash() {
		t.Fatalf("genesis JSON round trip: %d per mille, %d epochs", back.JobCheckPermille, back.JobChallengeEpochs)
	}

	// The ledger: at 300 per mille a bond of 4,000 covers a pay of 1,000
	// (at the default 50, 20,000 would), and the pay is held 7 epochs.
	f := jobV5FixtureWith(t, func(g *Genesis) { g.JobCheckPermille, g.JobChallengeEpochs = 300, 7 })
	req, bare := f.pubs[1], f.srvs[1]
	f.advance(t, 5, f.signed(t, f.s, NewBond(bare.ID, 0, 3_999)))
	r := jobReceipt(t, f, bare, req, 6, GiB, nil)
	f.wantReason(t, f.s, 6, NewJobTx(r), ReasonInsufficientBond)
	f.advance(t, 6, f.signed(t, f.s, NewBond(bare.ID, 0, 1)))
	f.advance(t, 7, NewJobTx(jobReceipt(t, f, bare, req, 7, GiB, nil)))
	p, ok := f.s.PendingJob(r.JobID(), req.ID)
	if !ok || p.Held != 1000 || p.Release != 7+7 {
		t.Fatalf("pending %+v (%v), want 1,000 held until epoch 14", p, ok)
	}
	f.advance(t, 13)
	if _, ok := f.s.PendingJob(r.JobID(), req.ID); !ok {
		t.Fatal("paid out before the window ended")
	}
	f.advance(t, 14)
	if _, ok := f.s.PendingJob(r.JobID(), req.ID); ok || f.s.Balance(bare.ID) != 1_000_000-4_000+1000 {
		t.Fatalf("after the window: balance %d", f.s.Balance(bare.ID))
	}

	// At 1000 per mille every job paid is checked.
	all := jobV5FixtureWith(t, func(g *Genesis) { g.JobCheckPermille = 1000 })
	var txs []Tx
	for i := range 10 {
		txs = append(txs, NewJobTx(jobReceipt(t, all, all.srvs[0], all.pubs[1], 5, 1, func(j *pod.JobReceipt) { j.Args = []string{"x", string(rune('a' + i))} })))
	}
	all.advance(t, 5, txs...)
	if n := len(all.s.JobsToCheck()); n != 10 {
		t.Fatalf("%d of 10 jobs sampled at 1000 per mille", n)
	}
}
