package meter

import (
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/pod"
)

// MaxTickets bounds the tickets a client keeps, one per root it fetches
// under one (gateway requests bring them): past it, the one that expires
// first is dropped, and its root's next receipts go unticketed.
const MaxTickets = 16_384

// usedTicket is a ticket a client's fetches run under: its ID (hashed
// once, not per delivery) and its last epoch.
type usedTicket struct {
	id      [32]byte
	expires uint64
}

// UsesTicket reports whether the receipts of root already name the ticket
// id (the caller checked it and handed it to the ledger when first used).
func (c *Client) UsesTicket(root cid.Cid, id [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tk, ok := c.tickets[string(root.Bytes())]
	return ok && tk.id == id
}

// UseTicket makes the receipts of root's deliveries that start from now on
// name tk, until it expires. The caller checked that tk pays for root.
func (c *Client) UseTicket(root cid.Cid, tk *pod.Ticket) {
	id := tk.ID()
	c.mu.Lock()
	defer c.mu.Unlock()
	rk := string(root.Bytes())
	if _, ok := c.tickets[rk]; !ok && len(c.tickets) >= MaxTickets {
		var first string
		for r, t := range c.tickets {
			if first == "" || t.expires < c.tickets[first].expires {
				first = r
			}
		}
		delete(c.tickets, first)
	}
	c.tickets[rk] = usedTicket{id: id, expires: tk.Expires}
}

// ticketLocked is the ID of the ticket receipts of root in epoch e are
// paid under (zero: none).
func (c *Client) ticketLocked(rootKey string, e uint64) [32]byte {
	if tk, ok := c.tickets[rootKey]; ok && e <= tk.expires {
		return tk.id
	}
	return [32]byte{}
}
