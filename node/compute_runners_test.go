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

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/internal/testkit"
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
		u := fmt.Sprintf("http://%s/ipfs/%s?%s=%s&%s=%s", gw.GatewayAddr(), in.Root, gateway.FnParam, info.Fn, gateway.ArgParam, arg)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
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
