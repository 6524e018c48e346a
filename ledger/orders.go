package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// RulesV4: replication the committee orders is paid only when a final
// block recorded the order, and only from what the publisher set aside.
//
//   - An order (KindOrder) is a heat.Order a committee member signed. Only
//     the leader puts orders in its block, but every member checks them
//     (applyOrder) before it signs the block, so an order on the chain
//     stands for the committee's quorum, not for one member: boxes obey
//     an order only with the proof that a final block holds it
//     (OrderProof), and the ledger pays replication only for orders it
//     recorded.
//   - The ledger keeps the last order of each root until no receipt of an
//     epoch it covers can be paid (MaxSkew after its Until). A receipt
//     under no ticket whose client the root's order names, of an epoch up
//     to the order's Until, is a replication receipt.
//   - A pre-warm reserves, when a block takes it, Replicas × what
//     RetryFactor times the root's size costs at its price, moved from the
//     publisher's escrow to Account.Reserved. Replication receipts under a
//     pre-warm order are paid from the reservation; what is left returns to
//     the escrow when the pre-warm ends (MaxSkew after its Until) or a new
//     pre-warm of the root replaces it.
//   - Replication of a root the committee found hot (a heat order) is paid
//     from the escrow of the first registration of the root (by height,
//     then publisher) that opted in (Registration.Replicate, ore per epoch)
//     with budget left in the receipt's epoch, at most that budget.
//   - Each box an order names is paid for at most RetryFactor times the
//     root's size over the order and its renewals: a box holds a replica;
//     it fetches it once, not once an epoch.
//
// What one faulty leader can still steer: which boxes its orders name. It
// cannot spend beyond a publisher's pre-warm reservation or per-epoch
// replication budget, and every order it writes is on the chain under its
// signature.

const (
	// maxOrderTx bounds a KindOrder transaction: an order and its framing.
	maxOrderTx = heat.MaxOrderSize + 16
	// MaxActiveOrders bounds the orders the ledger keeps (one per root): a
	// leader that orders junk roots fills its blocks, not the state.
	MaxActiveOrders = 4096
)

// orderEntry is the ledger's record of the last order of a root.
type orderEntry struct {
	Issuer peer.ID
	Epoch  uint64
	Until  uint64
	Reason heat.Reason
	Boxes  []peer.ID // sorted, unique (heat.Order's rule)
	// Paid are the bytes paid for replication to each box, by Boxes'
	// index, over this order and the ones it renewed.
	Paid []uint64
}

// box returns the index of p in the order's boxes.
func (e *orderEntry) box(p peer.ID) (int, bool) { return slices.BinarySearch(e.Boxes, p) }

// Order reports the order the ledger recorded last for root: its issuer,
// epochs, reason and boxes.
func (s *State) Order(root cid.Cid) (issuer peer.ID, epoch, until uint64, reason heat.Reason, boxes []peer.ID, ok bool) {
	if !root.Defined() {
		return "", 0, 0, 0, nil, false
	}
	e := s.orders[root.KeyString()]
	if e == nil {
		return "", 0, 0, 0, nil, false
	}
	return e.Issuer, e.Epoch, e.Until, e.Reason, slices.Clone(e.Boxes), true
}

// applyOrder records a replication order: for this network, signed by a
// committee member, issued at most MaxSkew epochs before the block's epoch
// and at most the one after it, running no longer than its reason allows and not expired; a
// pre-warm order names no more boxes than an active pre-warm of the root
// asks for; and not older than the root's order on record.
func (n *State) applyOrder(t *Tx) error {
	o := t.Order
	if o == nil {
		return refuse(ReasonMalformed, "order transaction without an order")
	}
	switch {
	case o.Network != n.params.Network:
		return refuse(ReasonWrongNetwork, "order for network %q, this is %q", o.Network, n.params.Network)
	case !n.g.IsMember(o.Issuer):
		return refuse(ReasonNotCommittee, "order issued by %s, not a committee member", o.Issuer)
	case n.Excluded(o.Issuer):
		// Evidence of equivocation took its authority: its orders move no
		// box and spend no escrow.
		return refuse(ReasonNotCommittee, "order issued by %s, which evidence excluded from the committee", o.Issuer)
	case o.Epoch > n.epoch+1 || n.epoch > o.Epoch+n.params.MaxSkew:
		// The leader plans the epoch that begins as it closes the block's.
		return refuse(ReasonEpochOutOfRange, "order of epoch %d in a block of epoch %d (at most %d before it, or the next)", o.Epoch, n.epoch, n.params.MaxSkew)
	case o.Until < n.epoch || o.Until-o.Epoch > heat.MaxOrderEpochs(o.Reason):
		return refuse(ReasonUntilOutOfRange, "%s order of epoch %d until %d in a block of epoch %d (not before it, at most %d epochs after the order's)",
			o.Reason, o.Epoch, o.Until, n.epoch, heat.MaxOrderEpochs(o.Reason))
	}
	root := o.Root.KeyString()
	if o.Reason == heat.ReasonPrewarm {
		most := uint32(0)
		for _, k := range n.rootRegs[root] {
			if p, ok := n.prewarms[k]; ok && p.Until >= n.epoch {
				most = max(most, p.Replicas)
			}
		}
		if most == 0 {
			return refuse(ReasonNotRegistered, "pre-warm order for %s, which no active pre-warm asks for", o.Root)
		}
		if uint64(len(o.Boxes)) > uint64(most) {
			return refuse(ReasonReplicasOutOfRange, "pre-warm order names %d boxes, the pre-warms of %s ask for %d", len(o.Boxes), o.Root, most)
		}
	}
	old := n.orders[root]
	if old == nil && len(n.orders) >= MaxActiveOrders {
		return refuse(ReasonOrdersFull, "the ledger holds %d orders, the most it keeps", MaxActiveOrders)
	}
	if old != nil && old.Epoch > o.Epoch {
		return refuse(ReasonEpochOutOfRange, "order of epoch %d for %s, the ledger has one of epoch %d", o.Epoch, o.Root, old.Epoch)
	}
	if err := o.Verify(n.params.Network); err != nil {
		return refuse(ReasonBadSignature, "%w", err)
	}
	e := &orderEntry{Issuer: o.Issuer, Epoch: o.Epoch, Until: o.Until, Reason: o.Reason,
		Boxes: slices.Clone(o.Boxes), Paid: make([]uint64, len(o.Boxes))}
	if old != nil {
		// A renewal: a box that stays on the order keeps what it was paid.
		for i, b := range e.Boxes {
			if j, ok := old.box(b); ok {
				e.Paid[i] = old.Paid[j]
			}
		}
	}
	n.writeOrders()[root] = e
	return nil
}

// writeOrders returns n's orders for writing: a block copies the map
// before its first write (entries are never written in place).
func (n *State) writeOrders() map[string]*orderEntry {
	if !n.ordersOwned {
		n.orders = maps.Clone(n.orders)
		if n.orders == nil {
			n.orders = make(map[string]*orderEntry)
		}
		n.ordersOwned = true
	}
	return n.orders
}

// replicationOrder returns the recorded order of root that names client,
// for a receipt of epoch e, and the client's index in it.
func (n *State) replicationOrder(root string, client peer.ID, e uint64) (*orderEntry, int, bool) {
	o := n.orders[root]
	if o == nil || e > o.Until {
		return nil, 0, false
	}
	i, ok := o.box(client)
	return o, i, ok
}

// payReplication pays the bytes of r beyond prev (already accounted) as
// replication under order o, whose box bi is r's client.
func (n *State) payReplication(r *pod.Receipt, p *paidEpoch, prev uint64, root string, o *orderEntry, bi int) {
	var reg Registration
	var pw Prewarm
	var pwKey string
	switch o.Reason {
	case heat.ReasonPrewarm:
		found := false
		for _, k := range n.rootRegs[root] { // sorted
			if c, ok := n.prewarms[k]; ok && c.Reserved > 0 {
				pw, pwKey, found = c, k, true
				break
			}
		}
		if !found {
			return // the reservations of the root's pre-warms are spent
		}
		if reg, found = n.regs[regKey(pw.Publisher, root)]; !found {
			return
		}
	default:
		var ok bool
		if reg, ok = n.replicatingRegistration(root, p); !ok {
			return // no publisher pays for replicating the root (or its budget is spent)
		}
	}
	delta := r.Bytes - prev
	// Over the order's life: one root's worth (and its retries) per box.
	limit := satMul(reg.Size, RetryFactor)
	delta = min(delta, limit-min(o.Paid[bi], limit))
	// And in the epoch, over every server, as any client's receipts.
	cr := clientRoot{Client: r.Client, Root: root}
	claimed := p.claimed[cr]
	delta = min(delta, limit-min(claimed, limit))
	if delta == 0 {
		return
	}
	if p.claimed == nil {
		p.claimed = make(map[clientRoot]uint64)
	}
	p.claimed[cr] = claimed + delta
	c := *o
	c.Paid = slices.Clone(o.Paid)
	c.Paid[bi] += delta
	n.writeOrders()[root] = &c
	due := owed(prev+delta, reg.PricePerGiB) - owed(prev, reg.PricePerGiB)
	if o.Reason == heat.ReasonPrewarm {
		due = min(due, pw.Reserved)
		if due == 0 {
			return
		}
		pw.Reserved -= due
		n.prewarms[pwKey] = pw
		pub := n.accounts[pw.Publisher]
		pub.Reserved -= due
		n.put(pw.Publisher, pub)
		srv := n.accounts[r.Server]
		srv.Balance += due
		n.put(r.Server, srv)
		return
	}
	due = spendBudget(&p.replicated, regKey(reg.Publisher, root), reg.Replicate, due)
	n.pay(reg.Publisher, r.Server, due, p)
}

// replicatingRegistration is the registration that pays the replication
// of root the committee ordered for heat in p's epoch: the first, by height
// and then publisher, that opted in with budget left.
func (n *State) replicatingRegistration(root string, p *paidEpoch) (Registration, bool) {
	return n.firstWithBudget(n.rootRegs[root], func(r Registration) uint64 { return r.Replicate }, p.replicated)
}

// Reservation is what a pre-warm of replicas boxes of the root reg
// registers sets aside from its publisher's escrow (RulesV4): what the
// rules may pay for each box's replica.
func Reservation(reg Registration, replicas uint32) uint64 {
	return satMul(owed(satMul(reg.Size, RetryFactor), reg.PricePerGiB), uint64(replicas))
}

// release returns what is left of a pre-warm's reservation to its
// publisher's escrow.
func (n *State) release(p Prewarm) {
	if p.Reserved == 0 {
		return
	}
	a := n.accounts[p.Publisher]
	a.Reserved -= p.Reserved
	a.Escrow += p.Reserved
	n.put(p.Publisher, a)
}

const ordersDomain = "ore/ledger/v4/orders\x00"

// pruneOrders drops the orders no receipt can be paid under any more (of
// an epoch MaxSkew after their Until).
func (n *State) pruneOrders() {
	for root, o := range n.orders {
		if tooOld(o.Until, n.epoch, n.params.MaxSkew) {
			delete(n.writeOrders(), root)
		}
	}
}

// sealOrders hashes the orders on record, sorted by root, when this state
// changed them (a block that records no order and lets none expire reuses
// the hash of the state before it).
func (s *State) sealOrders() [32]byte {
	if !s.ordersOwned && s.ordersHash != ([32]byte{}) {
		return s.ordersHash
	}
	b := make([]byte, 0, 4096)
	b = append(b, ordersDomain...)
	b = binary.AppendUvarint(b, uint64(len(s.orders)))
	for _, root := range slices.Sorted(maps.Keys(s.orders)) {
		o := s.orders[root]
		b = wire.AppendBytes(b, []byte(root))
		b = wire.AppendPeer(b, o.Issuer)
		b = binary.AppendUvarint(b, o.Epoch)
		b = binary.AppendUvarint(b, o.Until)
		b = append(b, byte(o.Reason))
		b = binary.AppendUvarint(b, uint64(len(o.Boxes)))
		for i, p := range o.Boxes {
			b = wire.AppendPeer(b, p)
			b = binary.AppendUvarint(b, o.Paid[i])
		}
	}
	s.ordersHash = sha256.Sum256(b)
	return s.ordersHash
}

// indexReg adds (on) or removes a registration's key in a per-root index
// of sorted keys, writing neither the map nor a slice in place: states
// share them.
func indexReg(idx map[string][]string, root, key string, on bool) map[string][]string {
	keys := idx[root]
	i, listed := slices.BinarySearch(keys, key)
	switch {
	case on && !listed:
		idx = maps.Clone(idx)
		if idx == nil {
			idx = make(map[string][]string)
		}
		idx[root] = slices.Insert(slices.Clone(keys), i, key)
	case !on && listed:
		idx = maps.Clone(idx)
		if len(keys) == 1 {
			delete(idx, root)
		} else {
			idx[root] = slices.Delete(slices.Clone(keys), i, i+1)
		}
	}
	return idx
}
