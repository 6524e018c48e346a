package gateway

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/pod"
)

// fakeJobs answers jobs as told, recording what it was asked.
type fakeJobs struct {
	*fakeBackend
	run   func(fn, input cid.Cid, args []string) (compute.Outcome, error)
	asked [][]string
}

func (f *fakeJobs) RunJob(_ context.Context, fn, input cid.Cid, args []string) (compute.Outcome, error) {
	f.asked = append(f.asked, args)
	return f.run(fn, input, args)
}

func testCID(s string) cid.Cid {
	h, _ := mh.Sum([]byte(s), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}

func TestJobURLs(t *testing.T) {
	bstore := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	fj := &fakeJobs{fakeBackend: &fakeBackend{bs: blockservice.New(bstore, offline.Exchange(bstore))}}
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Registry: reg}, fj)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := crypto.GenerateEd25519Key(nil)
	runner, _ := peer.IDFromPrivateKey(k)
	fn, input, output := testCID("fn"), testCID("in"), testCID("out")
	claim := &pod.JobReceipt{Version: pod.JobReceiptVersion, Network: "t", Runner: runner, Requester: runner,
		Fn: fn, Input: input, Args: []string{"w=80", "q=75"}, Output: output, Work: 4242}
	if err := claim.SignRunner(k); err != nil {
		t.Fatal(err)
	}
	base := "/ipfs/" + input.String() + "?" + FnParam + "=" + fn.String()

	fj.run = func(f, in cid.Cid, args []string) (compute.Outcome, error) {
		if f != fn || in != input {
			t.Errorf("job of %s over %s", f, in)
		}
		return compute.Outcome{Claim: claim}, nil
	}
	rec := get(t, gw, "GET", base+"&"+ArgParam+"=w%3D80&"+ArgParam+"=q%3D75")
	if rec.Code != 302 || rec.Header().Get("Location") != "/ipfs/"+output.String() {
		t.Fatalf("job: %d, Location %q: %s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
	}
	if got := fj.asked[len(fj.asked)-1]; strings.Join(got, "|") != "w=80|q=75" {
		t.Fatalf("args passed in order: %q", got)
	}
	if rec.Header().Get(WorkHeader) != "4242" || rec.Header().Get(CacheHeader) != "miss" ||
		!strings.Contains(rec.Header().Get("Cache-Control"), "max-age=") {
		t.Fatalf("headers: %v", rec.Header())
	}
	raw, err := base64.RawURLEncoding.DecodeString(rec.Header().Get(ClaimHeader))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := pod.UnmarshalJobReceipt(raw); err != nil || c.VerifyRunner() != nil || c.Output != output {
		t.Fatalf("the claim header: %v", err)
	}

	// A job the ledger records as final: no claim, the ledger's word, a
	// day's caching.
	job := pod.JobID(fn, input, nil)
	fj.run = func(cid.Cid, cid.Cid, []string) (compute.Outcome, error) {
		return compute.Outcome{Final: &compute.Final{Job: job, Output: output, Work: 77}, Cached: true}, nil
	}
	rec = get(t, gw, "GET", base)
	if rec.Code != 302 || rec.Header().Get("Location") != "/ipfs/"+output.String() || rec.Header().Get(CacheHeader) != "final" ||
		rec.Header().Get(ClaimHeader) != "" || rec.Header().Get(WorkHeader) != "77" || rec.Header().Get(JobHeader) != hex.EncodeToString(job[:]) ||
		!strings.Contains(rec.Header().Get("Cache-Control"), fmt.Sprintf("max-age=%d", FinalRedirectMaxAge)) {
		t.Fatalf("a final job: %d, %v", rec.Code, rec.Header())
	}
	fj.run = func(cid.Cid, cid.Cid, []string) (compute.Outcome, error) { return compute.Outcome{}, nil }
	if rec := get(t, gw, "GET", base); rec.Code != 502 {
		t.Fatalf("an outcome with neither claim nor record: %d", rec.Code)
	}

	for _, tc := range []struct {
		name   string
		target string
		err    error
		code   int
		limit  string
		says   string
	}{
		{"work limit", base, fmt.Errorf("x: %w", compute.ErrWorkLimit), 422, "work", "work"},
		{"memory limit", base, compute.ErrMemoryLimit, 422, "memory", "memory"},
		{"output limit", base, compute.ErrOutputLimit, 422, "output", "output"},
		{"function error", base, fmt.Errorf("%w: exit code 3: bad image", compute.ErrFunction), 422, "", "bad image"},
		{"unknown function", base, compute.ErrUnknownFunction, 404, "", "cannot read"},
		{"input not found", base, fmt.Errorf("%w: x", ErrNotFound), 404, "", "no box"},
		{"bad fn", "/ipfs/" + input.String() + "?" + FnParam + "=nope", nil, 400, "", "not a CID"},
		{"a path", "/ipfs/" + input.String() + "/a/b?" + FnParam + "=" + fn.String(), nil, 400, "", "without a path"},
		{"too many args", base + strings.Repeat("&"+ArgParam+"=x", pod.MaxJobArgs+1), nil, 400, "", "arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fj.run = func(cid.Cid, cid.Cid, []string) (compute.Outcome, error) { return compute.Outcome{}, tc.err }
			rec := get(t, gw, "GET", tc.target)
			if rec.Code != tc.code || rec.Header().Get(LimitHeader) != tc.limit || !strings.Contains(rec.Body.String(), tc.says) {
				t.Fatalf("%d (%s: %q): %s", rec.Code, LimitHeader, rec.Header().Get(LimitHeader), rec.Body.String())
			}
		})
	}

	// A gateway whose backend runs no functions says so.
	plain, _, _ := newFake(t, Config{})
	if rec := get(t, plain, "GET", base); rec.Code != 501 {
		t.Fatalf("no jobs backend: %d", rec.Code)
	}
}
