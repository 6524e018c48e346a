package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
)

const (
	apiLedgerState  = "/api/v0/ledger/state"
	apiLedgerBlocks = "/api/v0/ledger/blocks"
	apiLedgerVerify = "/api/v0/ledger/verify"
	apiLedgerTx     = "/api/v0/ledger/tx"
)

// ledgerRoutes: state, blocks and verify only read (a box that is no
// coordinator syncs the chain from the committee to answer, which changes
// nothing the operator owns); tx signs with the box's key and spends its
// balance, so it is POST, and like every route it needs the API token.
func (s *apiServer) ledgerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+apiLedgerState, s.ledgerState)
	mux.HandleFunc("GET "+apiLedgerBlocks, s.ledgerBlocks)
	mux.HandleFunc("GET "+apiLedgerVerify, s.ledgerVerify)
	mux.HandleFunc("POST "+apiLedgerTx, s.ledgerTx)
}

// ledgerStateInfo is `ore ledger balance`: node.Account (which the
// dashboard shows too) and, when asked, a ticket.
type ledgerStateInfo struct {
	node.AccountView
	// Ticket is what the ledger knows of the ticket asked for (ticket=ID
	// or the ticket's URL form).
	Ticket *ledgerTicket `json:"ticket,omitempty"`
}

type ledgerTicket struct {
	ID        string `json:"id"`
	Known     bool   `json:"known"` // the ledger learned it (and has not yet forgotten it)
	Publisher string `json:"publisher,omitempty"`
	Cap       uint64 `json:"cap_bytes,omitempty"`
	Spent     uint64 `json:"spent_bytes,omitempty"`
	Expires   uint64 `json:"expires_epoch,omitempty"`
}

func (s *apiServer) ledgerState(w http.ResponseWriter, r *http.Request) {
	st, err := s.n.LedgerState(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	account := s.n.ID()
	if a := r.URL.Query().Get("account"); a != "" {
		if account, err = peer.Decode(a); err != nil {
			http.Error(w, fmt.Sprintf("%q is not a peer ID: %v", a, err), http.StatusBadRequest)
			return
		}
	}
	info := ledgerStateInfo{AccountView: node.Account(st, account)}
	if v := r.URL.Query().Get("ticket"); v != "" {
		id, err := ticketID(v)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		t := &ledgerTicket{ID: hex.EncodeToString(id[:])}
		var pub peer.ID
		pub, t.Cap, t.Spent, t.Expires, t.Known = st.Ticket(id)
		if t.Known {
			t.Publisher = pub.String()
		}
		info.Ticket = t
	}
	writeJSON(w, info)
}

type blockInfo struct {
	Height   uint64 `json:"height"`
	Epoch    uint64 `json:"epoch"`
	Hash     string `json:"hash"`
	Prev     string `json:"prev"`
	Proposer string `json:"proposer"`
	Time     string `json:"time"`
	Txs      int    `json:"txs"`
	Receipts int    `json:"receipts"`
	Sigs     int    `json:"signatures"`
	Final    bool   `json:"final"`
}

func (s *apiServer) ledgerBlocks(w http.ResponseWriter, r *http.Request) {
	from := uint64(1)
	if f := r.URL.Query().Get("from"); f != "" {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			http.Error(w, "bad from height "+f, http.StatusBadRequest)
			return
		}
		from = v
	}
	_, blocks, err := s.n.LedgerView(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	g := s.n.Genesis()
	out := []blockInfo{}
	for _, b := range blocks {
		if b.Header.Height < from {
			continue
		}
		h := b.Hash()
		bi := blockInfo{Height: b.Header.Height, Epoch: b.Header.Epoch, Hash: hex.EncodeToString(h[:]),
			Prev: hex.EncodeToString(b.Header.Prev[:]), Proposer: b.Header.Proposer.String(),
			Time: time.Unix(0, b.Header.Time).UTC().Format(time.RFC3339Nano), Txs: len(b.Txs),
			Sigs: b.VerifySignatures(g), Final: b.Final(g)}
		for _, tx := range b.Txs {
			if tx.Kind == ledger.KindReceipt {
				bi.Receipts++
			}
		}
		out = append(out, bi)
	}
	writeJSON(w, out)
}

type verifyInfo struct {
	Blocks    int            `json:"blocks"`
	Height    uint64         `json:"height"`
	StateHash string         `json:"state_hash"`
	Supply    uint64         `json:"supply"`
	Finality  string         `json:"finality"`
	Evidence  []evidenceInfo `json:"evidence,omitempty"`
}

// evidenceInfo is a member the chain excluded for equivocation.
type evidenceInfo struct {
	Member string `json:"member"`
	Block  uint64 `json:"block"` // the block that recorded the evidence
	Height uint64 `json:"height"`
	Round  uint32 `json:"round"`
	Step   string `json:"step"`
	A      string `json:"a"`
	B      string `json:"b"`
}

// ledgerVerify replays the final chain from genesis.
func (s *apiServer) ledgerVerify(w http.ResponseWriter, r *http.Request) {
	_, blocks, err := s.n.LedgerView(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	g := s.n.Genesis()
	for len(blocks) > 0 && !blocks[len(blocks)-1].Final(g) {
		blocks = blocks[:len(blocks)-1] // still gathering signatures
	}
	st, err := ledger.Verify(g, blocks)
	if err != nil {
		http.Error(w, "the chain does not verify: "+err.Error(), http.StatusConflict)
		return
	}
	h := st.Hash()
	v := verifyInfo{Blocks: len(blocks), Height: st.Height(), StateHash: hex.EncodeToString(h[:]), Supply: st.Supply()}
	crashed, byz := g.Tolerates()
	v.Finality = fmt.Sprintf("rule %d: %d of %d members' signatures; tolerates %d crashed, %d byzantine", g.FinalityRule(), g.Quorum(), len(g.Committee), crashed, byz)
	for _, b := range blocks {
		for _, tx := range b.Txs {
			if e := tx.Evidence; tx.Kind == ledger.KindEvidence && e != nil {
				v.Evidence = append(v.Evidence, evidenceInfo{Member: e.Signer.String(), Block: b.Header.Height, Height: e.Height,
					Round: e.Round, Step: e.Step.String(), A: hex.EncodeToString(e.A[:]), B: hex.EncodeToString(e.B[:])})
			}
		}
	}
	writeJSON(w, v)
}

type txInfo struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Nonce  uint64 `json:"nonce"`
	Height uint64 `json:"height,omitempty"` // the block that took it, with wait
	// A pre-warm's root, replicas, last epoch and when that epoch ends.
	Root     string `json:"root,omitempty"`
	Replicas uint32 `json:"replicas,omitempty"`
	Until    uint64 `json:"until,omitempty"`
	Ends     string `json:"ends,omitempty"`
}

// ledgerTx signs an account transaction as this box and submits it:
// kind=deposit&amount=N, kind=register&root=CID[&price=P],
// kind=transfer&to=ID&amount=N (amounts in base units),
// kind=prewarm&root=CID&replicas=N&for=DURATION,
// kind=withdraw&amount=N, kind=cap&amount=N (0 lifts it); wait=1 waits
// until a block takes it.
func (s *apiServer) ledgerTx(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	amount := func() (uint64, error) { return strconv.ParseUint(q.Get("amount"), 10, 64) }
	var tx ledger.Tx
	switch q.Get("kind") {
	case "deposit":
		a, err := amount()
		if err != nil || a == 0 {
			http.Error(w, "deposit needs a positive amount", http.StatusBadRequest)
			return
		}
		tx = ledger.NewDeposit("", 0, a)
	case "withdraw":
		a, err := amount()
		if err != nil || a == 0 {
			http.Error(w, "withdraw needs a positive amount", http.StatusBadRequest)
			return
		}
		tx = ledger.NewWithdraw("", 0, a)
	case "cap":
		a, err := amount()
		if err != nil {
			http.Error(w, "cap needs an amount (0 lifts the cap)", http.StatusBadRequest)
			return
		}
		tx = ledger.NewSpendCap("", 0, a)
	case "register":
		root, err := node.ParseCID(q.Get("root"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var price uint64
		if p := q.Get("price"); p != "" {
			if price, err = strconv.ParseUint(p, 10, 64); err != nil {
				http.Error(w, "bad price "+p, http.StatusBadRequest)
				return
			}
		}
		var open uint64
		if o := q.Get("open"); o != "" {
			if open, err = strconv.ParseUint(o, 10, 64); err != nil {
				http.Error(w, "bad open budget "+o, http.StatusBadRequest)
				return
			}
		}
		var replicate uint64
		if o := q.Get("replicate"); o != "" {
			if replicate, err = strconv.ParseUint(o, 10, 64); err != nil {
				http.Error(w, "bad replication budget "+o, http.StatusBadRequest)
				return
			}
		}
		if tx, err = s.n.RegisterTx(r.Context(), root, price, open); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if replicate > 0 {
			if tx.Kind != ledger.KindRegisterRoot {
				http.Error(w, "this network's ledger rules pay no replication budget: they pay every receipt of registered content", http.StatusConflict)
				return
			}
			tx = tx.WithReplicate(replicate)
		}
	case "transfer":
		to, err := peer.Decode(q.Get("to"))
		if err != nil {
			http.Error(w, "transfer needs a peer ID to pay", http.StatusBadRequest)
			return
		}
		a, err := amount()
		if err != nil || a == 0 {
			http.Error(w, "transfer needs a positive amount", http.StatusBadRequest)
			return
		}
		tx = ledger.NewTransfer("", to, 0, a)
	case "prewarm":
		pw, status, err := s.prewarmTx(r.Context(), q)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		tx = pw
	case "storage":
		// A storage offer (rules 5): the root, replicas and duration as a
		// pre-warm's, the price per GiB per epoch held, and the commitment
		// this box computes from its store.
		pw, status, err := s.prewarmTx(r.Context(), q)
		if err != nil {
			http.Error(w, strings.Replace(err.Error(), "prewarm", "storage", 1), status)
			return
		}
		price, err := strconv.ParseUint(q.Get("price"), 10, 64)
		if err != nil || price == 0 {
			http.Error(w, "storage needs a positive price per GiB per epoch", http.StatusBadRequest)
			return
		}
		if tx, err = s.n.StorageTx(r.Context(), pw.Root, price, pw.Replicas, pw.Until); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
	case "delegate":
		key, err := peer.Decode(q.Get("to"))
		if err != nil {
			http.Error(w, "delegate needs the peer ID of the key that is to sign tickets", http.StatusBadRequest)
			return
		}
		var until uint64 // 0: revoke
		if q.Get("revoke") == "" {
			d, err := time.ParseDuration(q.Get("for"))
			if err != nil || d <= 0 {
				http.Error(w, "delegate needs a positive duration, like 720h", http.StatusBadRequest)
				return
			}
			p := s.n.Network()
			until = p.EpochAt(time.Now().Add(d + p.EpochLength - 1))
		}
		tx = ledger.NewDelegate("", key, 0, until)
	default:
		http.Error(w, "kind must be deposit, register, transfer, prewarm, withdraw, cap or delegate", http.StatusBadRequest)
		return
	}
	tx, err := s.n.SignAndSubmit(r.Context(), tx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	id := tx.ID()
	info := txInfo{ID: hex.EncodeToString(id[:]), Kind: tx.Kind.String(), Nonce: tx.Nonce}
	if tx.Kind == ledger.KindPrewarm {
		p := s.n.Network()
		end := p.GenesisTime.Add(time.Duration(tx.Until+1) * p.EpochLength)
		info.Root, info.Replicas, info.Until = tx.Root.String(), tx.Replicas, tx.Until
		info.Ends = end.UTC().Format(time.RFC3339)
	}
	if q.Get("wait") != "" {
		ctx, cancel := context.WithTimeout(r.Context(), 12*s.n.Genesis().EpochLength)
		defer cancel()
		for {
			st, err := s.n.LedgerState(ctx)
			if err == nil && st.Nonce(s.n.ID()) >= tx.Nonce {
				info.Height = st.Height()
				break
			}
			select {
			case <-ctx.Done():
				http.Error(w, fmt.Sprintf("submitted (nonce %d) but in no block after %s: it may have been refused; check `ore ledger balance`", tx.Nonce, 12*s.n.Genesis().EpochLength), http.StatusGatewayTimeout)
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	writeJSON(w, info)
}

// prewarmTx reads a pre-warm request (root, replicas, for) and turns its
// duration into an Until epoch: the current epoch as this box sees it (its
// clock through the network's parameters, or the ledger's last block if
// that is later) plus the duration in whole epochs, rounded up. A request
// of exactly MaxPrewarmEpochs is cut by one epoch, so it still holds if the
// block that takes it closes the epoch before this box's clock. It checks
// that this box registered the root, so a refusal comes now rather than as
// a timeout. The status goes with the error.
func (s *apiServer) prewarmTx(ctx context.Context, q url.Values) (ledger.Tx, int, error) {
	root, err := node.ParseCID(q.Get("root"))
	if err != nil {
		return ledger.Tx{}, http.StatusBadRequest, err
	}
	replicas, err := strconv.ParseUint(q.Get("replicas"), 10, 32)
	if err != nil || replicas < 1 || replicas > ledger.MaxPrewarmReplicas {
		return ledger.Tx{}, http.StatusBadRequest, fmt.Errorf("prewarm: replicas %q: ask for 1 to %d boxes", q.Get("replicas"), ledger.MaxPrewarmReplicas)
	}
	d, err := time.ParseDuration(q.Get("for"))
	if err != nil || d <= 0 {
		return ledger.Tx{}, http.StatusBadRequest, fmt.Errorf("prewarm: duration %q: give a positive duration, like 1h or 30m", q.Get("for"))
	}
	p := s.n.Network()
	epochs := uint64((d + p.EpochLength - 1) / p.EpochLength)
	if epochs > ledger.MaxPrewarmEpochs {
		return ledger.Tx{}, http.StatusBadRequest, fmt.Errorf("prewarm: %s is %d epochs of %s; the ledger keeps a pre-warm at most %d epochs (%s): ask for less and renew it before it ends",
			d, epochs, p.EpochLength, ledger.MaxPrewarmEpochs, ledger.MaxPrewarmEpochs*p.EpochLength)
	}
	st, err := s.n.LedgerState(ctx)
	if err != nil {
		return ledger.Tx{}, http.StatusServiceUnavailable, fmt.Errorf("prewarm: reading the ledger: %w", err)
	}
	reg, ok := st.Registration(root)
	switch {
	case !ok:
		return ledger.Tx{}, http.StatusConflict, fmt.Errorf("prewarm: %s is not registered on the ledger: register it first with `ore ledger register %s`", root, root)
	case reg.Publisher != s.n.ID():
		return ledger.Tx{}, http.StatusConflict, fmt.Errorf("prewarm: %s is registered by %s, not by this box (%s): only its publisher may pre-warm it", root, reg.Publisher, s.n.ID())
	}
	now := max(p.EpochAt(time.Now()), st.Epoch())
	until := now + min(epochs, ledger.MaxPrewarmEpochs-1)
	return ledger.NewPrewarm("", 0, root, uint32(replicas), until), 0, nil
}

// ticketID reads a ticket's ID in hex, or the ticket itself in its URL
// form.
func ticketID(v string) ([32]byte, error) {
	var id [32]byte
	if b, err := hex.DecodeString(v); err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id, nil
	}
	tk, err := pod.ParseTicket(v)
	if err != nil {
		return id, fmt.Errorf("%q is neither a ticket ID (64 hex digits) nor a ticket: %w", v, err)
	}
	return tk.ID(), nil
}
