package committee

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/pod"
)

// Byzantine-safe finality (a genesis of ledger.FinalityBFT), after
// Tendermint.
//
// Raft orders proposals, not state: the leader appends a proposal (a
// block and the round it is proposed in) to the Raft log, and a member
// that finds it in its log checks it against its last final state
// (ledger.Apply, and the epoch against its own clock, checkEpoch) but
// applies nothing. It votes in two steps on /ore/blocks/1, each vote
// signed over (step, height, round, block hash):
//
//   - prevote: for the round's proposal, if it is valid and the member is
//     not locked on another block (or saw more than two thirds prevote
//     the proposal in a round after its lock);
//   - precommit: once more than two thirds of the committee prevoted one
//     valid block in a round (a polka); the member locks on that block at
//     that round, and from then on prevotes no other block at this height
//     unless a later polka shows the committee moved on;
//   - final: more than two thirds of the committee precommitted one block
//     in one round. Only then does the member apply the block to its
//     state, store it with those precommits, and go to the next height.
//
// With at most f faulty members of 3f+1, two polkas of one round share an
// honest member, which prevotes once per round: so no two blocks get
// polkas, or precommits, in one round; and once a block is final, more
// than f honest members are locked on it, so no other block gets a polka
// in a later round. The guard (guard.go) makes "once" hold across crashes.
//
// Rounds and leaders. A member that sees no final block at its height by
// a deadline (the proposal's epoch's close plus roundGrace, growing with
// the round) first asks the others for final blocks (it may be the one
// behind: restarted, or cut off while they finalized), and if none came,
// moves to the next round and stops taking Raft's heartbeats
// and entries from the current leader for denyFor (raftp2p.WithAllow):
// when the honest members do, their election timers fire and Raft elects
// another leader among them, which proposes at the new round (the block
// the committee polkaed last, if any, else a new one). hashicorp/raft's
// followers cannot depose a leader otherwise; a leader whose own round
// ran out steps aside (LeadershipTransfer), and a leader whose clock is
// behind the chain proposes nothing and steps aside too. Raft stays the
// fast path: with an honest leader a block is final in one round, three
// message delays after its entry reaches the members. The committee's
// votes, not Raft, are the source of truth.
const (
	// roundGrace is how long after a proposal was due a round waits for a
	// final block, times the round plus one.
	roundGrace = 2 * time.Second
	// denyFor is how long a member refuses Raft traffic from a leader
	// whose round ran out.
	denyFor = 30 * time.Second
	// bftTick is how often a member checks its round's deadline.
	bftTick = 100 * time.Millisecond
	// maxAheadVotes bounds the votes kept for heights above this member's
	// (it may lag by a height while the others finalized it).
	maxAheadVotes = 256
	// maxProposals bounds the proposals kept for one height.
	maxProposals = 64
	// maxRoundsAhead bounds how far beyond this member's round a vote
	// may be and still be kept or forwarded, and maxVotes the votes kept
	// for one height: a faulty member signs as many rounds and blocks as
	// it likes.
	maxRoundsAhead = 64
	maxVotes       = 4096
	// catchUpAfter is how long a member waits for a height's precommits
	// or its block before it fetches the final blocks from the others.
	catchUpAfter = time.Second
)

// proposalMagic starts a Raft log entry that is a FinalityBFT proposal:
// the magic byte, the round (4 bytes big-endian), the block.
const proposalMagic = 0xB1

func encodeProposal(round uint32, block []byte) []byte {
	out := make([]byte, 0, 5+len(block))
	out = append(out, proposalMagic)
	out = binary.BigEndian.AppendUint32(out, round)
	return append(out, block...)
}

func decodeProposal(data []byte) (round uint32, block []byte, ok bool) {
	if len(data) < 5 || data[0] != proposalMagic {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(data[1:5]), data[5:], true
}

// voteMsg is a member's signed vote, on /ore/blocks/1.
type voteMsg struct {
	typ    ledger.VoteType
	height uint64
	round  uint32
	hash   [32]byte
	signer peer.ID
	sig    []byte
}

const msgVote = 2

func (m *voteMsg) marshal() []byte {
	b := []byte{msgVote, byte(m.typ)}
	b = binary.BigEndian.AppendUint64(b, m.height)
	b = binary.BigEndian.AppendUint32(b, m.round)
	b = append(b, m.hash[:]...)
	b = binary.AppendUvarint(b, uint64(len(m.signer)))
	b = append(b, m.signer...)
	b = binary.AppendUvarint(b, uint64(len(m.sig)))
	return append(b, m.sig...)
}

func unmarshalVote(data []byte) (*voteMsg, error) {
	bad := errors.New("committee: malformed vote message")
	if len(data) < 2+8+4+32 || data[0] != msgVote {
		return nil, bad
	}
	m := &voteMsg{typ: ledger.VoteType(data[1]), height: binary.BigEndian.Uint64(data[2:10]), round: binary.BigEndian.Uint32(data[10:14])}
	if m.typ != ledger.Prevote && m.typ != ledger.Precommit {
		return nil, bad
	}
	copy(m.hash[:], data[14:46])
	var ok bool
	if m.signer, m.sig, ok = readSigned(data[46:]); !ok {
		return nil, bad
	}
	if !bytes.Equal(m.marshal(), data) {
		return nil, bad
	}
	return m, nil
}

func (m *voteMsg) verify(g *ledger.Genesis) error {
	if !g.IsMember(m.signer) {
		return fmt.Errorf("%w: %s", errNotMember, m.signer)
	}
	return ledger.VerifyVote(m.signer, m.typ, m.height, m.round, m.hash, m.sig)
}

// proposal is a block proposed at this member's height, checked against
// its final state.
type proposal struct {
	block  *ledger.Block
	raw    []byte        // its encoding without signatures, as the log carried it (nil: unknown)
	next   *ledger.State // the state after it (valid only)
	err    error         // why this member refuses it
	rounds map[uint32]bool
}

type voteKey struct {
	typ   ledger.VoteType
	round uint32
	hash  [32]byte
}

type signerKey struct {
	typ    ledger.VoteType
	round  uint32
	signer peer.ID
}

// bft is a member's consensus on the height after its last final block.
type bft struct {
	mu         sync.Mutex
	height     uint64
	round      uint32
	roundStart time.Time
	due        time.Time // when a final block was due at round 0 (zero: nothing expected yet)
	lockRound  int64
	lockHash   [32]byte
	validRound int64 // the last polka this member saw: the block a new leader re-proposes
	validHash  [32]byte
	props      map[[32]byte]*proposal
	votes      map[voteKey]map[peer.ID][]byte
	first      map[signerKey]*voteMsg // each signer's first vote per (step, round): equivocation
	ahead      []*voteMsg
	decided    *voteKey // a precommit quorum for a block this member does not have
	// behindSince is when this member first saw it was behind (decided,
	// or votes ahead); fetched when it last fetched final blocks.
	behindSince, fetched time.Time
	// roundLeader is the Raft leader that delivered this round's
	// proposal, or that led when a block became due in it: the one a
	// timeout denies (not whoever leads at the timeout: an honest leader
	// elected meanwhile must not be the one refused).
	roundLeader peer.ID
	next        *ahead // a proposal for the height after, kept until this one is final
	// proposed is the round this member last proposed in at this height
	// as leader (-1: none), proposedHash the block; pipelined is its
	// proposal for the height after (proposeBFT), which becomes proposed
	// when this height is final.
	proposed     int64
	proposedHash [32]byte
	pipelined    struct {
		height uint64
		round  int64
		hash   [32]byte
	}
	denied  map[peer.ID]time.Time
	changed chan struct{} // closed and replaced when the height advances
}

func newBFT(height uint64, gs guardState, now time.Time) *bft {
	e := &bft{denied: make(map[peer.ID]time.Time), changed: make(chan struct{})}
	e.reset(height, now)
	if gs.Height == height && gs.LockRound >= 0 { // a lock survives a restart
		e.round, e.lockRound, e.lockHash = gs.Round, gs.LockRound, gs.LockHash
	}
	return e
}

// reset goes to height, round 0, nothing locked (mu held or unshared).
func (e *bft) reset(height uint64, now time.Time) {
	e.height, e.round, e.roundStart, e.due = height, 0, now, time.Time{}
	e.lockRound, e.lockHash, e.validRound, e.validHash = -1, [32]byte{}, -1, [32]byte{}
	e.props = make(map[[32]byte]*proposal)
	e.votes = make(map[voteKey]map[peer.ID][]byte)
	e.first = make(map[signerKey]*voteMsg)
	e.decided, e.proposed = nil, -1
	if e.pipelined.height == height {
		e.proposed, e.proposedHash = e.pipelined.round, e.pipelined.hash
	}
	if e.next != nil && e.next.block.Header.Height < height {
		e.next = nil
	}
}

// ahead is a proposal for the height after this member's: a leader
// pipelines them (proposeBFT), proposing height h+1 on the state its
// proposal for h leaves while h collects its votes. It is kept until h is
// final, then judged on the state h left, like any proposal: nothing is
// voted on before. Applying it there is pure, so when it was applied in
// advance on the state of the proposal for h that became final (the very
// state installed, compared by identity), that result is the one Apply
// would give and is taken instead of applying it again.
type ahead struct {
	block *ledger.Block
	raw   []byte
	round uint32
	// done is closed when parent, next and err are set by an apply in
	// advance (nil: none runs; parent set already for the leader's own).
	done   chan struct{}
	parent *ledger.State // the state it was applied to in advance
	next   *ledger.State
	err    error
}

// keepAheadLocked keeps a for when its parent height is final, and starts
// applying it on the state of the proposal it names as its parent, if
// this member holds that one and found it valid. One such apply runs at a
// time: a leader that sends proposal after proposal ahead gets the others
// applied when their parent is final, as any proposal is.
func (c *Committee) keepAheadLocked(a *ahead) {
	e := c.bft
	busy := false
	if e.next != nil && e.next.done != nil {
		select {
		case <-e.next.done:
		default:
			busy = true
		}
	}
	if a.parent == nil && !busy {
		if p := e.props[a.block.Header.Prev]; p != nil && p.next != nil {
			base := p.next
			a.done = make(chan struct{})
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer close(a.done)
				defer intake.Prioritize()()
				n, err := ledger.Apply(base, a.block)
				a.parent, a.next, a.err = base, n, err
			}()
		}
	}
	e.next = a
}

// appliedOn reports whether a was applied in advance on s, and is done.
func (a *ahead) appliedOn(s *ledger.State) bool {
	if a.done != nil {
		select {
		case <-a.done:
		default:
			return false
		}
	}
	return a.parent == s
}

// judgeAhead applies a on parent, the state its parent height left,
// unless it was applied there in advance, and admits it as a proposal at
// this member's height, if that is still its height.
func (c *Committee) judgeAhead(a *ahead, parent *ledger.State) {
	defer c.wg.Done()
	if a.done != nil {
		<-a.done
	}
	n, err := a.next, a.err
	if a.parent != parent {
		done := intake.Prioritize()
		n, err = ledger.Apply(parent, a.block)
		done()
	}
	e := c.bft
	e.mu.Lock()
	if e.height != a.block.Header.Height || c.fsm.current() != parent {
		e.mu.Unlock()
		return // decided meanwhile
	}
	c.admitAheadLocked(a, n, err, parent, c.cfg.Clock())
	out := c.stepLocked()
	e.mu.Unlock()
	c.send(out)
}

// admitAheadLocked makes a, with Apply's result on parent (the final
// state), a proposal at this member's height, judged as onProposal does.
func (c *Committee) admitAheadLocked(a *ahead, n *ledger.State, err error, parent *ledger.State, now time.Time) {
	e := c.bft
	if err == nil {
		err = c.judgeEpoch(&a.block.Header, parent.Epoch())
	} else {
		c.metrics.rejected.Inc()
	}
	if err == nil && c.excluded(a.block.Header.Proposer) {
		err = fmt.Errorf("committee: proposer %s was excluded for equivocation", a.block.Header.Proposer)
	}
	if err != nil {
		n = nil
		c.log.Warn("proposal refused", "height", a.block.Header.Height, "round", a.round, "proposer", a.block.Header.Proposer, "err", err)
	}
	hash := a.block.Hash()
	p := e.props[hash]
	if p == nil {
		p = &proposal{block: a.block, raw: a.raw, next: n, err: err, rounds: make(map[uint32]bool)}
		e.props[hash] = p
	}
	p.rounds[a.round] = true
	if e.due.IsZero() {
		e.due = now
	}
	if a.round > e.round {
		e.enterRound(a.round, now)
	}
}

// onAhead takes a proposal of the log for the height after this member's
// (see ahead); parent and next are the leader's own result for it, if any.
func (c *Committee) onAhead(round uint32, b *ledger.Block, raw []byte, parent, next *ledger.State) {
	e := c.bft
	e.mu.Lock()
	switch b.Header.Height {
	case e.height + 1:
		c.keepAheadLocked(&ahead{block: b, raw: raw, round: round, parent: parent, next: next})
		e.mu.Unlock()
	case e.height:
		// Its parent height became final since the log delivered it: a
		// proposal at this member's height, judged on its state now
		// (applied without the lock; onProposal drops it should the
		// height be decided meanwhile).
		s := c.fsm.current()
		e.mu.Unlock()
		var err error
		if parent != s {
			next, err = ledger.Apply(s, b)
		}
		c.onProposal(round, b, raw, next, err)
	default:
		e.mu.Unlock()
	}
}

func (e *bft) count(k voteKey) int { return len(e.votes[k]) }

// polkaRound is the latest round in which hash had a quorum of prevotes
// (-1: none).
func (e *bft) polkaRound(hash [32]byte, quorum int) int64 {
	best := int64(-1)
	for k, v := range e.votes {
		if k.typ == ledger.Prevote && k.hash == hash && len(v) >= quorum && int64(k.round) > best {
			best = int64(k.round)
		}
	}
	return best
}

// bftMode reports whether the genesis names FinalityBFT.
func (c *Committee) bftMode() bool { return c.bft != nil }

// onProposal takes a proposal from the Raft log: the block checked
// against the final state (next and err are ledger.Apply's result on it).
func (c *Committee) onProposal(round uint32, b *ledger.Block, raw []byte, next *ledger.State, err error) {
	e := c.bft
	e.mu.Lock()
	if b.Header.Height == e.height+1 {
		// The leader finalized e.height and proposed the next before
		// this member saw the precommits: checked once it has.
		c.keepAheadLocked(&ahead{block: b, raw: raw, round: round})
		e.mu.Unlock()
		return
	}
	if b.Header.Height != e.height {
		e.mu.Unlock()
		return // decided already, or far ahead of this member (it syncs)
	}
	hash := b.Hash()
	p := e.props[hash]
	if p == nil {
		if len(e.props) >= maxProposals {
			e.mu.Unlock()
			return
		}
		if err == nil {
			err = c.judgeEpoch(&b.Header, c.fsm.current().Epoch())
		}
		if err == nil && c.excluded(b.Header.Proposer) {
			err = fmt.Errorf("committee: proposer %s was excluded for equivocation", b.Header.Proposer)
		}
		p = &proposal{block: b, raw: raw, next: next, err: err, rounds: make(map[uint32]bool)}
		e.props[hash] = p
		if err != nil {
			c.metrics.rejected.Inc()
			c.log.Warn("proposal refused", "height", b.Header.Height, "round", round, "proposer", b.Header.Proposer, "err", err)
		}
	}
	p.rounds[round] = true
	if e.due.IsZero() {
		e.due = c.cfg.Clock()
	}
	if round > e.round {
		e.enterRound(round, c.cfg.Clock())
	}
	if round == e.round && e.roundLeader == "" {
		e.roundLeader = c.LeaderID()
	}
	out := c.stepLocked()
	e.mu.Unlock()
	c.send(out)
}

func (e *bft) enterRound(r uint32, now time.Time) {
	e.round, e.roundStart, e.roundLeader = r, now, ""
}

// onVote takes a verified vote.
func (c *Committee) onVote(v *voteMsg) {
	e := c.bft
	e.mu.Lock()
	if hold := c.testHoldVote; hold != nil && hold(v) {
		e.mu.Unlock()
		return
	}
	switch {
	case v.height < e.height:
		e.mu.Unlock()
		return
	case v.height > e.height:
		if len(e.ahead) < maxAheadVotes {
			e.ahead = append(e.ahead, v)
		}
		e.mu.Unlock()
		return
	}
	if v.round > e.round+maxRoundsAhead || len(e.first) >= maxVotes {
		e.mu.Unlock()
		return
	}
	out := c.addVoteLocked(v)
	if v.round > e.round {
		c.skipRoundLocked()
	}
	out = append(out, c.stepLocked()...)
	e.mu.Unlock()
	c.send(out)
}

// skipRoundLocked moves this member to a later round in which more
// members voted than may lie (Tendermint's round skip: f+1 of them, so
// at least one honest member is there, by its own timeout or a polka).
// Members whose round ran out at different times so meet in one round
// without each waiting out its own deadline. Entering a round signs
// nothing: the lock and the guard rule what it then votes. Called for a
// vote of a later round only: it goes over the height's votes.
func (c *Committee) skipRoundLocked() {
	e := c.bft
	_, f := c.cfg.Genesis.Tolerates()
	signers := make(map[uint32]map[peer.ID]bool)
	target := e.round
	for k := range e.first {
		if k.round <= target {
			continue
		}
		m := signers[k.round]
		if m == nil {
			m = make(map[peer.ID]bool)
			signers[k.round] = m
		}
		m[k.signer] = true
		if len(m) > f {
			target = k.round
		}
	}
	if target > e.round {
		c.log.Info("more members than may lie voted in a later round: skipping to it", "height", e.height, "from", e.round, "to", target)
		e.enterRound(target, c.cfg.Clock())
	}
}

// voteInWindow says whether a vote is near enough to this member's height
// and round to forward: gossipsub ignores the rest (a faulty member's
// votes for far rounds or heights cost it nothing to sign, and would cost
// every member to carry).
func (c *Committee) voteInWindow(v *voteMsg) bool {
	e := c.bft
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case v.height+1 < e.height:
		return false // decided two heights ago
	case v.height > e.height+maxEarlyHeights:
		return false
	case v.height == e.height && v.round > e.round+maxRoundsAhead:
		return false
	}
	return true
}

// addVoteLocked records a vote at this height, and the proof when its
// signer voted for another block at the same (step, round).
func (c *Committee) addVoteLocked(v *voteMsg) [][]byte {
	e := c.bft
	if c.excluded(v.signer) {
		return nil
	}
	sk := signerKey{v.typ, v.round, v.signer}
	if f := e.first[sk]; f == nil {
		e.first[sk] = v
	} else if f.hash != v.hash {
		c.equivocated(f, v)
	}
	k := voteKey{v.typ, v.round, v.hash}
	m := e.votes[k]
	if m == nil {
		m = make(map[peer.ID][]byte)
		e.votes[k] = m
	}
	m[v.signer] = v.sig
	if e.due.IsZero() {
		e.due = c.cfg.Clock()
	}
	return nil
}

// stepLocked applies the rules after a change and returns the votes to
// gossip. It may finalize the height.
func (c *Committee) stepLocked() [][]byte {
	e := c.bft
	q := c.cfg.Genesis.Quorum()
	var out [][]byte
	for progress := true; progress; {
		progress = false
		// Final: a quorum of precommits of one round for one block.
		finalized := false
		for k, v := range e.votes {
			if k.typ != ledger.Precommit || len(v) < q {
				continue
			}
			p := e.props[k.hash]
			if p == nil || p.next == nil {
				kk := k
				e.decided = &kk // fetched from the others (bftLoop)
				continue
			}
			c.finalizeLocked(p, k.round, v)
			finalized = true
			break
		}
		if finalized {
			progress = true // on to the next height, and what came for it
			continue
		}
		// A polka in this or a later round: lock and precommit.
		for k, v := range e.votes {
			if k.typ != ledger.Prevote || len(v) < q {
				continue
			}
			if int64(k.round) > e.validRound {
				e.validRound, e.validHash = int64(k.round), k.hash
			}
			p := e.props[k.hash]
			if k.round < e.round || p == nil || p.err != nil {
				continue
			}
			if k.round > e.round {
				e.enterRound(k.round, c.cfg.Clock())
			}
			if msg := c.voteLocked(ledger.Precommit, k.round, k.hash); msg != nil {
				out = append(out, msg)
				progress = true
			}
		}
		// The round's proposal: prevote it, unless locked on another (or
		// this member precommitted in the round already, after a polka it
		// jumped to).
		for hash, p := range e.props {
			if !p.rounds[e.round] || p.err != nil || e.first[signerKey{ledger.Precommit, e.round, c.self}] != nil {
				continue
			}
			if e.lockRound >= 0 && e.lockHash != hash && e.polkaRound(hash, q) <= e.lockRound {
				continue
			}
			if msg := c.voteLocked(ledger.Prevote, e.round, hash); msg != nil {
				out = append(out, msg)
				progress = true
			}
		}
	}
	return out
}

// voteLocked signs a vote through the guard, records it, and returns the
// message to gossip (nil: already voted, or refused).
func (c *Committee) voteLocked(t ledger.VoteType, round uint32, hash [32]byte) []byte {
	e := c.bft
	if c.excluded(c.self) {
		return nil
	}
	if f := e.first[signerKey{t, round, c.self}]; f != nil {
		return nil // one vote per (step, round)
	}
	var lock *[32]byte
	if t == ledger.Precommit {
		lock = &hash
	}
	sig, err := c.guard.sign(t, e.height, round, hash, lock)
	if err != nil {
		c.log.Warn("vote not signed", "step", t, "height", e.height, "round", round, "err", err)
		return nil
	}
	if t == ledger.Precommit {
		e.lockRound, e.lockHash = int64(round), hash
	}
	v := &voteMsg{typ: t, height: e.height, round: round, hash: hash, signer: c.self, sig: sig}
	c.addVoteLocked(v)
	return v.marshal()
}

// send gossips votes, outside the engine's lock.
func (c *Committee) send(msgs [][]byte) {
	for _, msg := range msgs {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.publish(c.ctx, c.blocks, msg); err != nil {
				c.log.Debug("gossip vote", "err", err)
			}
		}()
	}
}

// finalizeLocked applies a final block: stores it with the precommits,
// installs its state, and goes to the next height.
func (c *Committee) finalizeLocked(p *proposal, round uint32, sigs map[peer.ID][]byte) {
	b := &ledger.Block{Header: p.block.Header, Txs: p.block.Txs}
	signers := make([]peer.ID, 0, len(sigs))
	for id := range sigs {
		signers = append(signers, id)
	}
	slices.Sort(signers)
	for _, id := range signers {
		if len(b.Sigs) >= ledger.MaxBlockSigs {
			break
		}
		_ = b.AddSignature(ledger.Signature{Signer: id, Sig: ledger.PrecommitSig(round, sigs[id])})
	}
	c.installLocked(b, p.raw, p.next)
}

// installLocked makes b (final, applying to the current state as next)
// this member's next block; raw is its encoding without signatures (nil:
// the store encodes it).
func (c *Committee) installLocked(b *ledger.Block, raw []byte, next *ledger.State) {
	e := c.bft
	if err := c.chain.put(b, raw); err != nil {
		panic(fmt.Sprintf("committee: store final block %d: %v", b.Header.Height, err))
	}
	c.fsm.install(next)
	c.metrics.blocks.Inc()
	c.metrics.finals.Inc()
	var included []*pod.Receipt
	for i := range b.Txs {
		if b.Txs[i].Kind == ledger.KindReceipt {
			included = append(included, b.Txs[i].Receipt)
		}
	}
	c.cfg.Pool.Done(included)
	c.dropIncluded(b)
	now := c.cfg.Clock()
	e.reset(b.Header.Height+1, now)
	close(e.changed)
	e.changed = make(chan struct{})
	select {
	case c.final <- b.Header.Height:
	default:
	}
	if b.Header.Proposer == c.self && c.cfg.Schedule != nil {
		select { // ordersLoop publishes its orders with their proofs
		case c.finalOrders <- b.Header.Height:
		default: // the next epoch's renewals order the same boxes
		}
	}
	if a := e.next; a != nil && a.block.Header.Height == e.height {
		e.next = nil
		// Judged now if it was applied in advance on this state already;
		// else applied without the lock (Raft's requests wait for it:
		// raftAllowed), then judged.
		if a.appliedOn(next) {
			c.admitAheadLocked(a, a.next, a.err, next, now)
		} else {
			c.wg.Add(1)
			go c.judgeAhead(a, next)
		}
	}
	ahead := e.ahead
	e.ahead = nil
	for _, v := range ahead {
		switch {
		case v.height == e.height:
			c.addVoteLocked(v)
		case v.height > e.height:
			e.ahead = append(e.ahead, v)
		}
	}
}

// dropIncluded takes a final block's account transactions out of this
// member's pool.
func (c *Committee) dropIncluded(b *ledger.Block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range b.Txs {
		if b.Txs[i].Kind != ledger.KindReceipt {
			c.txpool.drop(b.Txs[i].ID())
		}
	}
}

// excluded reports whether evidence in the final chain excluded a member
// (ledger.KindEvidence): its votes count for nothing, it proposes
// nothing this member votes for, and its Raft traffic is refused.
func (c *Committee) excluded(id peer.ID) bool { return c.fsm.current().Excluded(id) }

// equivocated handles two votes of one signer for one (step, round) and
// two blocks.
func (c *Committee) equivocated(a, b *voteMsg) {
	c.log.Warn("a member signed two blocks for one height and round", "signer", a.signer, "height", a.height,
		"round", a.round, "step", a.typ, "a", fmt.Sprintf("%x", a.hash[:6]), "b", fmt.Sprintf("%x", b.hash[:6]))
	c.metrics.equivocations.Inc()
	c.keepEvidence(a, b)
}

// keepEvidence turns two conflicting votes into a ledger.KindEvidence
// transaction, once per member: kept for this member's next block, handed
// to the leader and gossiped, so the next final block excludes the
// signer whoever leads.
func (c *Committee) keepEvidence(a, b *voteMsg) {
	c.mu.Lock()
	if c.accused == nil {
		c.accused = make(map[peer.ID]bool)
	}
	done := c.accused[a.signer]
	c.accused[a.signer] = true
	c.mu.Unlock()
	if done {
		return
	}
	tx := ledger.NewEvidenceTx(ledger.NewEvidence(a.signer, a.typ, a.height, a.round, a.hash, a.sig, b.hash, b.sig))
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.submit(c.ctx, tx, true); err != nil && c.ctx.Err() == nil {
			c.log.Warn("evidence not submitted", "signer", a.signer, "err", err)
		}
	}()
}

// drop removes a transaction a final block took.
func (p *txPool) drop(id [32]byte) {
	tx, ok := p.txs[id]
	if !ok {
		return
	}
	delete(p.txs, id)
	if c := p.counts(tx); c[tx.From] <= 1 {
		delete(c, tx.From)
	} else {
		c[tx.From]--
	}
}

// raftAllowed is the Raft transport's admission: committee members this
// member does not deny right now.
func (c *Committee) raftAllowed(p peer.ID) bool {
	if !c.cfg.Genesis.IsMember(p) {
		return false
	}
	if c.bft == nil {
		return true
	}
	if c.excluded(p) {
		return false
	}
	e := c.bft
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.denied[p]
	if ok && c.cfg.Clock().After(until) {
		delete(e.denied, p)
		return true
	}
	return !ok
}

// bftLoop watches the round's deadline and fetches decided blocks this
// member lacks.
func (c *Committee) bftLoop(ctx context.Context) {
	defer c.wg.Done()
	// A member that starts (or restarts from its disk) asks the others
	// for the final blocks it lacks at once: with no new block to vote
	// on, no vote would tell it that it is behind.
	c.catchUpFinal(ctx)
	t := time.NewTicker(bftTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.bftCheck(ctx)
	}
}

func (c *Committee) bftCheck(ctx context.Context) {
	e := c.bft
	now := c.cfg.Clock()
	// A block is due when this member holds a receipt of an epoch after
	// the chain's last that ended over an epoch ago: the leader closes an
	// epoch a fraction of an epoch after its end. A leader that proposes
	// nothing (its clock is wrong, or it censors) so runs out of rounds
	// too.
	e.mu.Lock()
	noneDue := e.due.IsZero()
	e.mu.Unlock()
	if noneDue {
		if cur := c.cfg.Genesis.Params().EpochAt(now); cur >= 2 && c.cfg.Pool.Waiting(c.fsm.current().Epoch()+1, cur-2) {
			leader := c.LeaderID()
			e.mu.Lock()
			if e.due.IsZero() {
				e.due = now
			}
			if e.roundLeader == "" {
				e.roundLeader = leader
			}
			e.mu.Unlock()
		}
	}
	e.mu.Lock()
	// Behind: the committee decided a block this member lacks, or voted
	// on a later height, for a while (a member normally sees a height's
	// precommits moments after the others move on) and no fetch ran in
	// the last second.
	if e.decided == nil && len(e.ahead) == 0 {
		e.behindSince = time.Time{}
	} else if e.behindSince.IsZero() {
		e.behindSince = now
	}
	behind := !e.behindSince.IsZero() && now.Sub(e.behindSince) > catchUpAfter && now.Sub(e.fetched) > catchUpAfter
	if behind {
		e.fetched = now
	}
	timedOut := false
	var failed peer.ID // the leader of the round that runs out
	if !e.due.IsZero() {
		start := e.due
		if e.roundStart.After(start) {
			start = e.roundStart
		}
		if now.Sub(start) > roundGrace*time.Duration(e.round+1)+c.cfg.Genesis.EpochLength {
			timedOut = true
			failed = e.roundLeader
			e.enterRound(e.round+1, now)
		}
	}
	round, height := e.round, e.height
	e.mu.Unlock()
	if behind || timedOut {
		// A round that ran out may be this member's own lag, not the
		// leader's fault: the others finalized the height without it
		// (it restarted, or missed the precommits) and, with nothing new
		// to vote on, sent no votes that would show it. It asks them
		// first, and blames the leader only when nothing was final.
		if c.catchUpFinal(ctx) && timedOut {
			c.log.Info("round ran out on a height the others had finalized: fetched their blocks, the leader is not refused", "height", height, "round", round)
			return
		}
	}
	if !timedOut {
		return
	}
	c.metrics.rounds.Inc()
	if failed == "" {
		failed = c.LeaderID()
	}
	c.log.Warn("no final block in time: next round, another leader", "height", height, "round", round, "failed_leader", failed)
	if failed == c.self {
		if c.raft.State() == raft.Leader {
			if err := c.raft.LeadershipTransfer().Error(); err != nil {
				c.log.Debug("leadership transfer", "err", err)
			}
		}
	} else if failed != "" {
		e.mu.Lock()
		e.denied[failed] = now.Add(denyFor)
		e.mu.Unlock()
	}
	e.mu.Lock()
	out := c.stepLocked()
	e.mu.Unlock()
	c.send(out)
}

// catchUpFinal fetches final blocks from the other members when this
// member saw the committee decide a height it has not (or votes for
// heights above its own), verifies them as any peer does, and installs
// them.
//
// It reports whether the chain moved: this member's height advanced,
// fetched or finalized meanwhile.
func (c *Committee) catchUpFinal(ctx context.Context) (moved bool) {
	base := c.fsm.current()
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	next, blocks, err := SyncFrom(sctx, c.cfg.Host, c.cfg.Genesis, base)
	if err != nil || len(blocks) == 0 {
		return c.fsm.current() != base
	}
	e := c.bft
	e.mu.Lock()
	defer e.mu.Unlock() // before the deferred send
	if c.fsm.current() != base {
		return true // finalized meanwhile
	}
	s := base
	for _, b := range blocks {
		n, err := ledger.Apply(s, b)
		if err != nil {
			c.log.Warn("fetched final block does not apply", "height", b.Header.Height, "err", err)
			return s != base
		}
		c.installLocked(b, nil, n)
		s = n
	}
	out := c.stepLocked()
	defer c.send(out)
	if s.Hash() != next.Hash() {
		c.log.Error("fetched final blocks replay to another state", "height", s.Height())
	}
	c.log.Info("fetched final blocks", "to", s.Height(), "blocks", len(blocks))
	return true
}

// resetBFT starts the consensus over at the height after s, which the
// member reached another way (a Raft snapshot: fsm.Restore).
func (c *Committee) resetBFT(s *ledger.State) {
	e := c.bft
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.Height()+1 > e.height {
		e.reset(s.Height()+1, c.cfg.Clock())
		close(e.changed)
		e.changed = make(chan struct{})
	}
}

// waitHeight waits until the final chain passes height or d passes.
func (c *Committee) waitHeight(ctx context.Context, height uint64, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		e := c.bft
		e.mu.Lock()
		ch, h := e.changed, e.height
		e.mu.Unlock()
		if h > height {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// proposeBFT is propose under FinalityBFT: re-propose the block the
// committee polkaed last at this height, if any, else build one on the
// final state.
//
// Pipelining: when this member proposed at its height and round already
// and that proposal is valid, it proposes the next height on the state
// that proposal leaves (leaving out the pooled receipts it holds), while
// the committee votes on the first; the members keep it until its parent
// is final and only then judge it and vote (see ahead). The voting rules,
// the lock and the guard are the same for every height, so pipelining
// changes when a proposal arrives, not what a member signs: should the
// parent height finalize another block (a later round, another leader),
// the pipelined proposal does not apply to the state it left and no
// honest member prevotes it. One proposal is in flight ahead at most:
// having proposed at height h+1, the leader waits for h to be final.
// A block's account transactions go back to the pool when it is not
// final in time (a watcher, so the leader goes on meanwhile).
func (c *Committee) proposeBFT(ctx context.Context, epoch uint64) (full bool, err error) {
	if err := c.raft.Barrier(applyTimeout).Error(); err != nil {
		return false, fmt.Errorf("barrier: %w", err)
	}
	e := c.bft
	e.mu.Lock()
	s := c.fsm.current()
	if e.height != s.Height()+1 {
		e.mu.Unlock()
		return false, nil
	}
	round, height, base := e.round, e.height, s
	var again, own *proposal
	if e.proposed == int64(round) {
		own = e.props[e.proposedHash]
		moved := (e.validRound >= 0 && e.validHash != e.proposedHash) || (e.lockRound >= 0 && e.lockHash != e.proposedHash)
		if e.pipelined.height > height || moved {
			e.mu.Unlock()
			return false, nil // a proposal ahead already, or the committee went for another block
		}
		if own == nil || own.next == nil {
			// This member's proposal is unknown or invalid here (one it
			// pipelined on a block that did not become final): propose
			// afresh on the final state.
			own = nil
		} else {
			round, height, base = 0, height+1, own.next
		}
	}
	switch {
	case own != nil: // pipelined
	case e.validRound >= 0:
		again = e.props[e.validHash]
	case e.lockRound >= 0:
		again = e.props[e.lockHash]
	}
	e.mu.Unlock()
	var bl *built
	requeue := func() {}
	if again != nil && again.next != nil {
		data := again.raw
		if data == nil {
			data = (&ledger.Block{Header: again.block.Header, Txs: again.block.Txs}).Marshal()
		}
		bl = &built{block: again.block, parent: s, state: again.next, data: data}
	} else {
		var taken map[*pod.Receipt]struct{}
		if own != nil {
			taken = make(map[*pod.Receipt]struct{}, len(own.block.Txs))
			for i := range own.block.Txs {
				if r := own.block.Txs[i].Receipt; r != nil {
					taken[r] = struct{}{}
				}
			}
		}
		if bl, full, requeue, err = c.buildBlock(base, epoch, taken); err != nil || bl == nil {
			return false, err
		}
	}
	entry := encodeProposal(round, bl.data)
	c.fsm.proposed(&built{data: entry, block: bl.block, parent: base, state: bl.state})
	e.mu.Lock()
	hash := bl.block.Hash()
	if own == nil && e.height == height {
		e.proposed, e.proposedHash = int64(round), hash
	}
	equivocate := c.testEquivocate
	e.mu.Unlock()
	// The harness stands for a leader whose log entries differ per
	// follower: only a member that leads can do that.
	if equivocate != nil && own == nil && c.raft.State() == raft.Leader {
		equivocate(round, bl.block, s)
	}
	if err := c.raft.Apply(entry, applyTimeout).Error(); err != nil {
		requeue()
		return false, fmt.Errorf("raft apply: %w", err)
	}
	limit := roundGrace*time.Duration(round+1) + c.cfg.Genesis.EpochLength
	if own != nil {
		e.mu.Lock()
		switch {
		case e.height < height: // the parent is not final yet: this becomes proposed once it is
			e.pipelined.height, e.pipelined.round, e.pipelined.hash = height, int64(round), hash
		case e.height == height && e.proposed < 0:
			e.proposed, e.proposedHash = int64(round), hash
		}
		e.mu.Unlock()
		limit += roundGrace + c.cfg.Genesis.EpochLength // its parent's votes first
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if !c.waitHeight(c.ctx, height, limit) {
			requeue()
			if c.ctx.Err() == nil {
				c.log.Warn("block not final in time: its account transactions go back to the pool", "height", height, "round", round)
			}
			return
		}
		c.log.Info("block final", "height", height, "round", round, "epoch", bl.block.Header.Epoch, "txs", len(bl.block.Txs), "full", full)
	}()
	if own != nil && !c.waitHeight(ctx, height-1, limit) {
		return false, fmt.Errorf("block %d not final in time, with block %d proposed on it", height-1, height)
	}
	return full, nil
}
