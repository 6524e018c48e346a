package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/testnet"
)

// On a network of rules 5 (boxes 0-2 coordinate, box 3 publishes and
// asks, box 4 runs), an honest job's challenge is cleared by a quorum of
// the members' own runs; a runner's wrong claim, paid by a final block,
// is proven wrong by them: the proof forfeits its bond, the job's pay
// returns to the requester, and the requester sends the runner no more
// jobs.
func TestCheatingRunnerLosesItsBond(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, 5, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(20*time.Second), node.WithComputeService(1)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 50, 4: 1 << 40},
			EpochLength: 2 * time.Second, Network: "ore-jobcheck-test", Rules: ledger.RulesV5}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	req, run := nw.Nodes[3], nw.Nodes[4]
	start := time.Now()
	for _, n := range nw.Nodes[:3] {
		if err := req.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if err := req.Connect(ctx, run.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	price := uint64(1 << 20)
	info, err := req.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), &price)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the function registered", func() bool {
		st, err := req.LedgerState(ctx)
		if err != nil {
			return false
		}
		_, ok := st.Function(info.Fn)
		return ok
	})
	t.Logf("%s: network up, function registered", time.Since(start))
	submitFinal(t, ctx, req, ledger.NewDeposit(req.ID(), 0, 1<<40))
	const bond = 1 << 36
	submitFinal(t, ctx, run, ledger.NewBond(run.ID(), 0, bond))
	in, err := req.Add(ctx, files.NewBytesFile([]byte("the input of an honest job and of a cheat")))
	if err != nil {
		t.Fatal(err)
	}
	pending := func(r *pod.JobReceipt) bool {
		st, err := req.LedgerState(ctx)
		if err != nil {
			return false
		}
		_, ok := st.PendingJob(r.JobID(), r.Requester)
		return ok
	}
	t.Logf("%s: deposit and bond final", time.Since(start))
	// An honest job, paid, checked by the committee: cleared.
	honest, err := req.RunJobOn(ctx, run.ID(), info.Fn, in.Root, []string{"upper"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the honest job under challenge", func() bool { return pending(honest) })
	t.Logf("%s: honest job pending", time.Since(start))
	ch, err := req.ChallengeJob(ctx, honest)
	if err != nil || ch.Mismatch {
		t.Fatalf("an honest job's challenge: %+v, %v", ch, err)
	}
	t.Logf("%s: honest job cleared", time.Since(start))
	// A cheat: the runner claims the input as the job's output, and a
	// requester (its accomplice, or fooled) countersigns.
	runKey, err := node.LoadIdentity(nw.Dirs[4])
	if err != nil {
		t.Fatal(err)
	}
	reqKey, err := node.LoadIdentity(nw.Dirs[3])
	if err != nil {
		t.Fatal(err)
	}
	cheat := &pod.JobReceipt{Version: pod.JobReceiptVersion, Network: nw.Genesis.Network, Epoch: req.Network().EpochAt(time.Now()),
		Runner: run.ID(), Requester: req.ID(), Fn: info.Fn, Input: in.Root, Args: []string{"sha256"}, Output: in.Root, Work: honest.Work}
	if err := cheat.SignRunner(runKey); err != nil {
		t.Fatal(err)
	}
	if err := cheat.SignRequester(reqKey); err != nil {
		t.Fatal(err)
	}
	if err := req.SubmitTx(ctx, ledger.NewJobTx(cheat)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the cheat paid and under challenge", func() bool { return pending(cheat) })
	t.Logf("%s: cheat pending", time.Since(start))
	ch, err = req.ChallengeJob(ctx, cheat)
	if err != nil || !ch.Mismatch || len(ch.Checks) < nw.Genesis.Quorum() {
		t.Fatalf("the cheat's challenge: %+v, %v", ch, err)
	}
	t.Logf("%s: proof submitted", time.Since(start))
	testkit.WaitFor(t, time.Minute, "the proof in a final block", func() bool {
		st, err := req.LedgerState(ctx)
		if err != nil {
			return false
		}
		c, caught := st.Cheated(run.ID())
		return caught && c.Count == 1 && st.Bond(run.ID()).Amount == 0 && !pending(cheat)
	})
	if _, err := req.RunJobOn(ctx, run.ID(), info.Fn, in.Root, []string{"upper", "again"}); !errors.Is(err, node.ErrCheater) {
		t.Fatalf("a job asked of a proven cheat: %v, want %v", err, node.ErrCheater)
	}
}
