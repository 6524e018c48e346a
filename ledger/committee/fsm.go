package committee

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/intake"
)

// fsm applies the blocks of the Raft log to the ledger state. Its state is
// the chain store: a snapshot is only the height it covers, a restore
// replays the stored blocks.
type fsm struct {
	g     *ledger.Genesis
	chain *chain
	// applied runs after a block is stored, with the previous block's
	// epoch: sign it, unless the member refuses (see checkEpoch).
	applied func(b *ledger.Block, parentEpoch uint64)
	// signable is the signing rule on a block's epoch (checkEpoch on this
	// member's clock; nil: any). A follower does not apply early a block
	// it will not sign: early apply only hastens signatures.
	signable func(h *ledger.Header, parentEpoch uint64) error
	// catchUp fetches the final blocks after base from the other members
	// and verifies them (SyncFrom): a snapshot from the leader may cover
	// blocks this member never had (see Restore).
	catchUp func(base *ledger.State) (*ledger.State, []*ledger.Block, error)
	// committee takes the proposals under FinalityBFT (bft.go): the log
	// then orders proposals, and the state moves only with final blocks.
	committee *Committee

	mu    sync.RWMutex
	state *ledger.State
	built *built // the leader's last proposal
	early *early // a follower's last entry, applied ahead of its commit
}

// built is a block the leader built with ledger.Build, which returned the
// state after it: Apply(parent, block) is that state, so when the entry
// comes back from the log on the leader it is not applied a second time.
type built struct {
	data          []byte // the log entry
	block         *ledger.Block
	parent, state *ledger.State
}

// early is a log entry a follower applies to its state as soon as the
// entry is in its log, while the leader waits for a majority to store it
// and then tells the followers it is committed: when Apply gets the entry
// it only installs the result (a block of 40,000 receipts takes ~0.25 s
// to decode and apply, which was on the path to every block's final
// signature). Apply is pure, so applying early gives what Apply would;
// the result is used only if the state it was applied to is still the
// current one.
type early struct {
	built                 // data is set at once, the rest once done is closed
	done    chan struct{} // closed when the fields below are set
	err     error         // Apply's verdict on parent
	decoded *ledger.Block // the entry's block, decoded (nil: it is not one)
}

// prepare applies data early, in the background, if it is a block that
// follows the current state (see early). Entries Raft stores on the
// leader are its own proposals, which it built already.
func (f *fsm) prepare(data []byte) {
	f.mu.Lock()
	if pb := f.built; pb != nil && bytes.Equal(pb.data, data) {
		f.mu.Unlock()
		return
	}
	e := &early{built: built{data: data}, done: make(chan struct{})}
	f.early = e
	parent := f.state
	f.mu.Unlock()
	go func() {
		defer intake.Prioritize()()
		defer close(e.done)
		raw := data
		if _, blk, ok := decodeProposal(data); ok {
			raw = blk
		}
		b, err := ledger.UnmarshalBlock(raw)
		if err != nil {
			return // Apply says why
		}
		e.decoded = b // a proposal ahead (bft.go) is judged later, but decoded once
		if b.Header.Height != parent.Height()+1 {
			return // a replayed entry, or a proposal ahead
		}
		if f.signable != nil && f.signable(&b.Header, parent.Epoch()) != nil {
			return // applied at commit like any entry; judged (and counted) then
		}
		e.block, e.parent = b, parent
		e.state, e.err = ledger.Apply(parent, b)
	}()
}

// proposed records the leader's block before it goes into the log.
func (f *fsm) proposed(b *built) {
	f.mu.Lock()
	f.built = b
	f.mu.Unlock()
}

// applyResult is what Raft's Apply future returns for one entry.
type applyResult struct {
	height uint64
	err    error
}

func (f *fsm) Apply(l *raft.Log) any {
	if f.committee != nil && f.committee.bftMode() {
		return f.applyProposal(l)
	}
	f.mu.Lock()
	e := f.early
	if e != nil && bytes.Equal(e.data, l.Data) {
		f.early = nil
	} else {
		e = nil
	}
	f.mu.Unlock()
	if e != nil {
		<-e.done // Apply runs on Raft's FSM goroutine alone: the state waits
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var b *ledger.Block
	var next *ledger.State
	if pb := f.built; pb != nil && pb.parent == f.state && bytes.Equal(pb.data, l.Data) {
		b, next = pb.block, pb.state
	}
	f.built = nil
	if b == nil && e != nil && e.block != nil && e.parent == f.state {
		if e.err != nil {
			return applyResult{err: e.err} // every member reaches the same verdict
		}
		b, next = e.block, e.state
	}
	if b == nil {
		var err error
		if b, err = ledger.UnmarshalBlock(l.Data); err != nil {
			return applyResult{err: fmt.Errorf("committee: log entry %d is not a block: %w", l.Index, err)}
		}
		if b.Header.Height <= f.state.Height() {
			return applyResult{height: b.Header.Height} // replayed entry, already in the chain
		}
		if next, err = ledger.Apply(f.state, b); err != nil {
			// Every member reaches the same verdict: the block is skipped by all.
			return applyResult{err: err}
		}
	}
	var body []byte
	if len(b.Sigs) == 0 {
		body = l.Data // the leader proposes blocks unsigned: store the entry as it is
	}
	b.Sigs = nil
	if err := f.chain.put(b, body); err != nil {
		// The disk failed under a committed entry: this member cannot go on
		// without diverging, which is a broken invariant, not an input error.
		panic(fmt.Sprintf("committee: at block %d: %v", b.Header.Height, err))
	}
	parentEpoch := f.state.Epoch()
	f.state = next
	if f.applied != nil {
		f.applied(b, parentEpoch)
	}
	return applyResult{height: b.Header.Height}
}

// applyProposal hands a proposal of the log to the consensus (FinalityBFT),
// checked against the final state: the state does not move here. A
// proposal for the height after next (a leader pipelines them, see
// proposeBFT) is handed over as it is, to be judged once its parent is
// final.
func (f *fsm) applyProposal(l *raft.Log) any {
	round, raw, ok := decodeProposal(l.Data)
	if !ok {
		return applyResult{err: fmt.Errorf("committee: log entry %d is not a proposal", l.Index)}
	}
	f.mu.Lock()
	e := f.early
	if e != nil && bytes.Equal(e.data, l.Data) {
		f.early = nil
	} else {
		e = nil
	}
	f.mu.Unlock()
	if e != nil {
		<-e.done
	}
	f.mu.Lock()
	parent := f.state
	var b *ledger.Block
	var next, ownParent *ledger.State // ownParent: what the leader built its pipelined proposal on
	var err error
	ahead := false
	if pb := f.built; pb != nil && bytes.Equal(pb.data, l.Data) {
		switch {
		case pb.parent == parent:
			b, next = pb.block, pb.state
			f.built = nil
		case pb.block.Header.Height == parent.Height()+2:
			b, next, ownParent, ahead = pb.block, pb.state, pb.parent, true
			f.built = nil
		}
	}
	if b == nil && e != nil && e.block != nil && e.parent == parent {
		b, next, err = e.block, e.state, e.err
	}
	f.mu.Unlock()
	if b == nil {
		if e != nil && e.decoded != nil {
			b = e.decoded
		} else if b, err = ledger.UnmarshalBlock(raw); err != nil {
			return applyResult{err: fmt.Errorf("committee: log entry %d is not a block: %w", l.Index, err)}
		}
		switch b.Header.Height {
		case parent.Height() + 1:
			next, err = ledger.Apply(parent, b)
		case parent.Height() + 2:
			ahead = true
		default:
			return applyResult{height: b.Header.Height} // decided, or this member is behind (it syncs)
		}
	}
	if len(b.Sigs) > 0 {
		raw = nil // the store keeps blocks without the proposal's signatures
	}
	if ahead {
		f.committee.onAhead(round, b, raw, ownParent, next)
		return applyResult{height: b.Header.Height}
	}
	if err != nil {
		next = nil
	}
	f.committee.onProposal(round, b, raw, next, err)
	return applyResult{height: b.Header.Height, err: err}
}

// install makes next (the state after a final block) the current state.
func (f *fsm) install(next *ledger.State) {
	f.mu.Lock()
	f.state, f.built, f.early = next, nil, nil
	f.mu.Unlock()
}

func (f *fsm) current() *ledger.State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return heightSnapshot{height: f.current().Height(), chain: f.chain}, nil
}

// Restore brings the state to the snapshot's height from the chain store.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var buf [8]byte
	if _, err := io.ReadFull(rc, buf[:]); err != nil {
		return fmt.Errorf("committee: read snapshot: %w", err)
	}
	h := binary.BigEndian.Uint64(buf[:])
	s, err := f.chain.replay(f.g)
	if err != nil {
		return err
	}
	var fetched []*ledger.Block
	baseEpoch := s.Epoch() // the parent of the first block fetched
	if s.Height() < h {
		// The leader dropped the log entries of blocks this member missed
		// (it was cut off or down for more than trailingLogs entries): the
		// blocks come from the members' chains instead.
		have := s.Height()
		if f.catchUp == nil {
			return fmt.Errorf("committee: snapshot covers height %d but this member stores blocks up to %d: sync the chain first", h, have)
		}
		next, blocks, err := f.catchUp(s)
		if err == nil && next.Height() < h {
			err = fmt.Errorf("the members' final chains end at height %d", next.Height())
		}
		if err != nil {
			return fmt.Errorf("committee: snapshot covers height %d, this member stores blocks up to %d and could not fetch the rest (Raft sends the snapshot again): %w", h, have, err)
		}
		for _, b := range blocks {
			if err := f.chain.put(b, nil); err != nil {
				return fmt.Errorf("committee: store block %d fetched for a snapshot: %w", b.Header.Height, err)
			}
		}
		s, fetched = next, blocks
	}
	f.mu.Lock()
	f.state, f.built, f.early = s, nil, nil
	f.mu.Unlock()
	if f.committee != nil && f.committee.bftMode() {
		f.committee.resetBFT(s) // fetched blocks are final already: nothing to sign
		return nil
	}
	parentEpoch := baseEpoch
	for i, b := range fetched {
		if i > 0 {
			parentEpoch = fetched[i-1].Header.Epoch
		}
		if f.applied != nil {
			f.applied(b, parentEpoch) // sign it, as if applied from the log
		}
	}
	return nil
}

// heightSnapshot is a snapshot: the chain store holds the blocks, the
// snapshot their height. Raft drops the log entries a snapshot covers, so
// it is persisted only once the store has written every block put.
type heightSnapshot struct {
	height uint64
	chain  *chain
}

func (s heightSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.chain.wait(); err != nil {
		_ = sink.Cancel()
		return err
	}
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, s.height)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (heightSnapshot) Release() {}
