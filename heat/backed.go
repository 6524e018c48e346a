package heat

import (
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Backing is what the ledger says of a box's claim to hold a root.
type Backing uint8

// Backings.
const (
	// Backed: the claim counts as reported (a root nothing proves: no
	// storage offer, no commitment to check).
	Backed Backing = iota
	// Proven: a recent proof backs it: the box holds the root and the
	// root's order keeps naming it (a holding outside any order becomes a
	// renewal), since only boxes an order names are challenged and paid.
	Proven
	// Unproven: the box has not proven the root recently (it may have just
	// fetched it): it stays on the root's order like a box fetching it,
	// but is no holder.
	Unproven
	// Revoked: the ledger revoked the box's storage of the root for missed
	// proofs: it neither holds it nor is chosen for it again.
	Revoked
)

// Back returns copies of reports in which a box's holdings count only as
// far as backing (the ledger's proof records) backs them: so the planner
// believes what is proven, not what is written (a box that claims to hold
// a root it cannot prove keeps no honest box from being ordered). The
// copies are for Plan: their signatures no longer cover them.
func Back(reports []*Report, backing func(box peer.ID, root cid.Cid) Backing) []*Report {
	out := make([]*Report, 0, len(reports))
	for _, r := range reports {
		if r == nil {
			continue
		}
		c := *r
		c.Held, c.Orders = nil, nil
		ordered := make(map[cid.Cid]bool, len(r.Orders))
		for _, o := range r.Orders {
			ordered[o.Root] = true
			switch b := backing(r.Reporter, o.Root); {
			case b == Revoked:
				o.State, o.Reason = OrderDeclined, "revoked by the ledger for missed proofs"
			case b == Unproven && o.State == OrderHeld:
				o.State = OrderFetching
			}
			c.Orders = append(c.Orders, o)
		}
		for _, h := range r.Held {
			switch backing(r.Reporter, h.Root) {
			case Backed:
				c.Held = append(c.Held, h)
			case Proven:
				c.Held = append(c.Held, h)
				if !ordered[h.Root] {
					c.Orders = append(c.Orders, OrderStatus{Root: h.Root, State: OrderHeld})
				}
			case Revoked:
				if !ordered[h.Root] {
					c.Orders = append(c.Orders, OrderStatus{Root: h.Root, State: OrderDeclined, Reason: "revoked by the ledger for missed proofs"})
				}
			}
		}
		out = append(out, &c)
	}
	return out
}

// Vouch returns copies of reports in which the demand (Heat) of a reporter
// that vouched does not hold is left out: what a report says of demand
// cannot be checked, so only reporters that put something at stake (the
// ledger's reporter bond) move the planner. Their holdings, quotas and
// orders stay (Back rules the holdings). The copies are for Plan: their
// signatures no longer cover them.
func Vouch(reports []*Report, vouched func(reporter peer.ID) bool) []*Report {
	out := make([]*Report, 0, len(reports))
	for _, r := range reports {
		if r == nil {
			continue
		}
		if r.Heat != nil && !vouched(r.Reporter) {
			c := *r
			c.Heat = nil
			r = &c
		}
		out = append(out, r)
	}
	return out
}
