package gateway

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/pod"
)

// Jobs through the gateway. An app asks for a function of some content
// the way it asks an edge CDN for a resized image (Fastly's Image
// Optimizer takes ?width=, Cloudflare its options in the path): the
// content's own URL with the function in the query,
//
//	GET /ipfs/{input}?ore-fn={function}&ore-arg=a&ore-arg=b
//
// answered with a redirect to /ipfs/{output} once the job's output is
// known (run now, or found in the box's index). The output is then
// served like any content, with its own ETag and immutable caching: the
// caching headers stay truthful, since /ipfs/{input} never answers with
// bytes that are not the input's. Parameters take the ore- prefix, as
// the ticket's does, so they never clash with an app's own or with the
// gateway's (format, filename, download).
const (
	FnParam  = "ore-fn"
	ArgParam = "ore-arg"
)

// Headers of a job's redirect.
const (
	JobHeader   = "Ore-Job"       // the job's ID, hex
	WorkHeader  = "Ore-Work"      // the work units the job cost
	ClaimHeader = "Ore-Job-Claim" // the runner's signed claim (pod.JobReceipt), base64url
	CacheHeader = "Ore-Job-Cache" // hit: answered from the index; miss: run for this request; final: from the ledger's final outputs
	LimitHeader = "Ore-Limit"     // on a 422 for a job over a limit: which one
)

// JobRedirectMaxAge is how long a client may cache a job's redirect. The
// mapping is a function of the job, but until a block records it, it is
// the runner's claim: an hour, not forever.
const JobRedirectMaxAge = 3600

// FinalRedirectMaxAge is how long a client may cache the redirect of a
// job whose output the ledger records past its challenge window (no
// Ore-Job-Claim then: the mapping stands on a final block). A day: the
// ledger keeps the record that long (ledger.FinalJobEpochs at 10 s
// epochs), and may mark it disputed.
const FinalRedirectMaxAge = 86400

// Jobs is a Backend that runs functions over content (package compute).
type Jobs interface {
	RunJob(ctx context.Context, fn, input cid.Cid, args []string) (compute.Outcome, error)
}

// serveJob answers a request for a function of input.
func (g *Gateway) serveJob(w http.ResponseWriter, r *http.Request, input cid.Cid, rest string) {
	jobs, ok := g.backend.(Jobs)
	if !ok {
		g.fail(w, http.StatusNotImplemented, "this gateway runs no functions")
		return
	}
	if strings.Contains(strings.Trim(rest, "/"), "/") {
		g.fail(w, http.StatusBadRequest, "a function's input is a file's CID, without a path")
		return
	}
	q := r.URL.Query()
	fn, err := cid.Decode(q.Get(FnParam))
	if err != nil {
		g.fail(w, http.StatusBadRequest, fmt.Sprintf("%s=%q is not a CID: %v", FnParam, q.Get(FnParam), err))
		return
	}
	args := q[ArgParam]
	if err := pod.CheckJobArgs(args); err != nil {
		g.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.MaxRequestDuration)
	defer cancel()
	out, err := jobs.RunJob(ctx, fn, input, args)
	if err != nil {
		g.jobFailed(w, r, err)
		return
	}
	if c := out.Claim; c != nil {
		id := c.JobID()
		w.Header().Set(JobHeader, hex.EncodeToString(id[:]))
		w.Header().Set(WorkHeader, fmt.Sprint(c.Work))
		w.Header().Set(ClaimHeader, base64.RawURLEncoding.EncodeToString(c.Marshal()))
		if out.Cached {
			w.Header().Set(CacheHeader, "hit")
		} else {
			w.Header().Set(CacheHeader, "miss")
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", JobRedirectMaxAge))
		http.Redirect(w, r, "/ipfs/"+c.Output.String(), http.StatusFound)
		return
	}
	f := out.Final
	if f == nil {
		g.fail(w, http.StatusBadGateway, "the box answered the job with neither a claim nor a ledger record")
		return
	}
	w.Header().Set(JobHeader, hex.EncodeToString(f.Job[:]))
	w.Header().Set(WorkHeader, fmt.Sprint(f.Work))
	w.Header().Set(CacheHeader, "final")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", FinalRedirectMaxAge))
	http.Redirect(w, r, "/ipfs/"+f.Output.String(), http.StatusFound)
}

// jobFailed answers a job's failure: 422 with the function's message or
// the limit it hit (deterministic: the same job fails the same way on
// every box), 404 when the function or input cannot be found, 502 when
// the box could not run it.
func (g *Gateway) jobFailed(w http.ResponseWriter, r *http.Request, err error) {
	var limit string
	for _, l := range []struct {
		err  error
		name string
	}{{compute.ErrWorkLimit, "work"}, {compute.ErrMemoryLimit, "memory"}, {compute.ErrOutputLimit, "output"}, {compute.ErrStackLimit, "call-depth"}} {
		if errors.Is(err, l.err) {
			limit = l.name
		}
	}
	switch {
	case r.Context().Err() != nil:
		return // the client left
	case limit != "":
		w.Header().Set(LimitHeader, limit)
		g.fail(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, compute.ErrFunction), errors.Is(err, compute.ErrBadModule),
		errors.Is(err, compute.ErrBadFunction), errors.Is(err, pod.ErrBadJob):
		g.fail(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, compute.ErrUnknownFunction), errors.Is(err, ErrNotFound):
		g.fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		g.fail(w, http.StatusGatewayTimeout, err.Error())
	case errors.Is(err, compute.ErrMemoryBudget):
		g.fail(w, http.StatusServiceUnavailable, err.Error()) // this box's bound, not the function's
	default:
		g.fail(w, http.StatusBadGateway, err.Error())
	}
}
