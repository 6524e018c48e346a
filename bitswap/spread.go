package bitswap

import (
	"fmt"
	"sync"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// WithSpread makes the server spend its upload on distinct blocks when it
// seeds content to a crowd (BitTorrent's super-seeding, without refusals).
// A want for a block for which seed returns true (nil: every block) that
// the seed already sent to another peer (a repeat; sends are remembered
// spreadMemory) is not refused (boxo forgets a want answered DONT_HAVE,
// and the asker would stall): it is held back, and leaves once hold has
// passed since the want came and since the block last left, unless the
// peer cancels the want first, which it does as soon as another box
// delivered the block. The crowd holds every block the seed sent, so a
// repeat is the crowd's to serve: measured with `ore bench swarm` (50
// boxes, 2 MiB/s uplinks), when a repeat asked for after the block's hold
// left at once, the origin's uplink stayed busy with repeats to the end
// (1.71× the content size for a 58 s crowd); waiting a hold from the ask
// (30 s) it sent 1.02-1.05× the size in five runs, idle for the crowd's
// last 15-20 s (the code before this, with a 30 s hold: 1.57×).
// While it holds a block, the seed does not answer HAVE for it, so the
// asker's bitswap times the want out and moves it to the boxes that
// announced the block. Of the wants held for one block, one leaves per
// hold; a repeat also waits while blocks nobody got yet are leaving, so
// the seed puts every block into the crowd once before it sends any twice
// (measured: without it the last block first left the origin 70 s into a
// crowd that one box alone fetches in 32 s); none waits longer than 1.5
// holds. Blocks under spreadMinSize always leave at once: they cost the
// seed little, and a crowd needs a DAG's inner nodes at once to ask for
// the rest.
//
// hold 0 turns spreading off.
func WithSpread(hold time.Duration, seed func(cid.Cid) bool) Option {
	return func(c *config) error {
		if hold < 0 {
			return fmt.Errorf("bitswap: spread hold must not be negative, got %s", hold)
		}
		c.spreadHold = hold
		c.spreadSeed = seed
		return nil
	}
}

// spreader decides, for the seed blocks the server is about to send, which
// leave now and which wait for their block's hold to pass.
type spreader struct {
	hold time.Duration
	seed func(cid.Cid) bool
	now  func() time.Time

	mu        sync.Mutex
	last      map[cid.Cid]lastSend              // last send of each seed block, within spreadMemory
	held      map[peer.ID]map[cid.Cid]*heldWant // wants held back, per peer
	bytes     int                               // of the held blocks kept in memory
	lastFirst time.Time                         // last send of a block not in last
	pruned    time.Time
}

// lastSend is when a seeded block last left, and for whom.
type lastSend struct {
	at time.Time
	to peer.ID
}

// heldWant is a want held back: its block while the bytes fit
// maxSpreadHeldBytes (nil: read it again from the store), and the
// earliest time it may leave.
type heldWant struct {
	c     cid.Cid
	b     blocks.Block
	due   time.Time
	since time.Time // when the want was held back
}

// spreadMinSize is the size under which a block is never held back.
const spreadMinSize = 64 << 10

// spreadMemory is how long a seed remembers sending a block: a want for it
// after the hold is a repeat (it waits for the first sends), one after
// spreadMemory is a first send again. maxSpreadRemembered bounds the
// sends remembered (~100 bytes each).
const (
	spreadMemory        = 5 * time.Minute
	maxSpreadRemembered = 1 << 16
)

// firstSendQuiet is how long after the last first send held repeats wait
// (first sends leave at the upload's pace, a few per second at least while
// the crowd still asks for blocks nobody got).
const firstSendQuiet = time.Second

// maxSpreadHeldBytes bounds the bytes of held-back blocks kept in memory
// over all peers; beyond it only CIDs are kept.
const maxSpreadHeldBytes = 64 << 20

func newSpreader(hold time.Duration, seed func(cid.Cid) bool) *spreader {
	if hold <= 0 {
		return nil
	}
	return &spreader{hold: hold, seed: seed, now: time.Now,
		last: make(map[cid.Cid]lastSend), held: make(map[peer.ID]map[cid.Cid]*heldWant)}
}

// filter returns the blocks of blks that may leave for p now and holds back
// the others. A block let through counts as sent from now on.
func (s *spreader) filter(p peer.ID, blks []blocks.Block) []blocks.Block {
	if s == nil {
		return blks
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]blocks.Block, 0, len(blks))
	for _, b := range blks {
		c := b.Cid()
		if len(b.RawData()) < spreadMinSize || (s.seed != nil && !s.seed(c)) {
			out = append(out, b)
			continue
		}
		switch l, ok := s.last[c]; {
		case !ok:
			s.lastFirst = now // a block nobody got from this box lately
		case l.to == p:
			// A peer asking again for a block it was just sent (it lost
			// it, or restarted) is no crowd: it gets it at once.
		default:
			// A repeat waits a hold from its ask, time for the crowd
			// (which holds the block since its last send) to deliver
			// it, and then while blocks nobody got yet leave (see due).
			s.holdLocked(p, b, now.Add(s.hold))
			continue
		}
		s.last[c] = lastSend{at: now, to: p}
		out = append(out, b)
	}
	return out
}

// sentRecently reports whether the seeded block c left for a peer other
// than p less than hold ago. The server then keeps quiet to p about having
// it (a HAVE would make p pick the seed again, whose first answers weigh
// most in its choice): the boxes that just received it say HAVE instead.
func (s *spreader) sentRecently(c cid.Cid, p peer.ID) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.last[c]
	return ok && l.to != p && s.now().Sub(l.at) < s.hold
}

func (s *spreader) holdLocked(p peer.ID, b blocks.Block, due time.Time) {
	m := s.held[p]
	if m == nil {
		m = make(map[cid.Cid]*heldWant)
		s.held[p] = m
	}
	if _, ok := m[b.Cid()]; ok {
		return
	}
	w := &heldWant{c: b.Cid(), due: due, since: s.now()}
	if n := len(b.RawData()); s.bytes+n <= maxSpreadHeldBytes {
		w.b = b
		s.bytes += n
	}
	m[w.c] = w
}

func (s *spreader) dropLocked(m map[cid.Cid]*heldWant, c cid.Cid) {
	if w, ok := m[c]; ok {
		if w.b != nil {
			s.bytes -= len(w.b.RawData())
		}
		delete(m, c)
	}
}

// received ends the held-back wants that p's message cancels: a cancel
// entry (p got the block elsewhere), or a full wantlist without the block.
func (s *spreader) received(p peer.ID, msg bsmsg.BitSwapMessage) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.held[p]
	if len(m) == 0 {
		return
	}
	entries := msg.Wantlist()
	if msg.Full() {
		wanted := make(map[cid.Cid]bool, len(entries))
		for _, e := range entries {
			if !e.Cancel {
				wanted[e.Cid] = true
			}
		}
		for c := range m {
			if !wanted[c] {
				s.dropLocked(m, c)
			}
		}
	} else {
		for _, e := range entries {
			if e.Cancel {
				s.dropLocked(m, e.Cid)
			}
		}
	}
	if len(m) == 0 {
		delete(s.held, p)
	}
}

// forget drops everything held for p (it left), and the holds of the
// blocks last sent to p: a block is held back because the peer it went to
// passes it on, which a peer that left does not.
func (s *spreader) forget(p peer.ID) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.held[p] {
		s.dropLocked(s.held[p], c)
	}
	delete(s.held, p)
	for c, l := range s.last {
		if l.to == p {
			delete(s.last, c)
		}
	}
}

// due takes the held-back wants that may leave now, grouped by peer, and
// counts their blocks as sent. Of the wants for one block, one leaves per
// hold (the others wait for the next, as the crowd may deliver meanwhile);
// while blocks nobody got yet are leaving (a first send in the last
// firstSendQuiet), repeats wait, so that the seed's upload puts every block
// into the crowd once before it sends any twice; any want that waited
// maxWaitHolds holds leaves.
func (s *spreader) due() map[peer.ID][]*heldWant {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := now.Sub(s.lastFirst) < firstSendQuiet
	var out map[peer.ID][]*heldWant
	for p, m := range s.held {
		for c, w := range m {
			if now.Before(w.due) {
				continue
			}
			if now.Sub(w.since) < s.maxWait() {
				if l, ok := s.last[c]; ok && now.Sub(l.at) < s.hold {
					w.due = l.at.Add(s.hold)
					if late := w.since.Add(s.maxWait()); late.Before(w.due) {
						w.due = late
					}
					continue
				}
				if busy {
					continue
				}
			}
			s.last[c] = lastSend{at: now, to: p}
			s.dropLocked(m, c)
			if out == nil {
				out = make(map[peer.ID][]*heldWant)
			}
			out[p] = append(out[p], w)
		}
		if len(m) == 0 {
			delete(s.held, p)
		}
	}
	if now.Sub(s.pruned) >= time.Second {
		s.pruneLocked(now)
	}
	return out
}

// pruneLocked forgets the sends older than spreadMemory, and those past
// the hold when more than maxSpreadRemembered are left.
func (s *spreader) pruneLocked(now time.Time) {
	s.pruned = now
	for c, l := range s.last {
		if age := now.Sub(l.at); age >= spreadMemory || (len(s.last) > maxSpreadRemembered && age >= s.hold) {
			delete(s.last, c)
		}
	}
}

// maxWaitHolds is how many holds a held-back want waits at most.
const maxWaitHolds = 1.5

func (s *spreader) maxWait() time.Duration {
	return time.Duration(maxWaitHolds * float64(s.hold))
}

// heldCount is the number of wants held back (for tests and metrics).
func (s *spreader) heldCount() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.held {
		n += len(m)
	}
	return n
}
