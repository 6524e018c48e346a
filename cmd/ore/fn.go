package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/node"
)

// Functions: WASI modules published as content, run over content (package
// compute).
const (
	apiFnPublish = "/api/v0/fn/publish"
	apiFnRun     = "/api/v0/fn/run"
)

// jobInfo is what the API answers for a job.
type jobInfo struct {
	Job    string   `json:"job"` // the job's ID, hex
	Fn     string   `json:"fn"`
	Input  string   `json:"input"`
	Args   []string `json:"args"`
	Output string   `json:"output"`
	Work   uint64   `json:"work"`
	Runner string   `json:"runner"`
	Cached bool     `json:"cached"`
	Claim  string   `json:"claim"` // the runner's signed claim (pod.JobReceipt), base64url
	// Warning: the job is done but something after it failed (the
	// receipt's submission to the ledger).
	Warning string `json:"warning,omitempty"`
}

func newJobInfo(o compute.Outcome) jobInfo {
	r := o.Claim
	id := r.JobID()
	return jobInfo{Job: hex.EncodeToString(id[:]), Fn: r.Fn.String(), Input: r.Input.String(), Args: r.Args,
		Output: r.Output.String(), Work: r.Work, Runner: r.Runner.String(), Cached: o.Cached,
		Claim: base64.RawURLEncoding.EncodeToString(r.Marshal())}
}

func (s *apiServer) fnRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+apiFnPublish, s.fnPublish)
	mux.HandleFunc("POST "+apiFnRun, s.fnRun)
}

func apiError(w http.ResponseWriter, code int, err error) {
	http.Error(w, err.Error(), code)
}

// fnPublish takes the module's bytes as the body and the limits in the query.
func (s *apiServer) fnPublish(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lim := compute.DefaultLimits()
	for _, p := range []struct {
		name string
		set  func(uint64)
	}{
		{"work", func(v uint64) { lim.Work = v }},
		{"memory_pages", func(v uint64) { lim.MemoryPages = uint32(min(v, 1<<32-1)) }},
		{"output", func(v uint64) { lim.Output = int64(min(v, 1<<62)) }},
	} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				apiError(w, http.StatusBadRequest, fmt.Errorf("%s=%q is not a number", p.name, v))
				return
			}
			p.set(n)
		}
	}
	mod, err := io.ReadAll(http.MaxBytesReader(w, r.Body, compute.MaxModuleSize))
	if err != nil {
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("reading the module (at most %d bytes): %w", compute.MaxModuleSize, err))
		return
	}
	var price *uint64
	if v := q.Get("price"); v != "" {
		p, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			apiError(w, http.StatusBadRequest, fmt.Errorf("price=%q is not a number", v))
			return
		}
		price = &p
	}
	info, err := s.n.PublishFunction(r.Context(), mod, lim, price)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, compute.ErrBadModule) || errors.Is(err, compute.ErrBadFunction) {
			code = http.StatusUnprocessableEntity
		}
		apiError(w, code, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(info)
}

func (s *apiServer) fnRun(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fn, err := node.ParseCID(q.Get("fn"))
	if err != nil {
		apiError(w, http.StatusBadRequest, fmt.Errorf("fn: %w", err))
		return
	}
	input, err := node.ParseCID(q.Get("input"))
	if err != nil {
		apiError(w, http.StatusBadRequest, fmt.Errorf("input: %w", err))
		return
	}
	if on := q.Get("on"); on != "" {
		runner, err := peer.Decode(on)
		if err != nil {
			apiError(w, http.StatusBadRequest, fmt.Errorf("on: %w", err))
			return
		}
		var opts []node.JobOption
		if q.Get("verify") == "1" {
			opts = append(opts, node.VerifyJob())
		}
		rc, err := s.n.RunJobOn(r.Context(), runner, fn, input, q["arg"], opts...)
		if err != nil && rc == nil {
			apiError(w, jobErrorStatus(err), err)
			return
		}
		info := newJobInfo(compute.Outcome{Claim: rc})
		if err != nil {
			info.Warning = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)
		return
	}
	out, err := s.n.RunJob(r.Context(), fn, input, q["arg"])
	if err != nil {
		apiError(w, jobErrorStatus(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(newJobInfo(out))
}

// jobErrorStatus maps a job's failure to the status the API and the
// gateway answer.
func jobErrorStatus(err error) int {
	switch {
	case errors.Is(err, compute.ErrLimit), errors.Is(err, compute.ErrFunction),
		errors.Is(err, compute.ErrBadModule), errors.Is(err, compute.ErrBadFunction):
		return http.StatusUnprocessableEntity
	case errors.Is(err, compute.ErrUnknownFunction):
		return http.StatusNotFound
	case errors.Is(err, node.ErrJobMismatch):
		return http.StatusConflict
	case errors.Is(err, compute.ErrMemoryBudget):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

func cmdFn(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: ore fn register MODULE.wasm | ore fn run FN INPUT [-- ARGS...]", errUsage)
	}
	switch args[0] {
	case "register":
		return cmdFnPublish(ctx, e, args[1:])
	case "run":
		return cmdFnRun(ctx, e, args[1:])
	}
	return fmt.Errorf("%w: ore fn has register and run, not %q", errUsage, args[0])
}

// cmdFnPublish publishes the module and its descriptor on the box: the
// descriptor's CID names the function.
func cmdFnPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fn register", "MODULE.wasm [flags]")
	repo := repoFlag(e, fs)
	def := compute.DefaultLimits()
	work := fs.Uint64("work", def.Work, "work units a job may spend (WebAssembly instructions executed)")
	memory := fs.String("memory", humanize.IBytes(uint64(def.MemoryPages)*65536), "linear memory a job may use (whole 64 KiB pages)")
	output := fs.String("output", humanize.IBytes(uint64(def.Output)), "bytes a job may write")
	price := fs.String("price", "", "register the function on the ledger at this price in ore per GiWork (2^30 work units), like 0.001; needs a ledger network with rules 4")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "one MODULE.wasm"); err != nil {
		return err
	}
	mem, err := sizeArg("memory", *memory, "256MiB")
	if err != nil {
		return err
	}
	outb, err := sizeArg("output", *output, "64MiB")
	if err != nil {
		return err
	}
	mod, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	q := url.Values{}
	q.Set("work", strconv.FormatUint(*work, 10))
	q.Set("memory_pages", strconv.FormatUint(mem/65536, 10))
	q.Set("output", strconv.FormatUint(outb, 10))
	if *price != "" {
		p, err := parseOre(*price)
		if err != nil {
			return fmt.Errorf("%w: --price: %v", errUsage, err)
		}
		q.Set("price", strconv.FormatUint(p, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+apiFnPublish+"?"+q.Encode(), bytes.NewReader(mod))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := c.do(req)
	if err != nil {
		return withHint(*repo, err)
	}
	defer resp.Body.Close()
	var info node.FunctionInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(info)
	}
	if info.Registered {
		fmt.Fprintf(e.stdout, "registered on the ledger at %d base units per GiWork (final with the next block)\n", info.Price)
	}
	fmt.Fprintf(e.stdout, "function %s\nmodule   %s (%s metered)\nlimits   %d work units, %s memory, %s output\n",
		info.Fn, info.Module, humanize.IBytes(uint64(info.Size)), info.Limits.Work,
		humanize.IBytes(uint64(info.Limits.MemoryPages)*65536), humanize.IBytes(uint64(info.Limits.Output)))
	return nil
}

func cmdFnRun(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fn run", "FN INPUT [flags] [-- ARGS...]")
	repo := repoFlag(e, fs)
	asJSON := fs.Bool("json", false, "print JSON")
	on := fs.String("on", "", "a runner's peer ID: ask that box to run the job (it must lend CPU: ore init --compute-share), fetch the output and countersign its receipt (sent to the ledger on a rules-4 network)")
	verify := fs.Bool("verify", false, "with --on: run the job here too and countersign only if the runner's output and work match")
	// The function's arguments follow "--" (they may start with a dash).
	var fnArgs []string
	for i, a := range args {
		if a == "--" {
			fnArgs = args[i+1:]
			args = args[:i]
			break
		}
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("%w: ore fn run FN INPUT [ARGS...]", errUsage)
	}
	fnArgs = append(pos[2:], fnArgs...)
	for _, s := range pos[:2] {
		if _, err := cid.Decode(s); err != nil {
			return fmt.Errorf("%w: %q is not a CID: %v", errUsage, s, err)
		}
	}
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	q := url.Values{"fn": {pos[0]}, "input": {pos[1]}, "arg": fnArgs}
	if *on != "" {
		if _, err := peer.Decode(*on); err != nil {
			return fmt.Errorf("%w: --on %q is not a peer ID: %v", errUsage, *on, err)
		}
		q.Set("on", *on)
		if *verify {
			q.Set("verify", "1")
		}
	} else if *verify {
		return fmt.Errorf("%w: --verify checks a runner: give one with --on", errUsage)
	}
	var info jobInfo
	if err := c.postJSON(ctx, apiFnRun+"?"+q.Encode(), &info); err != nil {
		return withHint(*repo, err)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(info)
	}
	how := "run on this box"
	if info.Runner != "" && *on != "" {
		how = "run by " + info.Runner + ", countersigned by this box"
	}
	if info.Cached {
		how = "cached: answered from the box's index, not run again"
	}
	fmt.Fprintf(e.stdout, "output %s\nwork   %d units\njob    %s (%s)\nget it with: ore get %s -o FILE\n",
		info.Output, info.Work, info.Job, how, info.Output)
	if info.Warning != "" {
		fmt.Fprintln(e.stderr, "warning:", info.Warning)
	}
	return nil
}
