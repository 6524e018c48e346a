package ledger

import (
	"bytes"
	"testing"

	"github.com/orecdn/ore/pod"
)

// jobFixture: a rules-4 network where pubs[0] registered a function at
// 1000 per GiWork paying at most 8 GiWork a job, and pubs[1] (the
// requester) deposited 10,000.
func jobFixture(t *testing.T) (*fixture, *Tx) {
	f := newFixture(t, 2, 3, 1, 1_000_000)
	f.g.Rules = RulesV4
	var err error
	if f.s, err = NewState(f.g); err != nil {
		t.Fatal(err)
	}
	fn := testRoot(t, "fn")
	reg := f.signed(t, f.s, NewRegisterFunction(f.pubs[0].ID, 0, fn, 1000, 8*GiB))
	f.advance(t, 3, reg, f.signed(t, f.s, NewDeposit(f.pubs[1].ID, 0, 10_000)))
	return f, &reg
}

func jobReceipt(t *testing.T, f *fixture, runner, requester party, epoch, work uint64, mutate func(*pod.JobReceipt)) *pod.JobReceipt {
	t.Helper()
	r := &pod.JobReceipt{Version: pod.JobReceiptVersion, Network: testNetwork, Epoch: epoch,
		Runner: runner.ID, Requester: requester.ID, Fn: testRoot(t, "fn"), Input: testRoot(t, "in"),
		Args: []string{"gzip"}, Output: testRoot(t, "out"), Work: work}
	if mutate != nil {
		mutate(r)
	}
	if err := r.SignRunner(runner.Key); err != nil {
		t.Fatal(err)
	}
	if err := r.SignRequester(requester.Key); err != nil {
		t.Fatal(err)
	}
	return r
}

// A job receipt pays its runner owed(work, price) from the requester's
// escrow, once per (job, requester) whoever ran it.
func TestJobPaysRunnerOnce(t *testing.T) {
	f, _ := jobFixture(t)
	req, run, other := f.pubs[1], f.srvs[0], f.srvs[1]
	r := jobReceipt(t, f, run, req, 4, 5*GiB, nil)
	f.advance(t, 4, NewJobTx(r))
	if got := f.s.Balance(run.ID); got != 5000 {
		t.Fatalf("the runner earned %d, want 5 GiWork at 1000 = 5000", got)
	}
	if got := f.s.Escrow(req.ID); got != 5000 {
		t.Fatalf("the requester's escrow is %d, want 5000", got)
	}
	// The same receipt again, and the same job run by another box for the
	// same requester: nothing more.
	f.advance(t, 5, NewJobTx(r), NewJobTx(jobReceipt(t, f, other, req, 5, 5*GiB, nil)))
	if f.s.Balance(run.ID) != 5000 || f.s.Balance(other.ID) != 0 || f.s.Escrow(req.ID) != 5000 {
		t.Fatalf("a replayed job paid: runner %d, other %d, escrow %d", f.s.Balance(run.ID), f.s.Balance(other.ID), f.s.Escrow(req.ID))
	}
	// Another job (other arguments) pays, at most what the escrow holds.
	f.advance(t, 6, NewJobTx(jobReceipt(t, f, other, req, 6, 8*GiB, func(j *pod.JobReceipt) { j.Args = []string{"gzip", "9"} })))
	if f.s.Balance(other.ID) != 5000 || f.s.Escrow(req.ID) != 0 {
		t.Fatalf("a dry escrow: other earned %d, escrow %d", f.s.Balance(other.ID), f.s.Escrow(req.ID))
	}
	// The paid pairs are forgotten with their epoch; its receipts are refused by then.
	f.advance(t, 20)
	if f.s.jobs != nil && len(f.s.jobs.paid) != 0 {
		t.Fatalf("paid jobs kept past the skew: %v", f.s.jobs.paid)
	}
	f.wantReason(t, f.s, 21, NewJobTx(r), ReasonEpochOutOfRange)
}

// Each way a crafted job transaction tries to take money is refused.
func TestJobRefusals(t *testing.T) {
	f, _ := jobFixture(t)
	req, run := f.pubs[1], f.srvs[0]
	for _, tc := range []struct {
		name string
		tx   func() Tx
		want Reason
	}{
		{"work over the function's limit", func() Tx { return NewJobTx(jobReceipt(t, f, run, req, 4, 8*GiB+1, nil)) }, ReasonWorkOutOfRange},
		{"no work", func() Tx { return NewJobTx(jobReceipt(t, f, run, req, 4, 0, nil)) }, ReasonWorkOutOfRange},
		{"unregistered function", func() Tx {
			return NewJobTx(jobReceipt(t, f, run, req, 4, 1, func(j *pod.JobReceipt) { j.Fn = testRoot(t, "other") }))
		}, ReasonNotRegistered},
		{"the runner alone (no requester signature)", func() Tx {
			r := jobReceipt(t, f, run, req, 4, 1, nil)
			r.RequesterSig = nil
			return NewJobTx(r)
		}, ReasonBadSignature},
		{"work raised after signing", func() Tx {
			r := jobReceipt(t, f, run, req, 4, 1, nil)
			r.Work = 8 * GiB
			return NewJobTx(r)
		}, ReasonBadSignature},
		{"the requester signs as runner too", func() Tx { return NewJobTx(jobReceipt(t, f, req, req, 4, 1, nil)) }, ReasonMalformed},
		{"another network", func() Tx {
			return NewJobTx(jobReceipt(t, f, run, req, 4, 1, func(j *pod.JobReceipt) { j.Network = "other" }))
		}, ReasonMalformed},
		{"from the future", func() Tx { return NewJobTx(jobReceipt(t, f, run, req, 5, 1, nil)) }, ReasonEpochOutOfRange},
		{"under a ticket", func() Tx {
			return NewJobTx(jobReceipt(t, f, run, req, 4, 1, func(j *pod.JobReceipt) { j.Ticket[0] = 1 }))
		}, ReasonNotInRules},
		{"a function taken over", func() Tx {
			return f.signed(t, f.s, NewRegisterFunction(f.pubs[1].ID, 0, testRoot(t, "fn"), 0, 1))
		}, ReasonNotOwner},
		{"a work limit of 0", func() Tx {
			return f.signed(t, f.s, NewRegisterFunction(f.pubs[0].ID, 0, testRoot(t, "fn2"), 1, 0))
		}, ReasonWorkOutOfRange},
		{"a work limit past the ceiling", func() Tx {
			return f.signed(t, f.s, NewRegisterFunction(f.pubs[0].ID, 0, testRoot(t, "fn2"), 1, pod.MaxJobWork+1))
		}, ReasonWorkOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) { f.wantReason(t, f.s, 4, tc.tx(), tc.want) })
	}
	// A chain of older rules has no jobs.
	g := newFixture(t, 1, 1, 1, 1000)
	g.wantReason(t, g.s, 1, g.signed(t, g.s, NewRegisterFunction(g.pubs[0].ID, 0, testRoot(t, "fn"), 1, 1)), ReasonNotInRules)
}

func TestJobTxEncoding(t *testing.T) {
	f, reg := jobFixture(t)
	for _, tx := range []Tx{*reg, NewJobTx(jobReceipt(t, f, f.srvs[0], f.pubs[1], 4, 7, nil))} {
		got, err := UnmarshalTx(tx.Marshal())
		if err != nil {
			t.Fatal(tx.Kind, err)
		}
		if !bytes.Equal(got.Marshal(), tx.Marshal()) || got.From != tx.From || got.ID() != tx.ID() {
			t.Fatalf("%s: round trip changed it", tx.Kind)
		}
		if err := got.Authenticate(testNetwork); err != nil {
			t.Fatal(tx.Kind, err)
		}
	}
}
