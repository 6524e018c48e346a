package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/orecdn/ore/node"
)

// OwnerView is the box owner's tab: node.Status (what `ore status`
// prints, from the same function) and what only a view over time shows.
type OwnerView struct {
	Status node.Status `json:"status"`
	Uptime int64       `json:"uptime_seconds"`
	// Earnings per epoch and per UTC day, from the blocks the dashboard
	// read since it started (oldest first), split by delivery, storage and
	// compute; Total is every block's since genesis.
	Epochs []Figure `json:"earnings_per_epoch"`
	Days   []Figure `json:"earnings_per_day"`
	Total  Figure   `json:"earnings_total"`
	// Jobs are the jobs this box ran that the ledger took, newest first;
	// JobTotals counts them all. The proof record of the roots it stores
	// is Status.Ledger.Storage (what `ore status` prints).
	Jobs      []JobView `json:"jobs"`
	JobTotals JobTotals `json:"job_totals"`
	// Traffic is the bytes served and fetched per interval, oldest first.
	Traffic []Sample `json:"traffic"`
	// UploadRate is the bytes per second served over the last minute,
	// beside Status.UploadLimit.
	UploadRate float64    `json:"upload_rate"`
	Peers      []PeerView `json:"peer_list"`
	Warnings   []Warning  `json:"warnings"`
	ChainError string     `json:"chain_error,omitempty"`
	// ChainHeight is the height of the last block the figures hold.
	ChainHeight uint64      `json:"chain_height"`
	ChainAt     int64       `json:"chain_read_unix,omitempty"`
	CSRF        string      `json:"-"`
	Cap         capFormView `json:"-"`
}

type capFormView struct {
	Editable bool
	Value    string
}

// PeerView is one connected peer and how it is reached.
type PeerView struct {
	Peer     string `json:"peer"`
	Addr     string `json:"addr"`
	Relayed  bool   `json:"relayed"` // through a relay: signalling only, no blocks
	Sent     int64  `json:"bytes_sent"`
	Received int64  `json:"bytes_received"`
}

// CoordinatorView is a coordinator's tab: the chain head and its
// finality, the leader, the committee's members, the pools and the
// replica plan, from node.Status (what `ore status` prints on the same
// box) and the member's own chain.
type CoordinatorView struct {
	Ledger  *node.StatusLedger  `json:"ledger,omitempty"`
	Members []MemberView        `json:"members"`
	Blocks  []BlockView         `json:"recent_blocks"` // newest first
	Targets []node.StatusTarget `json:"replica_targets"`
	// TargetEpoch is the epoch the replica plan was made in.
	TargetEpoch uint64 `json:"replica_targets_epoch"`
	Error       string `json:"error,omitempty"`
}

// MemberView is one member of the genesis committee.
type MemberView struct {
	Peer      string `json:"peer"`
	Self      bool   `json:"self"`
	Leader    bool   `json:"leader"`
	Connected bool   `json:"connected"`
}

// BlockView is one block of the chain as this member holds it.
type BlockView struct {
	Height     uint64 `json:"height"`
	Epoch      uint64 `json:"epoch"`
	Proposer   string `json:"proposer"`
	Signatures int    `json:"signatures"`
	Final      bool   `json:"final"`
}

// recentBlocks is how many of the newest blocks the coordinator tab lists.
const recentBlocks = 12

func (s *Server) coordinator(ctx context.Context) (CoordinatorView, error) {
	var v CoordinatorView
	c, g := s.n.Committee(), s.n.Genesis()
	if c == nil || g == nil {
		v.Error = "this box is not a coordinator: the coordinator tab shows a committee member's chain (`ore init --role coordinator` with a genesis that names it)"
		return v, nil
	}
	st, err := s.n.Status(ctx)
	if err != nil {
		return v, err
	}
	v.Ledger, v.Targets, v.TargetEpoch = st.Ledger, st.Targets, st.TargetEpoch
	if v.Ledger != nil && v.Ledger.Error != "" {
		v.Error = v.Ledger.Error
	}
	leader := c.LeaderID()
	for _, m := range g.Committee {
		v.Members = append(v.Members, MemberView{Peer: m.ID.String(), Self: m.ID == s.n.ID(), Leader: m.ID == leader,
			Connected: m.ID == s.n.ID() || s.n.Host().Network().Connectedness(m.ID) == network.Connected})
	}
	head := c.State().Height()
	for h := head; h > 0 && head-h < recentBlocks; h-- {
		b, ok := c.Head(h)
		if !ok {
			break
		}
		v.Blocks = append(v.Blocks, BlockView{Height: h, Epoch: b.Header.Epoch, Proposer: b.Header.Proposer.String(),
			Signatures: b.VerifySignatures(g), Final: b.Final(g)})
	}
	return v, nil
}

// PublisherView is the publisher's tab.
type PublisherView struct {
	Account *node.AccountView `json:"account,omitempty"` // what `ore ledger balance` prints
	Roots   []PubRoot         `json:"roots"`
	Spend   []Figure          `json:"spend_per_epoch"` // oldest first
	Tickets []TicketView      `json:"tickets"`
	// Offers are its storage offers the ledger holds; Functions the
	// functions it registered.
	Offers    []OfferView    `json:"storage_offers"`
	Functions []FunctionView `json:"functions"`
	Error     string         `json:"error,omitempty"`
}

// PubRoot is one root the publisher registered.
type PubRoot struct {
	Root     string `json:"root"`
	Price    uint64 `json:"price_per_gib"`
	Size     uint64 `json:"size,omitempty"`
	Open     uint64 `json:"open_budget,omitempty"`
	Replicas int    `json:"replicas"` // providers the DHT found (-1: not looked up yet)
	Target   int    `json:"target"`   // replicas asked for: a pre-warm or the committee's plan (0: none known)
	Offload
}

func (s *Server) owner(ctx context.Context) (OwnerView, error) {
	st, err := s.n.Status(ctx)
	if err != nil {
		return OwnerView{}, err
	}
	v := OwnerView{Status: st, Uptime: int64(time.Since(time.Unix(st.Started, 0)).Seconds()), Traffic: s.hist.list()}
	if s.cfg.Warnings != nil {
		v.Warnings = s.cfg.Warnings.Recent()
	}
	if s.chain != nil {
		f := s.chain.figures()
		v.Epochs, v.Days, v.ChainError = f.Epochs, f.Days, f.Err
		v.Jobs, v.JobTotals = f.Jobs, f.JobTotals
		v.Total = f.Total
		if f.State != nil {
			v.ChainHeight = f.State.Height()
		}
		if !f.Updated.IsZero() {
			v.ChainAt = f.Updated.Unix()
		}
	}
	var sent uint64
	var span int64
	for i := len(v.Traffic) - 1; i >= 0 && span < 60; i-- {
		sent += v.Traffic[i].Sent
		if i > 0 {
			span += v.Traffic[i].Time - v.Traffic[i-1].Time
		} else {
			span += int64(s.cfg.SampleEvery / time.Second)
		}
	}
	if span > 0 {
		v.UploadRate = float64(sent) / float64(span)
	}
	traffic := map[string]node.PeerTraffic{}
	for _, t := range s.n.Traffic() {
		traffic[t.Peer.String()] = t
	}
	for _, c := range s.n.Host().Network().Conns() {
		p := PeerView{Peer: c.RemotePeer().String(), Addr: c.RemoteMultiaddr().String()}
		p.Relayed = strings.Contains(p.Addr, "/p2p-circuit")
		if t, ok := traffic[p.Peer]; ok {
			p.Sent, p.Received = t.BytesSent, t.BytesReceived
		}
		v.Peers = append(v.Peers, p)
		if len(v.Peers) >= 200 {
			break
		}
	}
	v.Cap.Editable = s.cfg.SetDataCap != nil
	return v, nil
}

func (s *Server) publisher(ctx context.Context) PublisherView {
	var v PublisherView
	if s.chain == nil {
		v.Error = "this box has no ledger network: a publisher registers content on a ledger (`ore init --genesis FILE`)"
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.n.LedgerState(ctx)
	if err != nil {
		v.Error = err.Error()
	} else {
		a := node.Account(st, s.n.ID())
		v.Account = &a
	}
	f := s.chain.figures()
	if f.Err != "" && v.Error == "" {
		v.Error = f.Err
	}
	for _, e := range f.Epochs {
		if e.Spent > 0 {
			v.Spend = append(v.Spend, e)
		}
	}
	v.Tickets, v.Offers, v.Functions = f.Tickets, f.Offers, f.Functions
	targets := map[string]int{}
	if v.Account != nil {
		for _, p := range v.Account.Prewarms {
			targets[p.Root] = int(p.Replicas)
		}
	}
	if s.n.Committee() != nil {
		_, ts, _ := s.n.ReplicaTargets()
		for _, t := range ts {
			targets[t.Root.String()] = max(targets[t.Root.String()], t.Replicas)
		}
	}
	reps := s.reps.get()
	for _, r := range f.Roots {
		pr := PubRoot{Root: r.String(), Offload: f.Offload[r], Replicas: -1, Target: targets[r.String()]}
		if st != nil {
			if reg, ok := st.RegistrationOf(s.n.ID(), r); ok {
				pr.Price, pr.Size, pr.Open = reg.PricePerGiB, reg.Size, reg.Open
			}
		}
		if n, ok := reps[r]; ok {
			pr.Replicas = n
		}
		v.Roots = append(v.Roots, pr)
	}
	return v
}

// replicas counts the providers the DHT finds for the publisher's roots,
// refreshed in the background (a look-up takes seconds).
type replicas struct {
	mu   sync.Mutex
	n    map[cid.Cid]int
	last time.Time
}

const (
	// replicasEvery is how often the dashboard looks up providers again;
	// a root not looked up yet waits at most replicasNew.
	replicasEvery   = time.Minute
	replicasNew     = 10 * time.Second
	maxReplicaRoots = 32 // roots looked up per refresh
	maxProviders    = 64
)

func (r *replicas) refresh(ctx context.Context, n *node.Node, roots []cid.Cid) {
	r.mu.Lock()
	fresh := time.Since(r.last) < replicasEvery
	for _, c := range roots {
		if _, ok := r.n[c]; !ok {
			fresh = false
		}
	}
	r.mu.Unlock()
	if fresh || len(roots) == 0 {
		return
	}
	found := map[cid.Cid]int{}
	for i, c := range roots {
		if i >= maxReplicaRoots || ctx.Err() != nil {
			break
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ps, _ := n.DHT().FindProviders(lctx, c, maxProviders)
		cancel()
		found[c] = len(ps) // a look-up that failed found nobody
	}
	r.mu.Lock()
	r.n, r.last = found, time.Now()
	r.mu.Unlock()
}

func (r *replicas) get() map[cid.Cid]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (s *Server) ownerJSON(w http.ResponseWriter, r *http.Request) {
	v, err := s.owner(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, v)
}

func (s *Server) coordinatorJSON(w http.ResponseWriter, r *http.Request) {
	v, err := s.coordinator(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, v)
}

func (s *Server) publisherJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.publisher(r.Context()))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
