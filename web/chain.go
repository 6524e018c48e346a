package web

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// Bounds of what the chain follower keeps: it is a cache of figures the
// chain holds, recomputed from genesis after a restart.
const (
	maxEpochFigures = 720  // epochs (2 h at 10 s epochs)
	maxDayFigures   = 90   // days
	maxRoots        = 1024 // registered roots followed
	maxTickets      = 256  // tickets followed, newest kept
)

// Figure is what one account gained and paid in one period, in base units:
// Earned is what the ledger paid it for delivery (its receipts as a
// server), Spent what its escrow paid boxes for delivering its content.
type Figure struct {
	Period string `json:"period"` // an epoch number or a UTC day (YYYY-MM-DD)
	Earned uint64 `json:"earned"`
	Spent  uint64 `json:"spent"`
}

// Offload is what the ledger's receipts say about one registered root's
// delivery: bytes served by other boxes and by the publisher's own box.
type Offload struct {
	Boxes uint64 `json:"boxes_bytes"`
	Own   uint64 `json:"own_bytes"`
}

// TicketView is one ticket the account signed, as the ledger knows it.
type TicketView struct {
	ID      string `json:"id"`
	Root    string `json:"root,omitempty"` // empty: every root of the publisher
	Known   bool   `json:"known"`          // still on the ledger
	Cap     uint64 `json:"cap_bytes"`
	Spent   uint64 `json:"spent_bytes"`
	Expires uint64 `json:"expires_epoch"`
}

// blockSource gives the blocks after a state (node.Node.LedgerBlocksFrom).
type blockSource func(ctx context.Context, base *ledger.State) (*ledger.State, []*ledger.Block, error)

// chain follows the ledger's blocks for one account and keeps the figures
// the chain holds about it, which no single state does: what each block
// paid it, what it spent, its registrations, offload and tickets.
type chain struct {
	me     peer.ID
	g      *ledger.Genesis
	params pod.Params
	blocks blockSource

	mu      sync.Mutex
	st      *ledger.State
	epochs  map[uint64]*Figure
	days    map[string]*Figure
	roots   map[cid.Cid]*Offload // roots this account registered
	rootSeq []cid.Cid            // in order of registration
	tickets []ticketSeen
	err     string
	updated time.Time
}

type ticketSeen struct {
	id   [32]byte
	root cid.Cid
}

func newChain(me peer.ID, g *ledger.Genesis, src blockSource) *chain {
	return &chain{me: me, g: g, params: g.Params(), blocks: src,
		epochs: map[uint64]*Figure{}, days: map[string]*Figure{}, roots: map[cid.Cid]*Offload{}}
}

// refresh reads the blocks since the last refresh and applies them, a
// page at a time (the source hands a bounded number of blocks a call)
// until a page comes back empty.
func (c *chain) refresh(ctx context.Context) error {
	for {
		n, err := c.refreshPage(ctx)
		if err != nil || n == 0 {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// refreshPage reads and applies one page of blocks; it returns how many.
func (c *chain) refreshPage(ctx context.Context) (int, error) {
	c.mu.Lock()
	base := c.st
	c.mu.Unlock()
	_, blocks, err := c.blocks(ctx, base)
	if err == nil && base == nil {
		base, err = ledger.NewState(c.g)
	}
	for _, b := range blocks {
		if err != nil {
			break
		}
		var next *ledger.State
		if next, err = ledger.Apply(base, b); err != nil {
			err = fmt.Errorf("web: block at height %d: %w", b.Header.Height, err)
			break
		}
		c.mu.Lock()
		c.account(base, next, b)
		c.st = next
		c.mu.Unlock()
		base = next
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil && base != nil && err == nil {
		c.st = base
	}
	c.updated = time.Now()
	c.err = ""
	if err != nil {
		c.err = err.Error()
	}
	return len(blocks), err
}

// account adds block b (taking prev to next) to the figures. Within a
// block, an account's balance moves by: withdrawals falling due (escrow to
// balance, before the transactions), its deposits (balance to escrow), its
// transfers out and in, and what receipts paid it; its escrow by the same
// withdrawals and deposits and by what its content's receipts paid. Every
// transaction in a block is valid (Apply refuses the block otherwise), so
// what is left once the others are taken out is the delivery.
func (c *chain) account(prev, next *ledger.State, b *ledger.Block) {
	me := c.me
	var released, deposits, out, in uint64
	if w, ok := prev.Withdrawal(me); ok && w.At <= b.Header.Epoch {
		released = min(w.Amount, prev.Escrow(me))
	}
	// Bytes newly accounted per receipt key within this block.
	paid := map[pod.Key]uint64{}
	for i := range b.Txs {
		t := &b.Txs[i]
		switch t.Kind {
		case ledger.KindDeposit:
			if t.From == me {
				deposits += t.Amount
			}
		case ledger.KindTransfer:
			if t.From == me {
				out += t.Amount
			}
			if t.To == me {
				in += t.Amount
			}
		case ledger.KindRegister, ledger.KindRegisterRoot:
			if t.From == me && t.Root.Defined() {
				c.addRoot(t.Root)
			}
		case ledger.KindTicket:
			if t.Ticket != nil && t.Ticket.Publisher == me {
				c.tickets = append(c.tickets, ticketSeen{id: t.Ticket.ID(), root: t.Ticket.Root})
				if len(c.tickets) > maxTickets {
					c.tickets = c.tickets[len(c.tickets)-maxTickets:]
				}
			}
		case ledger.KindReceipt:
			r := t.Receipt
			o := c.roots[r.Root]
			if o == nil {
				continue
			}
			k := r.Key()
			before, ok := paid[k]
			if !ok {
				before = prev.Paid(k)
			}
			if r.Bytes > before {
				paid[k] = r.Bytes
				if r.Server == me {
					o.Own += r.Bytes - before
				} else {
					o.Boxes += r.Bytes - before
				}
			}
		}
	}
	// Each sum is taken before the difference: the ledger conserves
	// supply, so a negative difference is a rule this reading missed.
	gain, loss := next.Balance(me)+deposits+out, prev.Balance(me)+in+released
	pay, left := prev.Escrow(me)+deposits, released+next.Escrow(me)
	if gain < loss || pay < left {
		c.err = fmt.Sprintf("web: block at height %d moves the account in a way the dashboard does not know: its figures from here on are incomplete", b.Header.Height)
		return
	}
	earned, spent := gain-loss, pay-left
	if earned == 0 && spent == 0 {
		return
	}
	e := b.Header.Epoch
	f := c.epochs[e]
	if f == nil {
		f = &Figure{Period: fmt.Sprint(e)}
		c.epochs[e] = f
		if len(c.epochs) > maxEpochFigures {
			delete(c.epochs, minKey(c.epochs))
		}
	}
	f.Earned += earned
	f.Spent += spent
	day := c.params.GenesisTime.Add(time.Duration(e) * c.params.EpochLength).UTC().Format(time.DateOnly)
	d := c.days[day]
	if d == nil {
		d = &Figure{Period: day}
		c.days[day] = d
		if len(c.days) > maxDayFigures {
			delete(c.days, minKey(c.days))
		}
	}
	d.Earned += earned
	d.Spent += spent
}

func (c *chain) addRoot(root cid.Cid) {
	if _, ok := c.roots[root]; ok || len(c.roots) >= maxRoots {
		return
	}
	c.roots[root] = &Offload{}
	c.rootSeq = append(c.rootSeq, root)
}

func minKey[K interface{ ~uint64 | ~string }, V any](m map[K]V) K {
	var k0 K
	first := true
	for k := range m {
		if first || k < k0 {
			k0, first = k, false
		}
	}
	return k0
}

// chainFigures is a copy of what the follower knows.
type chainFigures struct {
	State   *ledger.State
	Epochs  []Figure // oldest first
	Days    []Figure // oldest first
	Roots   []cid.Cid
	Offload map[cid.Cid]Offload
	Tickets []TicketView // newest first
	Err     string
	Updated time.Time
}

func (c *chain) figures() chainFigures {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := chainFigures{State: c.st, Err: c.err, Updated: c.updated, Offload: map[cid.Cid]Offload{}}
	es := make([]uint64, 0, len(c.epochs))
	for e := range c.epochs {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i] < es[j] })
	for _, e := range es {
		out.Epochs = append(out.Epochs, *c.epochs[e])
	}
	ds := make([]string, 0, len(c.days))
	for d := range c.days {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		out.Days = append(out.Days, *c.days[d])
	}
	out.Roots = append(out.Roots, c.rootSeq...)
	for r, o := range c.roots {
		out.Offload[r] = *o
	}
	for i := len(c.tickets) - 1; i >= 0; i-- {
		t := c.tickets[i]
		v := TicketView{ID: fmt.Sprintf("%x", t.id)}
		if t.root.Defined() {
			v.Root = t.root.String()
		}
		if c.st != nil {
			_, v.Cap, v.Spent, v.Expires, v.Known = c.st.Ticket(t.id)
		}
		out.Tickets = append(out.Tickets, v)
	}
	return out
}
