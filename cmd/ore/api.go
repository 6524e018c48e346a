package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/web"
)

// The control API: HTTP on loopback, spoken by the CLI to a running daemon.
// Long operations stream newline-delimited JSON: progress lines, then one
// line with the result or an error. Every request passes apiGuard (no
// browser, the API's own Host, the repo's token). A route that changes the
// box (stores, fetches, imports, signs) is POST; a GET only reads what the
// box holds or knows (a ledger read may sync the chain to answer).
const (
	apiAdd    = "/api/v0/add"
	apiFetch  = "/api/v0/fetch"
	apiCat    = "/api/v0/cat"
	apiPeers  = "/api/v0/peers"
	apiStatus = "/api/v0/status"

	apiDagImport = "/api/v0/dag/import"
	apiDagExport = "/api/v0/dag/export"
	apiMetrics   = "/metrics"
)

type apiServer struct {
	n     *node.Node
	guard apiGuard
	repo  string      // where config.json lives (the data cap is saved there)
	dash  *web.Server // nil: no dashboard
}

func (s *apiServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+apiAdd, s.add)
	mux.HandleFunc("POST "+apiFetch, s.fetch)
	mux.HandleFunc("GET "+apiCat, s.cat) // local content only: Open never asks the network
	mux.HandleFunc("GET "+apiPeers, s.peers)
	mux.HandleFunc("GET "+apiStatus, s.status)
	mux.HandleFunc("POST "+apiDagImport, s.dagImport)
	mux.HandleFunc("POST "+apiDagExport, s.dagExport)
	s.ledgerRoutes(mux)
	s.dashboardRoutes(mux)
	// Jobs run functions and store their outputs; publishing stores content.
	s.fnRoutes(mux)
	mux.HandleFunc("POST "+apiTicket, s.ticket)           // signs with the box's key
	mux.HandleFunc("POST "+apiNamePublish, s.namePublish) // signs with the box's key
	mux.HandleFunc("GET "+apiNameResolve, s.nameResolve)
	mux.HandleFunc("POST "+apiPinAdd, s.pinAdd) // fetches what the box lacks
	mux.HandleFunc("POST "+apiPinRm, s.pinRm)
	mux.HandleFunc("GET "+apiPinLs, s.pinLs)
	// Metrics need the token too: the counters tell what the box serves and
	// to whom. Prometheus sends it from a file (README, "Running a box").
	mux.Handle("GET "+apiMetrics, promhttp.HandlerFor(s.n.Metrics(), promhttp.HandlerOpts{}))
	return s.guard.wrap(mux)
}

// stream writes NDJSON lines and flushes each.
type stream struct {
	w   http.ResponseWriter
	enc *json.Encoder
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	return &stream{w: w, enc: json.NewEncoder(w)}
}

func (s *stream) send(v any) {
	_ = s.enc.Encode(v)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

type streamLine struct {
	Progress *node.FetchProgress `json:"progress,omitempty"`
	Added    *node.AddResult     `json:"added,omitempty"`
	Fetched  *node.FetchResult   `json:"fetched,omitempty"`
	Imported *node.ImportResult  `json:"imported,omitempty"`
	Error    string              `json:"error,omitempty"`
}

func (s *apiServer) add(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		http.Error(w, "add wants a multipart body", http.StatusBadRequest)
		return
	}
	dir, err := files.NewFileFromPartReader(multipart.NewReader(r.Body, params["boundary"]), mt)
	if err != nil {
		http.Error(w, "bad multipart body: "+err.Error(), http.StatusBadRequest)
		return
	}
	it := dir.Entries()
	if !it.Next() {
		http.Error(w, "add got no file", http.StatusBadRequest)
		return
	}
	st := newStream(w)
	res, err := s.n.Add(r.Context(), it.Node())
	if err != nil {
		st.send(streamLine{Error: err.Error()})
		return
	}
	st.send(streamLine{Added: &res})
}

// cidRequest reads a request's "cid" and optional "timeout" (which bounds
// the returned context), or answers 400 and reports false.
func cidRequest(w http.ResponseWriter, r *http.Request) (cid.Cid, context.Context, context.CancelFunc, bool) {
	c, err := node.ParseCID(r.URL.Query().Get("cid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return cid.Undef, nil, nil, false
	}
	t := r.URL.Query().Get("timeout")
	if t == "" {
		ctx, cancel := context.WithCancel(r.Context())
		return c, ctx, cancel, true
	}
	d, err := time.ParseDuration(t)
	if err != nil || d <= 0 {
		http.Error(w, "bad timeout "+t, http.StatusBadRequest)
		return cid.Undef, nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return c, ctx, cancel, true
}

func (s *apiServer) fetch(w http.ResponseWriter, r *http.Request) {
	c, ctx, cancel, ok := cidRequest(w, r)
	if !ok {
		return
	}
	defer cancel()
	if v := r.URL.Query().Get("ticket"); v != "" {
		tk, err := pod.ParseTicket(v)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx = node.WithTicket(ctx, tk)
	}
	st := newStream(w)
	progress := make(chan node.FetchProgress, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range progress {
			st.send(streamLine{Progress: &p})
		}
	}()
	res, err := s.n.Fetch(ctx, c, func(p node.FetchProgress) {
		select {
		case progress <- p:
		default: // the client is slow: skip this update
		}
	})
	close(progress)
	<-done
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: the --timeout ran out", err)
		}
		st.send(streamLine{Error: err.Error()})
		return
	}
	st.send(streamLine{Fetched: &res})
}

// cat streams local content as a tar archive whose root entry is named by
// the CID (files.TarWriter, the format Kubo's `get` uses).
func (s *apiServer) cat(w http.ResponseWriter, r *http.Request) {
	c, err := node.ParseCID(r.URL.Query().Get("cid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := s.n.Open(r.Context(), c)
	if err != nil {
		http.Error(w, err.Error()+" (fetch it first)", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	tw, err := files.NewTarWriter(w)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := tw.WriteFile(f, c.String()); err != nil {
		// Headers are gone: cut the stream so the client sees a broken tar.
		panic(http.ErrAbortHandler)
	}
	_ = tw.Close()
}

func (s *apiServer) dagImport(w http.ResponseWriter, r *http.Request) {
	st := newStream(w)
	res, err := s.n.ImportCAR(r.Context(), r.Body)
	if err != nil {
		st.send(streamLine{Error: err.Error()})
		return
	}
	st.send(streamLine{Imported: &res})
}

// dagExport streams a CARv1. The DAG is fetched first, so errors before the
// first byte are plain HTTP errors; a failure mid-stream cuts the stream and
// sets the X-Ore-Error trailer. It is POST, not GET: like `ore get`, the
// export fetches whatever the box lacks, which is network work and stored
// blocks, and an operator who exports a CID expects the whole DAG rather
// than a refusal to fetch.
func (s *apiServer) dagExport(w http.ResponseWriter, r *http.Request) {
	c, err := node.ParseCID(r.URL.Query().Get("cid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := s.n.Fetch(r.Context(), c, nil); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.ipld.car; version=1")
	w.Header().Set("Trailer", "X-Ore-Error")
	if err := s.n.ExportCAR(r.Context(), c, w); err != nil {
		w.Header().Set("X-Ore-Error", err.Error())
	}
}

type peerInfo struct {
	Peer    string            `json:"peer"`
	Addr    string            `json:"addr"`
	Traffic *node.PeerTraffic `json:"traffic,omitempty"`
}

func (s *apiServer) peers(w http.ResponseWriter, r *http.Request) {
	traffic := map[string]node.PeerTraffic{}
	for _, t := range s.n.Traffic() {
		traffic[t.Peer.String()] = t
	}
	var out []peerInfo
	for _, c := range s.n.Host().Network().Conns() {
		p := peerInfo{Peer: c.RemotePeer().String(), Addr: c.RemoteMultiaddr().String()}
		if t, ok := traffic[p.Peer]; ok {
			p.Traffic = &t
		}
		out = append(out, p)
	}
	writeJSON(w, out)
}

// statusInfo is `ore status`: node.Status, which the dashboard shows too.
type statusInfo = node.Status

func (s *apiServer) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.n.Status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// listenLoopback listens on addr and refuses anything but loopback.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("control API address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("control API address %q is not loopback: the API is for this machine only (its token would cross the network in clear), so it listens on 127.0.0.1 or ::1", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control API: %w (another daemon running? set \"api\" in the config to a free port, or 127.0.0.1:0)", err)
	}
	return l, nil
}

// client talks to a daemon's control API.
type client struct {
	base  string
	token string // sent as a bearer token with every request
	http  *http.Client
}

// newClient finds the daemon running on repo: its URL in REPO/api, its
// token in REPO/api.token.
func newClient(repo string) (*client, error) {
	url, err := node.ReadAPIFile(repo)
	if err != nil {
		return nil, err
	}
	token, err := node.ReadAPIToken(repo)
	if err != nil {
		return nil, err
	}
	return &client{base: url, token: token, http: &http.Client{}}, nil
}

// do sends req with the token and turns an answer that is not 2xx into an
// error carrying the daemon's message.
func (c *client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no ore daemon answers at %s (it may have stopped; start it with `ore daemon`): %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, errors.New(strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func (c *client) getJSON(ctx context.Context, path string, v any) error {
	return c.callJSON(ctx, http.MethodGet, path, v)
}

// postJSON POSTs to path (its query holds the arguments) and decodes the
// JSON answer into v.
func (c *client) postJSON(ctx context.Context, path string, v any) error {
	return c.callJSON(ctx, http.MethodPost, path, v)
}

func (c *client) callJSON(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// readStream decodes NDJSON lines, calling onProgress for progress lines,
// and returns the final line.
func readStream(r io.Reader, onProgress func(node.FetchProgress)) (streamLine, error) {
	dec := json.NewDecoder(r)
	for {
		var l streamLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return l, fmt.Errorf("the daemon's answer broke off (did it stop?): %w", err)
		}
		if l.Error != "" {
			return l, errors.New(l.Error)
		}
		if l.Progress != nil {
			if onProgress != nil {
				onProgress(*l.Progress)
			}
			continue
		}
		return l, nil
	}
}
