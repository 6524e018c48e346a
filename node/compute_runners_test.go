package node_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/testnet"
)

// A gateway sends a job to the box that lends CPU: the lender's heat
// report says what it lends (heat.Compute), the gateway learns it, the
// job's claim is the lender's, and the same job asked again is answered
// from the gateway's index. A job whose function fails on the lender is
// run by the gateway itself, whose own run gives the answer (422).
func TestGatewaySendsJobToLender(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, 5, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(20*time.Second)),
		testnet.WithBoxOptions(3, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0")),
		testnet.WithBoxOptions(4, node.WithComputeService(1)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2},
			EpochLength: time.Second, Network: "ore-runners-test"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	gw, lender := nw.Nodes[3], nw.Nodes[4]
	if err := gw.Connect(ctx, lender.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the gateway knows the lender", func() bool {
		for _, r := range gw.Runners() {
			if r.ID == lender.ID() {
				return r.Compute.Slots == 1 && r.Compute.Cap >= 1 && r.Compute.Arch != ""
			}
		}
		return false
	})
	if rs := lender.Runners(); len(rs) != 0 {
		t.Errorf("a box of the box role keeps runners: %v", rs)
	}
	info, err := gw.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := gw.Add(ctx, files.NewBytesFile([]byte("a job for a box with idle cpu")))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(arg string) *http.Response {
		t.Helper()
		return getJob(t, ctx, client, gw, in.Root, info.Fn, arg)
	}
	claimOf := func(resp *http.Response) *pod.JobReceipt {
		t.Helper()
		b, err := base64.RawURLEncoding.DecodeString(resp.Header.Get(gateway.ClaimHeader))
		if err != nil {
			t.Fatal(err)
		}
		c, err := pod.UnmarshalJobReceipt(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	resp := get("upper")
	if resp.StatusCode != http.StatusFound || resp.Header.Get(gateway.CacheHeader) != "miss" {
		t.Fatalf("job: %s, cache %q", resp.Status, resp.Header.Get(gateway.CacheHeader))
	}
	c := claimOf(resp)
	if c.Runner != lender.ID() || c.Requester != gw.ID() || c.VerifyRunner() != nil {
		t.Fatalf("the job ran on %s for %s, want the lender %s", c.Runner, c.Requester, lender.ID())
	}
	if !strings.HasSuffix(resp.Header.Get("Location"), c.Output.String()) {
		t.Fatalf("redirect to %q, output %s", resp.Header.Get("Location"), c.Output)
	}
	again := get("upper")
	if again.Header.Get(gateway.CacheHeader) != "hit" || claimOf(again).Output != c.Output {
		t.Fatalf("asked again: cache %q", again.Header.Get(gateway.CacheHeader))
	}
	if fail := get("fail"); fail.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("a failing function: %s", fail.Status)
	}
	for _, r := range gw.Runners() {
		if r.Pending != 0 {
			t.Errorf("runner %s: %d jobs still counted as pending", r.ID, r.Pending)
		}
	}
}

// On a network of rules 5, a job the gateway sent to the lender is paid,
// and past its challenge window the ledger's index of final outputs has
// it: another gateway, which never ran nor asked for the job, answers it
// from the ledger (Ore-Job-Cache: final), without a claim or a run.
func TestGatewayAnswersFromFinalOutputs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gwOpts := []node.Option{node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0")}
	nw, err := testnet.New(ctx, 6, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(20*time.Second)),
		testnet.WithBoxOptions(3, gwOpts...), testnet.WithBoxOptions(5, gwOpts...),
		testnet.WithBoxOptions(4, node.WithComputeService(1)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 50, 4: 1 << 40},
			EpochLength: 2 * time.Second, Network: "ore-final-jobs-test", Rules: ledger.RulesV5, JobChallengeEpochs: 3}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	gw, lender, other := nw.Nodes[3], nw.Nodes[4], nw.Nodes[5]
	for _, n := range append([]*node.Node{lender, other}, nw.Nodes[:3]...) {
		if err := gw.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	price := uint64(1 << 20)
	info, err := gw.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), &price)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the function registered", func() bool {
		st, err := gw.LedgerState(ctx)
		if err != nil {
			return false
		}
		_, ok := st.Function(info.Fn)
		return ok
	})
	// After the registration (the next nonce of the gateway's account).
	submitFinal(t, ctx, gw, ledger.NewDeposit(gw.ID(), 0, 1<<40))
	submitFinal(t, ctx, lender, ledger.NewBond(lender.ID(), 0, 1<<36))
	testkit.WaitFor(t, time.Minute, "the lender known", func() bool {
		for _, r := range gw.Runners() {
			if r.ID == lender.ID() {
				return true
			}
		}
		return false
	})
	in, err := gw.Add(ctx, files.NewBytesFile([]byte("a job whose output the ledger keeps")))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(box *node.Node) *http.Response {
		t.Helper()
		return getJob(t, ctx, client, box, in.Root, info.Fn, "upper")
	}
	first := get(gw)
	if first.StatusCode != http.StatusFound || first.Header.Get(gateway.CacheHeader) != "miss" {
		t.Fatalf("job: %s, cache %q", first.Status, first.Header.Get(gateway.CacheHeader))
	}
	id := pod.JobID(info.Fn, in.Root, []string{"upper"})
	var release uint64
	testkit.WaitFor(t, time.Minute, "the job paid and under challenge", func() bool {
		st, err := other.LedgerState(ctx)
		if err != nil {
			return false
		}
		p, ok := st.PendingJob(id, gw.ID())
		release = p.Release
		return ok && p.Runner == lender.ID()
	})
	// The window ends with the first block of an epoch at or past
	// release: blocks come with transactions, and a block is of the epoch
	// that closed, so one is sent once the release epoch is running.
	testkit.WaitFor(t, time.Minute, "the challenge window over", func() bool { return gw.Network().EpochAt(time.Now()) > release })
	submitFinal(t, ctx, gw, ledger.NewDeposit(gw.ID(), 0, 1))
	testkit.WaitFor(t, time.Minute, "the job's output final on the ledger", func() bool {
		st, err := other.LedgerState(ctx)
		if err != nil {
			return false
		}
		f, ok := st.FinalJob(id)
		return ok && strings.HasSuffix(first.Header.Get("Location"), f.Output.String())
	})
	resp := get(other)
	if resp.StatusCode != http.StatusFound || resp.Header.Get(gateway.CacheHeader) != "final" ||
		resp.Header.Get(gateway.ClaimHeader) != "" || resp.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("the other gateway: %s, cache %q, Location %q (want %q)", resp.Status, resp.Header.Get(gateway.CacheHeader),
			resp.Header.Get("Location"), first.Header.Get("Location"))
	}
}

// getJob asks box's gateway for the job (fn, input, arg) and returns its
// answer, its body read and closed.
func getJob(t *testing.T, ctx context.Context, client *http.Client, box *node.Node, input, fn cid.Cid, arg string) *http.Response {
	t.Helper()
	u := fmt.Sprintf("http://%s/ipfs/%s?%s=%s&%s=%s", box.GatewayAddr(), input, gateway.FnParam, fn, gateway.ArgParam, arg)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
