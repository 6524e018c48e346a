package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/node"
)

const (
	apiPinAdd = "/api/v0/pin/add"
	apiPinRm  = "/api/v0/pin/rm"
	apiPinLs  = "/api/v0/pin/ls"
)

// pinInfo is what the pin routes answer.
type pinInfo struct {
	Pins    []cid.Cid `json:"pins,omitempty"`
	Root    string    `json:"root,omitempty"`
	Pinned  bool      `json:"pinned"`
	Fetched int64     `json:"fetched_bytes,omitempty"`
}

// cmdPin adds, removes and lists the roots a box keeps whatever eviction
// says (and announces).
func cmdPin(ctx context.Context, e *env, args []string) error {
	usage := fmt.Errorf("%w: ore pin add CID [--timeout 10m] | ore pin rm CID | ore pin ls", errUsage)
	if len(args) == 0 {
		return usage
	}
	sub, args := args[0], args[1:]
	var want string
	switch sub {
	case "add", "rm":
		want = "[flags] CID"
	case "ls":
		want = "[flags]"
	default:
		return usage
	}
	fs := newFlags(e, "pin "+sub, want)
	repo := repoFlag(e, fs)
	timeout := new(time.Duration)
	if sub == "add" {
		timeout = fs.Duration("timeout", 10*time.Minute, "give up fetching after this long")
	}
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	n := 1
	if sub == "ls" {
		n = 0
	}
	if err := wantArgs(pos, n, map[bool]string{true: "one CID", false: "no arguments"}[n == 1]); err != nil {
		return err
	}
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	var info pinInfo
	switch sub {
	case "add":
		if _, err := node.ParseCID(pos[0]); err != nil {
			return err
		}
		err = c.postJSON(ctx, apiPinAdd+"?"+url.Values{"cid": {pos[0]}, "timeout": {timeout.String()}}.Encode(), &info)
	case "rm":
		if _, err := node.ParseCID(pos[0]); err != nil {
			return err
		}
		err = c.postJSON(ctx, apiPinRm+"?"+url.Values{"cid": {pos[0]}}.Encode(), &info)
	default:
		err = c.getJSON(ctx, apiPinLs, &info)
	}
	if err != nil {
		return withHint(*repo, err)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(info)
	}
	switch {
	case sub == "ls":
		for _, p := range info.Pins {
			fmt.Fprintln(e.stdout, p)
		}
	case sub == "add":
		fmt.Fprintf(e.stdout, "pinned %s\n", info.Root)
	case info.Pinned:
		fmt.Fprintf(e.stdout, "unpinned %s: its blocks are evictable and no longer announced\n", info.Root)
	default:
		fmt.Fprintf(e.stdout, "%s was not pinned\n", info.Root)
	}
	return nil
}

func (s *apiServer) pinAdd(w http.ResponseWriter, r *http.Request) {
	c, ctx, cancel, ok := cidRequest(w, r)
	if !ok {
		return
	}
	defer cancel()
	res, err := s.n.Pin(ctx, c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, pinInfo{Root: c.String(), Pinned: true, Fetched: res.Fetched})
}

func (s *apiServer) pinRm(w http.ResponseWriter, r *http.Request) {
	c, err := node.ParseCID(r.URL.Query().Get("cid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	was, err := s.n.Unpin(r.Context(), c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, pinInfo{Root: c.String(), Pinned: was})
}

func (s *apiServer) pinLs(w http.ResponseWriter, r *http.Request) {
	pins, err := s.n.Pins(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, pinInfo{Pins: pins})
}
