package intake

import (
	"sort"
	"sync"

	"github.com/orecdn/ore/pod"
)

// Pool keeps the latest (highest sequence) receipt per (server, client,
// root, epoch). It is safe for concurrent use.
type Pool struct {
	mu    sync.Mutex
	m     map[pod.Key]*pod.Receipt
	added map[uint64]uint64 // receipts kept so far, per epoch
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{m: make(map[pod.Key]*pod.Receipt), added: make(map[uint64]uint64)}
}

// Add keeps r if it supersedes what the pool holds for its key and reports
// whether it did.
func (p *Pool) Add(r *pod.Receipt) bool {
	k := r.Key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.m[k]; ok && !r.Supersedes(old) {
		return false
	}
	p.m[k] = r
	p.added[r.Epoch]++
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
		}
	}
	p.mu.Unlock()
}

// Forget drops receipts of epochs before epoch (no block may take them).
func (p *Pool) Forget(before uint64) {
	p.mu.Lock()
	for k := range p.m {
		if k.Epoch < before {
			delete(p.m, k)
		}
	}
	for e := range p.added {
		if e < before {
			delete(p.added, e)
		}
	}
	p.mu.Unlock()
}

// Len is the number of receipts held.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
