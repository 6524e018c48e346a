package committee

import (
	"errors"
	"fmt"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
)

// The account transactions waiting for a block. They cost their account
// nothing and go first in a block, ahead of the receipts, so the pool
// bounds them per account as well as in all:
//
//   - maxTxPool in all: memory.
//   - maxAccountTxs waiting per account: one account cannot fill the pool
//     and crowd out every other account's deposits.
//   - maxAccountTxsPerBlock per account in one block (the leader leaves
//     the rest waiting for the next): one account's burst cannot push the
//     receipts of the epoch out of its block. The bound is per block, not
//     per second, because the block is what account transactions compete
//     for, and a block is cut at least once an epoch.
//
// Together: an account gets at most maxAccountTxsPerBlock transactions
// into each block and is refused beyond maxAccountTxs waiting, with an
// error its submitter hears (ErrAccountFull, ErrPoolFull).
//
// Tickets (rules 4) are counted apart, by publisher: a publisher issues
// one per client session, hundreds a second, and receipts under a ticket
// are refused until a block holds it, so the per-block bound does not
// apply to them and maxPublisherTickets may wait. Only a publisher can
// sign its tickets, so what they cost falls on the publisher's own
// budget of the pool. A fee would
// price this instead, but it changes the state machine and the rules
// version; these bounds are the leader's and the pool's, not the ledger's.
const (
	maxTxPool             = 100_000
	maxAccountTxs         = 64
	maxAccountTxsPerBlock = 16
	maxPublisherTickets   = 16_384
)

// Refusals of the pool.
var (
	ErrPoolFull    = errors.New("committee: transaction pool full, try again later")
	ErrAccountFull = errors.New("committee: too many transactions of this account waiting for a block, try again later")
)

func poolReason(err error) string {
	if errors.Is(err, ErrAccountFull) {
		return reasonAccountFull
	}
	return reasonPoolFull
}

// txPool is the pool: transactions by ID, and how many each account has.
// The Committee's mu guards it.
type txPool struct {
	txs       map[[32]byte]ledger.Tx
	byAccount map[peer.ID]int
	tickets   map[peer.ID]int // tickets waiting, by publisher: apart from its account transactions
}

func newTxPool() txPool {
	return txPool{txs: make(map[[32]byte]ledger.Tx), byAccount: make(map[peer.ID]int), tickets: make(map[peer.ID]int)}
}

// check says whether tx may join the pool: a transaction it holds already
// may (it adds nothing).
func (p *txPool) check(tx ledger.Tx, id [32]byte) error {
	if _, ok := p.txs[id]; ok {
		return nil
	}
	switch {
	case len(p.txs) >= maxTxPool:
		return fmt.Errorf("%w (%d transactions)", ErrPoolFull, maxTxPool)
	case tx.Kind == ledger.KindTicket && p.tickets[tx.From] >= maxPublisherTickets:
		return fmt.Errorf("%w (%d tickets, the most a publisher may have waiting)", ErrAccountFull, maxPublisherTickets)
	case tx.Kind != ledger.KindTicket && p.byAccount[tx.From] >= maxAccountTxs:
		return fmt.Errorf("%w (%d, the most an account may have)", ErrAccountFull, maxAccountTxs)
	}
	return nil
}

// add keeps tx, within the bounds unless force (transactions that were
// in the pool already, put back after a block that did not commit).
func (p *txPool) add(tx ledger.Tx, force bool) error {
	id := tx.ID()
	if !force {
		if err := p.check(tx, id); err != nil {
			return err
		}
	}
	if _, ok := p.txs[id]; !ok {
		p.txs[id] = tx
		p.counts(tx)[tx.From]++
	}
	return nil
}

// counts is the table tx counts in: its account's transactions, or for
// a ticket its publisher's tickets (an order, which only the leader's own
// planner adds, its issuer's, with the tickets).
func (p *txPool) counts(tx ledger.Tx) map[peer.ID]int {
	if !perBlockBound(tx.Kind) {
		return p.tickets
	}
	return p.byAccount
}

// perBlockBound reports whether maxAccountTxsPerBlock bounds a kind:
// account transactions, not tickets or orders.
func perBlockBound(k ledger.Kind) bool { return k != ledger.KindTicket && k != ledger.KindOrder }

// take removes and returns the transactions for the next block, in
// (account, nonce) order, at most maxAccountTxsPerBlock of each account
// (its lowest nonces).
func (p *txPool) take() []ledger.Tx {
	all := make([]ledger.Tx, 0, len(p.txs))
	for _, tx := range p.txs {
		all = append(all, tx)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].From != all[j].From {
			return all[i].From < all[j].From
		}
		return all[i].Nonce < all[j].Nonce
	})
	out := make([]ledger.Tx, 0, len(all))
	n := 0
	for i, tx := range all {
		if i == 0 || tx.From != all[i-1].From {
			n = 0
		}
		if perBlockBound(tx.Kind) {
			if n++; n > maxAccountTxsPerBlock {
				continue
			}
		}
		id := tx.ID()
		delete(p.txs, id)
		if c := p.counts(tx); c[tx.From] <= 1 {
			delete(c, tx.From)
		} else {
			c[tx.From]--
		}
		out = append(out, tx)
	}
	return out
}

// admit says whether this member's pool takes tx now (the gossip
// validator asks before the transaction is forwarded).
func (c *Committee) admit(tx ledger.Tx) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txpool.check(tx, tx.ID())
}

// keepTx adds a verified transaction to the pool of the next block, or
// says why it cannot.
func (c *Committee) keepTx(tx ledger.Tx) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txpool.add(tx, false)
}

// takeTxs takes the account transactions of the next block.
func (c *Committee) takeTxs() []ledger.Tx {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txpool.take()
}

// requeue puts back transactions of a block that did not commit.
func (c *Committee) requeue(txs []ledger.Tx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tx := range txs {
		_ = c.txpool.add(tx, true)
	}
}

// TxPool is the number of account transactions waiting in this member's
// pool for a block (the dashboard's coordinator view, `ore status`).
func (c *Committee) TxPool() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.txpool.txs)
}

// Keep adds a transaction submitted on this member to its own pool (gossip
// does not deliver a member's own messages to itself twice), or says why
// the pool cannot take it.
func (c *Committee) Keep(tx ledger.Tx) error { return c.keepTx(tx) }
