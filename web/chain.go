package web

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
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
	maxJobs         = 256  // jobs listed, newest kept
	maxHeldJobs     = 1 << 16
	maxFunctions    = 256 // functions registered by the account
)

// Figure is what one account gained and paid in one period, in base units.
// Earned is everything the ledger paid it, split by what for: Storage is
// its proven storage rounds (the growth of its proof records' Earned),
// Compute the pay of its jobs as a runner when the ledger releases it
// (RulesV5: after the job's challenge window), Delivery the rest (its
// receipts as a server, replication orders included). Spent is what its
// escrow and reservations paid others, of which SpentStorage to boxes
// for proven rounds of its storage offers and SpentCompute the jobs paid
// from it when their receipts were taken.
//
// Under rules 4 a job's pay reaches the runner in the block that takes
// its receipt, with nothing on the ledger to tell it from delivery: it
// counts in Delivery and SpentCompute stays 0. A committee member's share
// of a forfeited runner bond counts in Delivery too.
type Figure struct {
	Period       string `json:"period"` // an epoch number or a UTC day (YYYY-MM-DD)
	Earned       uint64 `json:"earned"`
	Delivery     uint64 `json:"delivery"`
	Storage      uint64 `json:"storage"`
	Compute      uint64 `json:"compute"`
	Spent        uint64 `json:"spent"`
	SpentStorage uint64 `json:"spent_storage"`
	SpentCompute uint64 `json:"spent_compute"`
}

// JobView is one job the account ran, as the ledger took its receipt.
type JobView struct {
	Job       string `json:"job"` // pod.JobID, hex
	Fn        string `json:"fn"`
	Requester string `json:"requester"`
	Work      uint64 `json:"work"`
	Pay       uint64 `json:"pay"`   // held, then paid (0: the ledger paid nothing)
	Epoch     uint64 `json:"epoch"` // of the block that took the receipt
	// State is "held" (until epoch Release), "paid", "refunded" (a proof
	// of a mismatch gave the pay back to its payer), or "unpaid" (the
	// ledger paid the job already, or the runner's receipt paid nothing).
	State   string `json:"state"`
	Release uint64 `json:"release_epoch,omitempty"`
}

// JobTotals counts the jobs the account ran that the ledger took.
type JobTotals struct {
	Taken    uint64 `json:"taken"`    // receipts in blocks naming the account as runner
	Held     uint64 `json:"held"`     // under challenge now
	HeldPay  uint64 `json:"held_pay"` // their pay, not yet the account's
	Paid     uint64 `json:"paid"`     // released to the account (or paid at once, rules 4)
	Refunded uint64 `json:"refunded"` // given back by a proof of a mismatch
}

// FunctionView is a function the account registered, as the ledger has it,
// with the jobs its escrow paid under it.
type FunctionView struct {
	Fn       string `json:"fn"`
	Price    uint64 `json:"price_per_giwork"`
	MaxWork  uint64 `json:"max_work"`
	Jobs     uint64 `json:"jobs_paid"` // jobs whose receipts its escrow paid (rules 5)
	JobsPaid uint64 `json:"jobs_pay"`
}

// OfferView is one storage offer of the account, as the ledger has it,
// with what its proven rounds paid boxes so far.
type OfferView struct {
	Root      string `json:"root"`
	Bytes     uint64 `json:"bytes"` // the committed length
	Price     uint64 `json:"price_per_gib_epoch"`
	Replicas  uint32 `json:"replicas"`
	Until     uint64 `json:"until_epoch"`
	Reserved  uint64 `json:"reserved"`   // what is left of the reservation
	Spent     uint64 `json:"spent"`      // paid to boxes for proven rounds, as far as the dashboard read
	PaidBoxes uint32 `json:"paid_boxes"` // boxes paid in Round
	Round     uint64 `json:"round"`
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
	// Jobs this account ran (held ones by key, until released), what
	// its offers paid per root, and its functions.
	total     Figure // since genesis
	jobs      []JobView
	held      map[[32]byte]heldJob
	jobTotals JobTotals
	offerPaid map[cid.Cid]uint64
	fns       []cid.Cid
	fnJobs    map[cid.Cid]*FunctionView
	err       string // the last read's error
	// gap says why the figures are incomplete from some block on (a
	// reading of a block that did not add up); it stays.
	gap     string
	updated time.Time
}

// heldJob is a job this account ran whose pay the ledger holds.
type heldJob struct {
	job       [32]byte
	requester peer.ID
	held      uint64
}

type ticketSeen struct {
	id   [32]byte
	root cid.Cid
}

func newChain(me peer.ID, g *ledger.Genesis, src blockSource) *chain {
	return &chain{me: me, g: g, params: g.Params(), blocks: src,
		epochs: map[uint64]*Figure{}, days: map[string]*Figure{}, roots: map[cid.Cid]*Offload{},
		held: map[[32]byte]heldJob{}, offerPaid: map[cid.Cid]uint64{}, fnJobs: map[cid.Cid]*FunctionView{}}
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
// block, an account's balance moves by: withdrawals and unbondings falling
// due (escrow and bond to balance, before the transactions), job pay
// released (RulesV5, also before them), its deposits and bonds (balance
// to escrow and bond), its transfers out and in, what proofs of storage
// paid it, and what receipts paid it; the money it pays others (its
// escrow and its reservations, which a storage offer or a pre-warm only
// moves between) by the same withdrawals and deposits, by a proof of a
// mismatch giving a job's pay back, and by what receipts, jobs and proofs
// of its content paid. Every transaction in a block is valid (Apply
// refuses the block otherwise), so what is left once the others are
// taken out is the delivery.
func (c *chain) account(prev, next *ledger.State, b *ledger.Block) {
	me := c.me
	var released, unbonded, deposits, bonded, out, in, refunds uint64
	if w, ok := prev.Withdrawal(me); ok && w.At <= b.Header.Epoch {
		released = min(w.Amount, prev.Escrow(me))
	}
	if bd := prev.Bond(me); bd.Unbonding > 0 && bd.At <= b.Header.Epoch {
		unbonded = min(bd.Unbonding, bd.Amount)
	}
	// Job pay released or given back in this block: a held job of this
	// account's that the next state no longer holds was paid, unless a
	// proof of a mismatch in the block names it.
	mismatched := map[[32]byte]bool{}
	for i := range b.Txs {
		if t := &b.Txs[i]; t.Kind == ledger.KindJobMismatch && t.Mismatch != nil {
			mismatched[jobKeyOf(t.Mismatch.Job, t.Mismatch.Requester)] = true
			if pj, ok := prev.PendingJob(t.Mismatch.Job, t.Mismatch.Requester); ok && pj.Payer == me {
				refunds += pj.Held
			}
		}
	}
	var compute uint64
	for k, h := range c.held {
		if _, still := next.PendingJob(h.job, h.requester); still {
			continue
		}
		delete(c.held, k)
		c.jobTotals.Held--
		c.jobTotals.HeldPay -= h.held
		state := "paid"
		if mismatched[k] {
			state = "refunded"
			c.jobTotals.Refunded++
		} else {
			compute += h.held
			c.jobTotals.Paid++
		}
		c.setJobState(h.job, h.requester, state)
	}
	var storage, spentStorage, spentCompute uint64
	proven := map[cid.Cid]bool{}
	// Bytes newly accounted per receipt key within this block.
	paid := map[pod.Key]uint64{}
	for i := range b.Txs {
		t := &b.Txs[i]
		switch t.Kind {
		case ledger.KindDeposit:
			if t.From == me {
				deposits += t.Amount
			}
		case ledger.KindBond:
			if t.From == me {
				bonded += t.Amount
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
		case ledger.KindFunction:
			if t.From == me && t.Root.Defined() {
				c.addFunction(t.Root)
			}
		case ledger.KindTicket:
			if t.Ticket != nil && t.Ticket.Publisher == me {
				c.tickets = append(c.tickets, ticketSeen{id: t.Ticket.ID(), root: t.Ticket.Root})
				if len(c.tickets) > maxTickets {
					c.tickets = c.tickets[len(c.tickets)-maxTickets:]
				}
			}
		case ledger.KindProof:
			// What the proof paid is the growth of the box's record (a
			// box proves a root once a round: one proof a block).
			if proven[t.Root] {
				continue
			}
			o, ok := next.StorageOffer(t.Root)
			if !ok {
				continue
			}
			pay := earnedDelta(prev, next, t.From, t.Root)
			if t.From == me {
				storage += pay
			}
			if o.Publisher == me {
				spentStorage += pay
				if _, ok := c.offerPaid[t.Root]; ok || len(c.offerPaid) < maxRoots {
					c.offerPaid[t.Root] += pay
				}
			}
		case ledger.KindJob:
			r := t.Job
			if r == nil {
				continue
			}
			pj, ok := next.PendingJob(r.JobID(), r.Requester)
			fresh := ok && pj.Height == next.Height() && pj.Runner == r.Runner
			if fresh && pj.Payer == me {
				spentCompute += pj.Held
				if f := c.fnJobs[r.Fn]; f != nil {
					f.Jobs++
					f.JobsPaid += pj.Held
				}
			}
			if r.Runner != me {
				continue
			}
			c.jobTotals.Taken++
			v := JobView{Job: fmt.Sprintf("%x", r.JobID()), Fn: r.Fn.String(), Requester: r.Requester.String(), Work: r.Work, Epoch: b.Header.Epoch, State: "unpaid"}
			switch {
			case fresh && len(c.held) < maxHeldJobs:
				v.Pay, v.State, v.Release = pj.Held, "held", pj.Release
				c.held[jobKeyOf(pj.Job, pj.Requester)] = heldJob{job: pj.Job, requester: pj.Requester, held: pj.Held}
				c.jobTotals.Held++
				c.jobTotals.HeldPay += pj.Held
			case fresh:
				c.gap = fmt.Sprintf("web: more than %d jobs of this box held at once: the compute figures from height %d on are incomplete", maxHeldJobs, b.Header.Height)
			case next.Genesis().Rules < ledger.RulesV5:
				v.State = "paid (rules 4: counted with delivery)"
				c.jobTotals.Paid++
			}
			c.jobs = append(c.jobs, v)
			if len(c.jobs) > maxJobs {
				c.jobs = c.jobs[len(c.jobs)-maxJobs:]
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
	gain, loss := next.Balance(me)+deposits+bonded+out, prev.Balance(me)+in+released+unbonded
	pot := func(s *ledger.State) uint64 { a := s.Account(me); return a.Escrow + a.Reserved }
	pay, left := pot(prev)+deposits+refunds, released+pot(next)
	if gain < loss || pay < left || gain-loss < storage+compute {
		c.gap = fmt.Sprintf("web: block at height %d moves the account in a way the dashboard does not know: its figures from here on are incomplete", b.Header.Height)
		return
	}
	earned, spent := gain-loss, pay-left
	if earned == 0 && spent == 0 {
		return
	}
	add := func(f *Figure) {
		f.Earned += earned
		f.Storage += storage
		f.Compute += compute
		f.Delivery += earned - storage - compute
		f.Spent += spent
		f.SpentStorage += min(spentStorage, spent)
		f.SpentCompute += min(spentCompute, spent-min(spentStorage, spent))
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
	add(f)
	day := c.params.GenesisTime.Add(time.Duration(e) * c.params.EpochLength).UTC().Format(time.DateOnly)
	d := c.days[day]
	if d == nil {
		d = &Figure{Period: day}
		c.days[day] = d
		if len(c.days) > maxDayFigures {
			delete(c.days, minKey(c.days))
		}
	}
	add(d)
	add(&c.total)
}

// earnedDelta is what box's proof record of root earned from prev to next
// (a record the offer's new commitment started over counts from zero).
func earnedDelta(prev, next *ledger.State, box peer.ID, root cid.Cid) uint64 {
	rec := func(s *ledger.State) uint64 {
		for _, r := range s.ReplicaRecords(box) {
			if r.Root.Equals(root) {
				return r.Earned
			}
		}
		return 0
	}
	a, z := rec(prev), rec(next)
	if z < a {
		return z
	}
	return z - a
}

// jobKeyOf names a job of a requester (the ledger pays a job once per pair).
func jobKeyOf(job [32]byte, requester peer.ID) [32]byte {
	return sha256.Sum256(append(job[:], requester...))
}

// setJobState marks a listed job's new state.
func (c *chain) setJobState(job [32]byte, requester peer.ID, state string) {
	id, who := fmt.Sprintf("%x", job), requester.String()
	for i := len(c.jobs) - 1; i >= 0; i-- {
		if v := &c.jobs[i]; v.Job == id && v.Requester == who && v.State == "held" {
			v.State, v.Release = state, 0
			if state == "refunded" {
				v.Pay = 0
			}
			return
		}
	}
}

func (c *chain) addFunction(fn cid.Cid) {
	if _, ok := c.fnJobs[fn]; ok || len(c.fns) >= maxFunctions {
		return
	}
	c.fnJobs[fn] = &FunctionView{Fn: fn.String()}
	c.fns = append(c.fns, fn)
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
	State     *ledger.State
	Epochs    []Figure // oldest first
	Days      []Figure // oldest first
	Roots     []cid.Cid
	Offload   map[cid.Cid]Offload
	Tickets   []TicketView // newest first
	Total     Figure       // since genesis
	Jobs      []JobView    // newest first
	JobTotals JobTotals
	Offers    []OfferView
	Functions []FunctionView
	Err       string
	Updated   time.Time
}

func (c *chain) figures() chainFigures {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := chainFigures{State: c.st, Err: strings.TrimPrefix(c.err+"; "+c.gap, "; "), Updated: c.updated, Offload: map[cid.Cid]Offload{}}
	out.Err = strings.TrimSuffix(out.Err, "; ")
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
	for i := len(c.jobs) - 1; i >= 0; i-- {
		out.Jobs = append(out.Jobs, c.jobs[i])
	}
	out.JobTotals, out.Total = c.jobTotals, c.total
	out.Total.Period = "total"
	if c.st != nil {
		for _, o := range c.st.StorageOffers() {
			if o.Publisher != c.me {
				continue
			}
			out.Offers = append(out.Offers, OfferView{Root: o.Root.String(), Bytes: o.Commitment.Length, Price: o.Price, Replicas: o.Replicas,
				Until: o.Until, Reserved: o.Reserved, Spent: c.offerPaid[o.Root], PaidBoxes: o.PaidBoxes, Round: o.Round})
		}
	}
	for _, fn := range c.fns {
		v := *c.fnJobs[fn]
		if c.st != nil {
			if r, ok := c.st.Function(fn); ok && r.Publisher == c.me {
				v.Price, v.MaxWork = r.PricePerGiWk, r.MaxWork
			}
		}
		out.Functions = append(out.Functions, v)
	}
	return out
}
