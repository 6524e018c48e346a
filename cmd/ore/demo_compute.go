package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
)

// The demo's function: the sample module's gzip mode, at a price per
// GiWork (2^30 work units), over a generated text of demoComputeInput
// bytes. The runner's genesis balance pays its bond.
const (
	demoFnPrice       = oreUnit / 10
	demoComputeInput  = 256 << 10
	demoRunnerBalance = 100 * oreUnit
	// demoReporterBalance pays the reporter bond of a box whose heat the
	// heat step counts (ledger.ReporterBond), and its transactions.
	demoReporterBalance = 2 * oreUnit
)

// demoJobArgs is the job's arguments: gzip at level 6.
var demoJobArgs = []string{"gzip", "6"}

// compute publishes the sample function and registers it on the ledger,
// runs it through the gateway (a redirect to the output, the second
// request answered from the index), then has the publisher ask the runner
// box, which lends its CPU, for the same job: the countersigned receipt
// goes to the ledger, which holds the runner's pay for the challenge
// window. Every figure printed is read from the boxes and the ledger.
func (d *demo) compute(ctx context.Context) (string, error) {
	pub, gw, run := d.net.Nodes[d.publisher], d.net.Nodes[d.gateway], d.net.Nodes[d.runner()]
	var b strings.Builder
	module, err := compute.SampleModule()
	if err != nil {
		return "", err
	}
	price := uint64(demoFnPrice)
	info, err := pub.PublishFunction(ctx, module, compute.DefaultLimits(), &price)
	if err != nil {
		return "", err
	}
	input, text, err := d.addText(ctx)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "box %d published the sample function (a Go program built for wasip1, %s; %s once metered): function %s, module %s\n",
		d.publisher, humanize.IBytes(uint64(len(module))), humanize.IBytes(uint64(info.Size)), short(info.Fn), short(info.Module))
	fmt.Fprintf(&b, "limits: %d work units, %s memory, %s output; registered on the ledger at %s per GiWork; input %s (%s of text)\n",
		info.Limits.Work, humanize.IBytes(uint64(info.Limits.MemoryPages)<<16), humanize.IBytes(uint64(info.Limits.Output)),
		formatOre(price), short(input), humanize.IBytes(uint64(len(text))))

	// Through the gateway: the job's URL is the input's with the function
	// in the query; the answer is a redirect to the output.
	q := url.Values{gateway.FnParam: {info.Fn.String()}, gateway.ArgParam: demoJobArgs}
	jobURL := "http://" + gw.GatewayAddr() + "/ipfs/" + input.String() + "?" + q.Encode()
	first, err := demoJobRequest(ctx, jobURL)
	if err != nil {
		return "", err
	}
	if first.cache != "miss" {
		return "", fmt.Errorf("the first request for the job was answered %q, not run", first.cache)
	}
	out, err := d.gatewayOutput(ctx, first.location, text)
	if err != nil {
		return "", err
	}
	second, err := demoJobRequest(ctx, jobURL)
	if err != nil {
		return "", err
	}
	if second.cache != "hit" || second.claim.Output != first.claim.Output || second.claim.Work != first.claim.Work {
		return "", fmt.Errorf("the second request: %s, output %s, %d work units; the first: %s, %d",
			second.cache, second.claim.Output, second.claim.Work, first.claim.Output, first.claim.Work)
	}
	fmt.Fprintf(&b, "GET /ipfs/%s?%s=%s&%s=gzip&%s=6 on the gateway (box %d)\n", short(input), gateway.FnParam, short(info.Fn), gateway.ArgParam, gateway.ArgParam, d.gateway)
	fmt.Fprintf(&b, "  1st: 302 → %s in %s (%s: %s: box %d fetched the function and the input and ran the job, %d work units); the output: %s gzipped to %s, gunzips to the input\n",
		first.location, first.took.Round(time.Millisecond), gateway.CacheHeader, first.cache, d.gateway, first.claim.Work,
		humanize.IBytes(uint64(len(text))), humanize.IBytes(uint64(out)))
	fmt.Fprintf(&b, "  2nd: 302 → the same output in %s (%s: %s, from the box's index, not run again); %s carries box %d's signed claim (signature valid)\n",
		second.took.Round(time.Millisecond), gateway.CacheHeader, second.cache, gateway.ClaimHeader, d.gateway)

	// A paid job: the runner box bonds, the publisher asks it for the
	// same job and countersigns its claim, the ledger takes the receipt.
	pay := ledger.Owed(first.claim.Work, price)
	g := d.net.Genesis
	bond := max(2*g.JobBondFactor()*pay, oreUnit)
	if err := d.submitFinal(ctx, d.runner(), ledger.NewBond("", 0, bond)); err != nil {
		return "", err
	}
	if err := d.waitFunction(ctx, info.Fn); err != nil {
		return "", err
	}
	start := time.Now()
	r, err := pub.RunJobOn(ctx, run.ID(), info.Fn, input, demoJobArgs)
	if err != nil {
		return "", err
	}
	took := time.Since(start)
	if r.Output != first.claim.Output || r.Work != first.claim.Work {
		return "", fmt.Errorf("box %d's run: %s in %d work units; box %d's: %s in %d: the job is not deterministic",
			d.runner(), r.Output, r.Work, d.gateway, first.claim.Output, first.claim.Work)
	}
	if err := r.Verify(); err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "box %d bonded %s (%d× the job's pay, the ledger asks %d×: the pay under challenge / the %d‰ sampling rate) and lends its CPU (compute share 1)\n",
		d.runner(), formatOre(bond), bond/max(pay, 1), g.JobBondFactor(), g.JobCheckRate())
	fmt.Fprintf(&b, "box %d asked box %d for the same job over %s: %s, the same output CID and work units as box %d's run (deterministic); it fetched the output and countersigned\n",
		d.publisher, d.runner(), node.ComputeProtocol, took.Round(time.Millisecond), d.gateway)
	fmt.Fprintf(&b, "receipt: job %x, runner box %d, requester box %d, epoch %d, %d work units, output %s; runner's and requester's signatures valid\n",
		jobIDShort(r), d.runner(), d.publisher, r.Epoch, r.Work, short(r.Output))

	// The ledger's side: the pay left the requester's escrow and is held
	// for the runner until the challenge window ends.
	wctx, cancel := context.WithTimeout(ctx, 15*demoEpoch)
	defer cancel()
	var (
		pj ledger.PendingJob
		st *ledger.State
	)
	for {
		if st, err = d.ledgerState(wctx); err == nil {
			var ok bool
			if pj, ok = st.PendingJob(r.JobID(), pub.ID()); ok {
				break
			}
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("the job's receipt is in no block after %s", 15*demoEpoch)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The pay is the receipt's work at the function's price, to the base
	// unit, from the requester's escrow (the job is under no ticket).
	if pj.Held != pay || pj.Runner != run.ID() || pj.Payer != pub.ID() || pj.Output != r.Output || pj.Work != r.Work {
		return "", fmt.Errorf("the ledger holds %s from %s for %s (output %s, %d work units); the receipt's work at the price is %s from box %d for box %d",
			formatOre(pj.Held), d.boxName(pj.Payer), d.boxName(pj.Runner), pj.Output, pj.Work, formatOre(pay), d.publisher, d.runner())
	}
	sampled := "not sampled for a check (5 % of jobs are, by the hash of the block that paid them)"
	for _, c := range st.JobsToCheck() {
		if c.Job == pj.Job && c.Requester == pj.Requester {
			sampled = "sampled for a check by the hash of its block: the committee re-runs it"
		}
	}
	fmt.Fprintf(&b, "block %d took it: box %d's escrow paid %s (%d work units × %s / 2^30, to the base unit; escrow now %s), held for box %d until epoch %d (the challenge window; now %d), %s\n",
		pj.Height, d.publisher, formatOre(pj.Held), r.Work, formatOre(price), formatOre(st.Escrow(pub.ID())), d.runner(), pj.Release, st.Epoch(), sampled)
	bd := st.Bond(run.ID())
	fmt.Fprintf(&b, "box %d's bond: %s, %s of it staked on jobs under challenge; a proven mismatch would return the pay to box %d and forfeit the bond",
		d.runner(), formatOre(bd.Amount), formatOre(bd.Staked), d.publisher)
	return b.String(), nil
}

// runner is the box that lends its CPU in the demo: the getter, a plain
// box, not a coordinator (coordinators check jobs).
func (d *demo) runner() int { return d.getter }

// addText adds a generated text (lines of words, so gzip has something
// to compress) on the publisher's box.
func (d *demo) addText(ctx context.Context) (cid.Cid, []byte, error) {
	words := strings.Fields("ore boxes serve content to their neighbours and lend idle cpu to functions over it the ledger pays each delivery and job")
	var t bytes.Buffer
	x := uint64(time.Now().UnixNano()) | 1
	for t.Len() < demoComputeInput {
		for i := range 12 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if i > 0 {
				t.WriteByte(' ')
			}
			t.WriteString(words[x%uint64(len(words))])
		}
		t.WriteByte('\n')
	}
	text := t.Bytes()[:demoComputeInput]
	res, err := d.net.Nodes[d.publisher].Add(ctx, files.NewBytesFile(text))
	if err != nil {
		return cid.Undef, nil, err
	}
	return res.Root, text, nil
}

// waitFunction waits until the publisher's ledger knows the function.
func (d *demo) waitFunction(ctx context.Context, fn cid.Cid) error {
	wctx, cancel := context.WithTimeout(ctx, 15*demoEpoch)
	defer cancel()
	for {
		if st, err := d.net.Nodes[d.publisher].LedgerState(wctx); err == nil {
			if _, ok := st.Function(fn); ok {
				return nil
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the function's registration is in no final block after %s", 15*demoEpoch)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// demoJobAnswer is a job's redirect through the gateway.
type demoJobAnswer struct {
	location, cache string
	claim           *pod.JobReceipt
	took            time.Duration
}

// demoJobRequest asks the gateway for a job without following its
// redirect, and checks the runner's claim it carries.
func demoJobRequest(ctx context.Context, u string) (demoJobAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return demoJobAnswer{}, err
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return demoJobAnswer{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	took := time.Since(start)
	if resp.StatusCode != http.StatusFound {
		return demoJobAnswer{}, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	raw, err := base64.RawURLEncoding.DecodeString(resp.Header.Get(gateway.ClaimHeader))
	if err != nil {
		return demoJobAnswer{}, fmt.Errorf("the gateway's %s: %w", gateway.ClaimHeader, err)
	}
	claim, err := pod.UnmarshalJobReceipt(raw)
	if err != nil {
		return demoJobAnswer{}, fmt.Errorf("the gateway's %s: %w", gateway.ClaimHeader, err)
	}
	if err := claim.VerifyRunner(); err != nil {
		return demoJobAnswer{}, fmt.Errorf("the gateway's claim: %w", err)
	}
	loc := resp.Header.Get("Location")
	if loc != "/ipfs/"+claim.Output.String() {
		return demoJobAnswer{}, fmt.Errorf("the gateway redirects to %s, its claim names %s", loc, claim.Output)
	}
	return demoJobAnswer{location: loc, cache: resp.Header.Get(gateway.CacheHeader), claim: claim, took: took}, nil
}

// gatewayOutput reads the job's output through the gateway, checks it
// gunzips to text, and returns its size.
func (d *demo) gatewayOutput(ctx context.Context, loc string, text []byte) (int, error) {
	u := "http://" + d.net.Nodes[d.gateway].GatewayAddr() + loc
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	gz, err := io.ReadAll(io.LimitReader(resp.Body, 2*demoComputeInput))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return 0, fmt.Errorf("the job's output: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(zr, 2*demoComputeInput))
	if err != nil {
		return 0, fmt.Errorf("the job's output: %w", err)
	}
	if !bytes.Equal(plain, text) {
		return 0, errors.New("the job's output does not gunzip to its input")
	}
	return len(gz), nil
}

func short(c cid.Cid) string { return c.String()[:16] + "…" }

func jobIDShort(r *pod.JobReceipt) []byte {
	id := r.JobID()
	return id[:8]
}
