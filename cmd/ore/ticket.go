package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/node"
)

const apiTicket = "/api/v0/ticket"

// ticketInfo is what the API answers for an issued ticket.
type ticketInfo struct {
	Ticket  string `json:"ticket"` // the URL form (base64url)
	ID      string `json:"id"`
	Root    string `json:"root,omitempty"`   // "": every root this box registered
	Client  string `json:"client,omitempty"` // "": any holder
	Cap     uint64 `json:"cap_bytes"`
	Expires uint64 `json:"expires_epoch"`
}

// cmdTicket issues a ticket signed by the box's key.
func cmdTicket(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ticket", "[ROOT] [flags]")
	repo := repoFlag(e, fs)
	client := fs.String("client", "", "the only client peer ID that may spend it (default: any holder, a bearer ticket)")
	capFlag := fs.String("cap", "1GiB", "bytes paid under the ticket, over every box and client")
	forFlag := fs.Duration("for", time.Hour, "how long it stays valid, rounded up to whole epochs")
	publisher := fs.String("publisher", "", "sign for this publisher, as a key it delegated (`ore ledger delegate` on its box); default: this box publishes")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: ticket takes at most one ROOT (none: every root this box registered)", errUsage)
	}
	q := url.Values{}
	if len(pos) == 1 {
		if _, err := node.ParseCID(pos[0]); err != nil {
			return err
		}
		q.Set("root", pos[0])
	}
	if *client != "" {
		if _, err := peer.Decode(*client); err != nil {
			return fmt.Errorf("%w: --client %q is not a peer ID: %v", errUsage, *client, err)
		}
		q.Set("client", *client)
	}
	if *publisher != "" {
		if _, err := peer.Decode(*publisher); err != nil {
			return fmt.Errorf("%w: --publisher %q is not a peer ID: %v", errUsage, *publisher, err)
		}
		q.Set("publisher", *publisher)
	}
	capBytes, err := sizeArg("cap", *capFlag, "1GiB")
	if err != nil {
		return err
	}
	if *forFlag <= 0 {
		return fmt.Errorf("%w: --for %s: give a positive duration, like 1h", errUsage, *forFlag)
	}
	q.Set("cap", strconv.FormatUint(capBytes, 10))
	q.Set("for", forFlag.String())
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	var info ticketInfo
	if err := c.postJSON(ctx, apiTicket+"?"+q.Encode(), &info); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(info)
	}
	what, who := "every root this box registered", "any holder"
	if info.Root != "" {
		what = info.Root
	}
	if info.Client != "" {
		who = info.Client
	}
	fmt.Fprintf(e.stdout, "ticket %s\n  for %s, to %s, up to %s, through epoch %d (id %s…)\n  gateway: /ipfs/ROOT?ore-ticket=%s\n",
		info.Ticket, what, who, humanize.IBytes(info.Cap), info.Expires, info.ID[:16], info.Ticket)
	return nil
}

// ticket issues a ticket: root=CID (none: every root), client=PEER (none:
// a bearer ticket), cap=BYTES, for=DURATION.
func (s *apiServer) ticket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var spec node.TicketSpec
	var err error
	if v := q.Get("root"); v != "" {
		if spec.Root, err = cid.Decode(v); err != nil {
			http.Error(w, fmt.Sprintf("root %q is not a CID: %v", v, err), http.StatusBadRequest)
			return
		}
	}
	if v := q.Get("client"); v != "" {
		if spec.Client, err = peer.Decode(v); err != nil {
			http.Error(w, fmt.Sprintf("client %q is not a peer ID: %v", v, err), http.StatusBadRequest)
			return
		}
	}
	if v := q.Get("publisher"); v != "" {
		if spec.Publisher, err = peer.Decode(v); err != nil {
			http.Error(w, fmt.Sprintf("publisher %q is not a peer ID: %v", v, err), http.StatusBadRequest)
			return
		}
	}
	if spec.Cap, err = strconv.ParseUint(q.Get("cap"), 10, 64); err != nil || spec.Cap == 0 {
		http.Error(w, "cap must be a positive number of bytes", http.StatusBadRequest)
		return
	}
	if spec.For, err = time.ParseDuration(q.Get("for")); err != nil || spec.For <= 0 {
		http.Error(w, "for must be a positive duration, like 1h", http.StatusBadRequest)
		return
	}
	tk, err := s.n.IssueTicket(r.Context(), spec)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	id := tk.ID()
	info := ticketInfo{Ticket: tk.String(), ID: fmt.Sprintf("%x", id), Cap: tk.Cap, Expires: tk.Expires}
	if tk.Root.Defined() {
		info.Root = tk.Root.String()
	}
	if tk.Client != "" {
		info.Client = tk.Client.String()
	}
	writeJSON(w, info)
}
