package pod

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func testJob(t testing.TB, runner, requester party) *JobReceipt {
	t.Helper()
	r := &JobReceipt{Version: JobReceiptVersion, Network: "ore-test", Epoch: 7,
		Runner: runner.id, Requester: requester.id,
		Fn: testRoot(t, "fn"), Input: testRoot(t, "in"), Args: []string{"gzip", "9"},
		Output: testRoot(t, "out"), Work: 123456}
	if err := r.SignRunner(runner.key); err != nil {
		t.Fatal(err)
	}
	if err := r.SignRequester(requester.key); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestJobReceiptRoundTrip(t *testing.T) {
	run, req := newParty(t), newParty(t)
	r := testJob(t, run, req)
	got, err := UnmarshalJobReceipt(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), r.Marshal()) || got.JobID() != r.JobID() {
		t.Fatal("round trip changed the receipt")
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := (Params{Network: "ore-test"}).CheckJob(got); err != nil {
		t.Fatal(err)
	}
}

// Every field is covered by both signatures: a runner cannot swap the
// output or raise the work after the requester signed.
func TestJobReceiptTampered(t *testing.T) {
	run, req := newParty(t), newParty(t)
	for name, mutate := range map[string]func(*JobReceipt){
		"output": func(r *JobReceipt) { r.Output = testRoot(t, "other") },
		"work":   func(r *JobReceipt) { r.Work++ },
		"args":   func(r *JobReceipt) { r.Args = []string{"gzip", "1"} },
		"ticket": func(r *JobReceipt) { r.Ticket[0] = 1 },
		"epoch":  func(r *JobReceipt) { r.Epoch++ },
	} {
		r := testJob(t, run, req)
		mutate(r)
		if err := r.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v", name, err)
		}
	}
	// The requester countersigns a claim, never a blank.
	r := &JobReceipt{Version: JobReceiptVersion, Runner: run.id, Requester: req.id}
	if err := r.SignRequester(req.key); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("SignRequester of an unsigned claim: %v", err)
	}
	if err := r.SignRunner(req.key); err == nil {
		t.Fatal("signed as the runner with another key")
	}
}

func TestJobArgsAndIDs(t *testing.T) {
	fn, in := testRoot(t, "fn"), testRoot(t, "in")
	// Arguments are length-prefixed: no two lists share an ID.
	if JobID(fn, in, []string{"a b"}) == JobID(fn, in, []string{"a", "b"}) ||
		JobID(fn, in, []string{"ab", ""}) == JobID(fn, in, []string{"a", "b"}) ||
		JobID(fn, in, nil) == JobID(in, fn, nil) {
		t.Fatal("two jobs share an ID")
	}
	for _, bad := range [][]string{
		make([]string, MaxJobArgs+1),
		{strings.Repeat("x", MaxJobArgsBytes+1)},
		{"a\x00b"},
		{"\xff"},
	} {
		if err := CheckJobArgs(bad); !errors.Is(err, ErrBadJob) {
			t.Errorf("CheckJobArgs(%q...) = %v", bad[0][:min(len(bad[0]), 8)], err)
		}
	}
	run := newParty(t)
	self := testJob(t, run, newParty(t))
	self.Requester = run.id
	if err := (Params{Network: "ore-test"}).CheckJob(self); !errors.Is(err, ErrBadJob) {
		t.Fatalf("a runner requesting its own job: %v", err)
	}
}

func FuzzUnmarshalJobReceipt(f *testing.F) {
	f.Add(testJob(f, newParty(f), newParty(f)).Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := UnmarshalJobReceipt(data)
		if err == nil && !bytes.Equal(r.Marshal(), data) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}
