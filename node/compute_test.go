package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// A function published on one box runs on another, which fetches the
// function and the input like any content; both boxes get the same
// output CID and work for the same job, and a box asked again answers
// from its index.
func TestJobOnTwoBoxes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := newTestBox(t), newTestBox(t)
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	info, err := a.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	in := randomBytes(t, 300<<10)
	input := addBytes(t, a, in)
	onB, err := b.RunJob(ctx, info.Fn, input, []string{"upper"})
	if err != nil {
		t.Fatal(err)
	}
	onA, err := a.RunJob(ctx, info.Fn, input, []string{"upper"})
	if err != nil {
		t.Fatal(err)
	}
	if onA.Claim.Output != onB.Claim.Output || onA.Claim.Work != onB.Claim.Work || onA.Cached || onB.Cached {
		t.Fatalf("box a: %s, %d units; box b: %s, %d units", onA.Claim.Output, onA.Claim.Work, onB.Claim.Output, onB.Claim.Work)
	}
	if onB.Claim.Runner != b.ID() || onB.Claim.VerifyRunner() != nil {
		t.Fatal("box b's claim is not signed by box b")
	}
	f, err := b.Open(ctx, onB.Claim.Output)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f.(io.Reader))
	if !bytes.Equal(got, bytes.ToUpper(in)) {
		t.Fatal("the output is not the input in upper case")
	}
	again, err := b.RunJob(ctx, info.Fn, input, []string{"upper"})
	if err != nil || !again.Cached || again.Claim.Output != onB.Claim.Output {
		t.Fatalf("asked again: %+v, %v", again, err)
	}
	if _, err := b.RunJob(ctx, info.Fn, input, []string{"fail"}); !errors.Is(err, compute.ErrFunction) {
		t.Fatalf("a failing job: %v", err)
	}
}

// A requester box asks a runner box for a job over /ore/compute/1.0.0:
// the runner's claim names the requester, the requester holds the output
// and countersigns; a box that lends no CPU refuses.
func TestRemoteJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runner, requester := newTestBox(t, WithComputeService(1)), newTestBox(t)
	if err := requester.Connect(ctx, runner.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	info, err := requester.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	in := randomBytes(t, 64<<10)
	input := addBytes(t, requester, in)
	r, err := requester.RunJobOn(ctx, runner.ID(), info.Fn, input, []string{"sha256"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err != nil || r.Runner != runner.ID() || r.Requester != requester.ID() {
		t.Fatalf("receipt: %v, runner %s, requester %s", err, r.Runner, r.Requester)
	}
	f, err := requester.Open(ctx, r.Output)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f.(io.Reader))
	sum := sha256.Sum256(in)
	if strings.TrimSpace(string(got)) != hex.EncodeToString(sum[:]) {
		t.Fatalf("output %q", got)
	}
	if _, err := requester.RunJobOn(ctx, runner.ID(), info.Fn, input, []string{"loop"}); !errors.Is(err, compute.ErrWorkLimit) && !errors.Is(err, compute.ErrLimit) {
		t.Fatalf("a job over its limit on the runner: %v", err)
	}
	if _, err := runner.RunJobOn(ctx, requester.ID(), info.Fn, input, []string{"sha256"}); err == nil {
		t.Fatal("a box that lends no CPU ran a job")
	}
}

// A runner that claims a false output (here: a claim planted in its
// index, as a cheater would answer without running) is caught by a
// requester that re-runs the job: no countersignature, and the runner's
// own signed claim as evidence.
func TestCheatingRunnerCaught(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runner, requester := newTestBox(t, WithComputeService(1)), newTestBox(t)
	if err := requester.Connect(ctx, runner.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	info, err := requester.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	input := addBytes(t, requester, []byte("the input\n"))
	args := []string{"upper"}
	// The lie: an output that exists (so the requester can fetch it), but
	// is not the job's.
	wrong := addBytes(t, runner, []byte("NOT THE OUTPUT\n"))
	lie := &pod.JobReceipt{Version: pod.JobReceiptVersion, Network: runner.Network().Network, Epoch: 1,
		Runner: runner.ID(), Requester: requester.ID(), Fn: info.Fn, Input: input, Args: args, Output: wrong, Work: 12345}
	if err := lie.SignRunner(runner.key); err != nil {
		t.Fatal(err)
	}
	if err := runner.store.PutMeta(ctx, compute.IndexKey(pod.JobID(info.Fn, input, args)), lie.Marshal()); err != nil {
		t.Fatal(err)
	}
	_, err = requester.RunJobOn(ctx, runner.ID(), info.Fn, input, args, VerifyJob())
	var mm *MismatchError
	if !errors.As(err, &mm) || mm.Claim.VerifyRunner() != nil || mm.Claim.Output != wrong || mm.Claim.RequesterSig != nil {
		t.Fatalf("a false claim: %v", err)
	}
	// Without verification the same lie is countersigned: what sampling
	// after the fact is for.
	if r, err := requester.RunJobOn(ctx, runner.ID(), info.Fn, input, args); err != nil || r.Output != wrong {
		t.Fatalf("unverified: %v", err)
	}
}
