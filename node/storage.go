package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/storeproof"
)

// Proofs of storage (RulesV5; the design is package storeproof's): a box
// that an order names for a root whose storage a publisher offered
// answers each round's challenges from the bytes in its store and submits
// the proofs; the ledger pays or withholds. This file is wiring only: the
// engine is storeproof's, the rules the ledger's.

// rootBytes opens the committed bytes of a root held in the store: its
// DAG's blocks, raw, depth first (storeproof's order), read from local
// blocks only: a box that dropped some cannot read them back here.
func (n *Node) rootBytes(ctx context.Context, root cid.Cid) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(n.walkLocal(ctx, root, func(b blocks.Block) error {
				_, err := pw.Write(b.RawData())
				return err
			}))
		}()
		return pr, nil
	}
}

// CommitRoot is the commitment to a root this box holds whole: what its
// publisher puts in a storage offer (ledger.NewStorage).
func (n *Node) CommitRoot(ctx context.Context, root cid.Cid) (storeproof.Commitment, error) {
	r, err := n.rootBytes(ctx, root)()
	if err != nil {
		return storeproof.Commitment{}, err
	}
	defer r.Close()
	t, err := storeproof.NewTree(r)
	if err != nil {
		return storeproof.Commitment{}, fmt.Errorf("node: commit to %s (fetch or add it whole first): %w", root, err)
	}
	return t.Commitment(), nil
}

// StorageTx is the storage offer of root (which this box registered):
// its commitment, computed from the store, at pricePerGiB per GiB per
// epoch for replicas boxes through epoch until.
func (n *Node) StorageTx(ctx context.Context, root cid.Cid, pricePerGiB uint64, replicas uint32, until uint64) (ledger.Tx, error) {
	c, err := n.CommitRoot(ctx, root)
	if err != nil {
		return ledger.Tx{}, err
	}
	return ledger.NewStorage("", 0, root, c, pricePerGiB, replicas, until), nil
}

// ProofResult is what ProveStorage did for one challenge.
type ProofResult struct {
	Root  cid.Cid
	Round uint64
	Bytes int   // the proof's size
	Err   error // why no proof was submitted (storeproof.ErrMismatch: declined)
}

// proofs remembers the rounds this box submitted a proof of, per root, so
// a poll does not resubmit while the block that takes it is on its way.
type proofs struct {
	sync.Mutex
	sent map[cid.Cid]uint64 // root -> round+1
}

// ProveStorage answers this box's open challenges as of the ledger state
// it syncs: for each, it reads the root from the store, builds the proof
// and submits it. A root whose bytes do not match the offer's commitment
// is declined (logged; no proof can be paid for it).
func (n *Node) ProveStorage(ctx context.Context) ([]ProofResult, error) {
	st, err := n.LedgerState(ctx)
	if err != nil {
		return nil, err
	}
	var out []ProofResult
	for _, ch := range st.Challenges(n.ID()) {
		n.proofs.Lock()
		sent := n.proofs.sent[ch.Root] == ch.Round+1
		n.proofs.Unlock()
		if sent {
			continue
		}
		res := ProofResult{Root: ch.Root, Round: ch.Round}
		p, err := storeproof.ProveFrom(n.rootBytes(ctx, ch.Root), ch.Commitment, ch.Indices)
		if err == nil {
			res.Bytes = p.Size()
			err = n.SubmitTx(ctx, ledger.NewProofTx(n.ID(), ch.Root, ch.Round, p))
		}
		switch {
		case errors.Is(err, storeproof.ErrMismatch):
			n.log.Warn("declining to store a root for pay: its bytes do not match the publisher's commitment", "root", ch.Root, "err", err)
		case err != nil:
			n.log.Warn("storage proof not submitted", "root", ch.Root, "round", ch.Round, "err", err)
		default:
			n.log.Info("storage proof submitted", "root", ch.Root, "round", ch.Round, "bytes", res.Bytes)
		}
		if err == nil || errors.Is(err, storeproof.ErrMismatch) {
			n.proofs.Lock()
			if n.proofs.sent == nil {
				n.proofs.sent = make(map[cid.Cid]uint64)
			}
			n.proofs.sent[ch.Root] = ch.Round + 1
			n.proofs.Unlock()
		}
		res.Err = err
		out = append(out, res)
	}
	return out, nil
}

// proveEvery is how often a box looks for challenges: five times in a
// round's proof window.
func proveEvery(g *ledger.Genesis) time.Duration {
	return max(time.Second, g.EpochLength*time.Duration(g.ProofWindow())/5)
}

// startProving answers challenges in the background on a network whose
// rules pay storage.
func (n *Node) startProving() {
	g := n.cfg.Genesis
	if g == nil || g.Rules < ledger.RulesV5 {
		return
	}
	n.every(proveEvery(g), func(ctx context.Context) {
		if _, err := n.ProveStorage(ctx); err != nil && ctx.Err() == nil {
			n.log.Debug("storage challenges", "err", err)
		}
	})
}
