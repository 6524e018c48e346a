package intake

import (
	"sort"
	"sync"

	"github.com/orecdn/ore/pod"
)

// MaxPoolReceipts bounds the receipts a pool holds. Any two keys can sign
// a valid receipt, so the gossip can carry more than any ledger takes;
// the bound is sized to the ledger's goal: at 20,000 receipts a second,
// a receipt waits in the pool from its arrival to the final block that
// takes it, up to 3 epochs of 10 s, ~600,000 receipts (~0.3 KiB each). A
// full pool refuses receipts of new keys (Refused counts them) and still
// takes newer receipts of the keys it holds: what it already collected
// is not pushed out by a flood.
const MaxPoolReceipts = 1 << 20

// Pool keeps the latest (highest sequence) receipt per (server, client,
// root, epoch), at most MaxPoolReceipts. It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	m       map[pod.Key]*pod.Receipt
	added   map[uint64]uint64 // receipts kept so far, per epoch
	held    map[uint64]int    // receipts held now (len(m) by epoch), for Waiting
	refused uint64            // receipts of new keys refused while full
	max     int
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{m: make(map[pod.Key]*pod.Receipt), added: make(map[uint64]uint64), held: make(map[uint64]int), max: MaxPoolReceipts}
}

// Add keeps r if it supersedes what the pool holds for its key and reports
// whether it did. A full pool keeps no receipt of a new key.
func (p *Pool) Add(r *pod.Receipt) bool {
	k := r.Key()
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.m[k]
	if ok && !r.Supersedes(old) {
		return false
	}
	if !ok && len(p.m) >= p.max {
		p.refused++
		return false
	}
	p.m[k] = r
	p.added[r.Epoch]++
	if !ok {
		p.held[k.Epoch]++
	}
	return true
}

// Added counts the receipts of epoch that Add kept so far (those a block
// took or Done dropped included): a leader that sees it still grow after
// the epoch's end knows that receipts of the epoch are still arriving.
func (p *Pool) Added(epoch uint64) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.added[epoch]
}

// Pending returns the receipts of epochs up to and including epoch, in a
// deterministic order (epoch, then key), without removing them.
func (p *Pool) Pending(epoch uint64) []*pod.Receipt {
	p.mu.Lock()
	out := make([]*pod.Receipt, 0, len(p.m))
	for _, r := range p.m {
		if r.Epoch <= epoch {
			out = append(out, r)
		}
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Epoch != b.Epoch {
			return a.Epoch < b.Epoch
		}
		if a.Server != b.Server {
			return a.Server < b.Server
		}
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		return a.Root.KeyString() < b.Root.KeyString()
	})
	return out
}

// Done drops receipts a final block included, unless a newer one for the
// same key arrived meanwhile.
func (p *Pool) Done(rs []*pod.Receipt) {
	p.mu.Lock()
	for _, r := range rs {
		k := r.Key()
		if cur, ok := p.m[k]; ok && !cur.Supersedes(r) {
			delete(p.m, k)
			p.unhold(k.Epoch)
		}
	}
	p.mu.Unlock()
}

// Forget drops receipts of epochs before epoch (no block may take them).
func (p *Pool) Forget(before uint64) {
	p.mu.Lock()
	old := false // any receipt held of an epoch before: else no scan
	for e := range p.held {
		if e < before {
			old = true
			delete(p.held, e)
		}
	}
	if old {
		for k := range p.m {
			if k.Epoch < before {
				delete(p.m, k)
			}
		}
	}
	for e := range p.added {
		if e < before {
			delete(p.added, e)
		}
	}
	p.mu.Unlock()
}

// Refused counts the receipts of new keys refused because the pool was
// full.
func (p *Pool) Refused() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Len is the number of receipts held.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// Waiting reports whether the pool holds a receipt of an epoch from from
// to to (inclusive): a coordinator that holds one whose epoch's block is
// overdue expects a block (committee, FinalityBFT).
func (p *Pool) Waiting(from, to uint64) bool {
	if from > to {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// By the count per epoch, not a scan of every receipt held: each
	// coordinator asks ten times a second, and a scan holds the pool's
	// lock (and so the intake's Add) over tens of thousands of receipts.
	for e, n := range p.held {
		if n > 0 && e >= from && e <= to {
			return true
		}
	}
	return false
}

// unhold counts one receipt of epoch e less held (mu held).
func (p *Pool) unhold(e uint64) {
	if p.held[e]--; p.held[e] <= 0 {
		delete(p.held, e)
	}
}
