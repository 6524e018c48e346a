package committee

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// checkOneHistory fails t unless every running member holds the same
// final chain up to the lowest height among them, each block final under
// the genesis's rule, and the chain verifies from genesis to the state of
// the member that holds it.
func (cl *cluster) checkOneHistory(t *testing.T) {
	t.Helper()
	var ref *member
	low := ^uint64(0)
	for _, m := range cl.members {
		if m.c != nil {
			low = min(low, m.c.State().Height())
			if ref == nil {
				ref = m
			}
		}
	}
	for h := uint64(1); h <= low; h++ {
		want, ok := ref.c.Block(h)
		if !ok {
			t.Fatalf("block %d missing", h)
		}
		for _, m := range cl.members {
			if m.c == nil {
				continue
			}
			b, ok := m.c.Block(h)
			if !ok || b.Hash() != want.Hash() {
				t.Fatalf("two blocks at height %d", h)
			}
			if !b.Final(cl.g) {
				t.Fatalf("block %d stored but not final (%d of %d)", h, b.VerifySignatures(cl.g), cl.g.Quorum())
			}
		}
	}
	blocks, err := ref.c.Blocks(1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.Verify(cl.g, blocks)
	if err != nil {
		t.Fatalf("the chain does not verify from genesis: %v", err)
	}
	if s.Hash() != ref.c.State().Hash() {
		t.Fatal("the chain replays to another state than the member's")
	}
	var total uint64
	for _, a := range s.Accounts() {
		total += s.Balance(a) + s.Escrow(a)
	}
	if total != s.Supply() {
		t.Fatalf("supply not conserved: %d != %d", total, s.Supply())
	}
}

// paying publishes receipts of fresh (server, client) pairs through
// member via, one per call, and returns what they should pay in total.
type paying struct {
	cl   *cluster
	root cid.Cid
	srv  []account
	want map[string]uint64
}

func (p *paying) pay(t *testing.T, via *member) *pod.Receipt {
	t.Helper()
	srv, cli := newAccount(t), newAccount(t)
	r := p.cl.receipt(t, srv, cli, p.root, 3)
	if err := via.in.Publish(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	p.srv = append(p.srv, srv)
	p.want[string(srv.ID)] = r.Bytes // price 2^30 per GiB: one unit per byte
	return r
}

// paidOnce waits until every receipt is paid exactly its bytes on m.
func (p *paying) paidOnce(t *testing.T, m *member, d time.Duration) {
	t.Helper()
	waitFor(t, d, "every receipt paid", func() bool {
		s := m.c.State()
		for _, srv := range p.srv {
			if s.Balance(srv.ID) != p.want[string(srv.ID)] {
				return false
			}
		}
		return true
	})
	s := m.c.State()
	for _, srv := range p.srv {
		if got := s.Balance(srv.ID); got != p.want[string(srv.ID)] {
			t.Fatalf("server paid %d, want %d", got, p.want[string(srv.ID)])
		}
	}
}

func (cl *cluster) startPaying(t *testing.T, m *member) *paying {
	root := testkit.Root(t, "bft")
	cl.register(t, m, root, 500_000_000_000)
	return &paying{cl: cl, root: root, want: make(map[string]uint64)}
}

func (cl *cluster) other(not ...*member) *member {
	for _, m := range cl.members {
		skip := m.c == nil
		for _, n := range not {
			skip = skip || m == n
		}
		if !skip {
			return m
		}
	}
	return nil
}

// TestBFTCommitteeOfFour: blocks are final with 3 of 4 precommits,
// payments go on with a member down, and the chain verifies from genesis.
func TestBFTCommitteeOfFour(t *testing.T) {
	cl := newClusterBFT(t, 4, time.Second)
	l := cl.leader(t, 10*time.Second)
	p := cl.startPaying(t, l)
	p.pay(t, l)
	p.paidOnce(t, l, 15*time.Second)
	down := cl.other(l)
	down.stop()
	p.pay(t, l)
	p.paidOnce(t, l, 15*time.Second)
	// Back from its disk (its sign guard included), it fetches the final
	// blocks it missed and votes again.
	cl.start(t, down)
	for _, m := range cl.members {
		if m != down {
			_ = down.h.Connect(context.Background(), peer.AddrInfo{ID: m.h.ID(), Addrs: m.h.Addrs()})
		}
	}
	p.pay(t, l)
	p.paidOnce(t, down, 20*time.Second)
	cl.checkOneHistory(t)
}

// TestBFTEquivocatingLeader: the leader shows a different block of the
// same height to each of the three others (a harness appends its
// proposal and injects two more, and signs prevotes and precommits for
// all three). No block gets a quorum in that round, none is ever final
// beside another at its height, the round runs out, the members stop
// taking the leader's Raft traffic, another leader finalizes the height
// and payments go on.
func TestBFTEquivocatingLeader(t *testing.T) {
	cl := newClusterBFT(t, 4, 4*time.Second)
	bad := cl.leader(t, 10*time.Second)
	p := cl.startPaying(t, bad)
	start := bad.c.State().Height()
	others := []*member{}
	for _, m := range cl.members {
		if m != bad {
			others = append(others, m)
		}
	}
	split := 0
	bad.c.setEquivocate(func(round uint32, x *ledger.Block, parent *ledger.State) {
		split++
		for i, m := range others[1:] { // others[0] gets x from the log
			y, next, _, err := ledger.Build(parent, x.Header.Epoch, bad.h.ID(), x.Header.Time+int64(i+1), x.Txs)
			if err != nil {
				t.Error(err)
				return
			}
			m.c.onProposal(round, y, nil, next, nil)
			for _, step := range []ledger.VoteType{ledger.Prevote, ledger.Precommit} {
				sig, err := ledger.SignVote(bad.key, step, y.Header.Height, round, y.Hash())
				if err != nil {
					t.Error(err)
					return
				}
				m.c.onVote(&voteMsg{typ: step, height: y.Header.Height, round: round, hash: y.Hash(), signer: bad.h.ID(), sig: sig})
			}
		}
	})
	p.pay(t, others[0])
	// Sized for a hang, not for the work: the members refuse the
	// equivocating leader's Raft traffic for 30 s and each round that
	// runs out takes its timeout, which a loaded machine stretches.
	p.paidOnce(t, others[0], 2*time.Minute)
	if split == 0 {
		t.Fatal("the leader never equivocated")
	}
	// The evidence is in a final block: every member excludes the
	// equivocating one, which leads no more (its Raft traffic is refused).
	waitFor(t, 40*time.Second, "the evidence in a final block", func() bool {
		for _, m := range cl.members {
			if !m.c.State().Excluded(bad.h.ID()) {
				return false
			}
		}
		return true
	})
	waitFor(t, 15*time.Second, "a leader other than the excluded member", func() bool {
		for _, m := range others {
			if m.c.Leader() {
				return true
			}
		}
		return false
	})
	p.pay(t, others[1])
	p.paidOnce(t, others[2], 2*time.Minute)
	cl.checkOneHistory(t)
	blocks, err := others[0].c.Blocks(1)
	if err != nil {
		t.Fatal(err)
	}
	var evidence int
	for _, b := range blocks {
		for _, tx := range b.Txs {
			if tx.Kind == ledger.KindEvidence && tx.Evidence.Signer == bad.h.ID() {
				evidence++
			}
		}
	}
	if evidence != 1 {
		t.Fatalf("%d blocks hold evidence against the equivocating member, want 1", evidence)
	}
	if cl.other(bad).c.State().Height() <= start {
		t.Fatal("no block after the equivocation")
	}
	var seen float64
	for _, m := range others {
		seen += testutil.ToFloat64(m.c.metrics.equivocations)
	}
	if seen == 0 {
		t.Fatal("no member saw the equivocation")
	}
}

// TestBFTSkewedLeaders: a leader whose clock runs an hour ahead proposes
// blocks the others refuse; one an hour behind proposes none. Each time
// another leader takes over and every receipt is paid exactly once.
func TestBFTSkewedLeaders(t *testing.T) {
	cl := newClusterBFT(t, 4, 4*time.Second)
	l := cl.leader(t, 10*time.Second)
	p := cl.startPaying(t, l)
	for _, skew := range []time.Duration{time.Hour, -time.Hour} {
		l := cl.leader(t, 10*time.Second)
		l.skew.Store(int64(skew))
		p.pay(t, cl.other(l))
		p.paidOnce(t, cl.other(l), 2*time.Minute) // a new leader after refusals of 30 s, as above
		if cl.leader(t, 10*time.Second) == l {
			t.Fatalf("the leader %s off still leads", skew)
		}
		l.skew.Store(0)
		for _, m := range cl.members {
			if m.c.State().Epoch() > cl.g.Params().EpochAt(cl.clock.Now())+1 {
				t.Fatalf("a block from the future is final: epoch %d", m.c.State().Epoch())
			}
		}
	}
	cl.checkOneHistory(t)
}

// TestBFTPipelinesOnAPendingBlock: while a block collects its precommits
// (the test holds them back), the leader proposes the next height on the
// state the pending block leaves, without the pending block's receipts;
// the members keep that proposal unvoted until its parent is final, then
// finalize both, each receipt paid once.
func TestBFTPipelinesOnAPendingBlock(t *testing.T) {
	cl := newClusterBFT(t, 4, time.Second)
	l := cl.leader(t, 10*time.Second)
	p := cl.startPaying(t, l)
	base := l.c.State().Height()
	pending := base + 1
	var mu sync.Mutex
	held := make(map[*member][]*voteMsg)
	holding := true
	for _, m := range cl.members {
		m.c.bft.mu.Lock()
		m.c.testHoldVote = func(v *voteMsg) bool {
			mu.Lock()
			defer mu.Unlock()
			if holding && v.typ == ledger.Precommit && v.height == pending {
				held[m] = append(held[m], v)
				return true
			}
			return false
		}
		m.c.bft.mu.Unlock()
	}
	first := p.pay(t, l)
	// The pending block: every member precommitted it, none counts more
	// than its own precommit.
	waitFor(t, 20*time.Second, "a proposal at the pending height precommitted by every member", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range cl.members {
			if len(held[m]) < len(cl.members)-1 {
				return false
			}
		}
		return true
	})
	second := p.pay(t, l)
	var ahead *ledger.Block
	waitFor(t, 20*time.Second, "every member to hold the leader's proposal for the height after the pending one", func() bool {
		for _, m := range cl.members {
			m.c.bft.mu.Lock()
			a, h := m.c.bft.next, m.c.bft.height
			m.c.bft.mu.Unlock()
			if h != pending || a == nil || a.block.Header.Height != pending+1 {
				return false
			}
			ahead = a.block
		}
		return true
	})
	if got := l.c.State().Height(); got != base {
		t.Fatalf("the final chain moved to height %d while the precommits were held", got)
	}
	var has1, has2 bool
	for _, tx := range ahead.Txs {
		if tx.Kind == ledger.KindReceipt {
			has1 = has1 || tx.Receipt.Key() == first.Key()
			has2 = has2 || tx.Receipt.Key() == second.Key()
		}
	}
	if has1 || !has2 {
		t.Fatalf("the pipelined proposal holds the pending block's receipt: %v, the new one: %v", has1, has2)
	}
	mu.Lock()
	holding = false
	release := held
	held = nil
	mu.Unlock()
	for m, vs := range release {
		for _, v := range vs {
			m.c.onVote(v)
		}
	}
	waitFor(t, 20*time.Second, "both heights final", func() bool { return l.c.State().Height() >= pending+1 })
	p.paidOnce(t, l, 20*time.Second)
	if b := mustBlock(t, l, pending+1); b.Hash() != ahead.Hash() {
		t.Fatal("another block than the pipelined proposal became final after the pending one")
	}
	cl.checkOneHistory(t)
}

// TestBFTSkipsToARoundOthersAreIn: votes of as many members as may lie
// (one of four) for a later round move nobody; votes of one more move a
// member to that round at once (crafted votes, signed by the members'
// keys, for a block nobody proposed).
func TestBFTSkipsToARoundOthersAreIn(t *testing.T) {
	cl := newClusterBFT(t, 4, time.Second)
	cl.leader(t, 10*time.Second)
	a := cl.members[0]
	round := func() (uint64, uint32) {
		a.c.bft.mu.Lock()
		defer a.c.bft.mu.Unlock()
		return a.c.bft.height, a.c.bft.round
	}
	height, r0 := round()
	vote := func(m *member, r uint32) {
		hash := [32]byte{byte(r), 0xAA}
		sig, err := ledger.SignVote(m.key, ledger.Prevote, height, r, hash)
		if err != nil {
			t.Fatal(err)
		}
		a.c.onVote(&voteMsg{typ: ledger.Prevote, height: height, round: r, hash: hash, signer: m.h.ID(), sig: sig})
	}
	vote(cl.members[1], r0+5)
	if h, r := round(); h != height || r != r0 {
		t.Fatalf("one member's vote for round %d moved the member to height %d round %d", r0+5, h, r)
	}
	vote(cl.members[2], r0+5)
	if h, r := round(); h != height || r != r0+5 {
		t.Fatalf("two members' votes for round %d left the member at height %d round %d", r0+5, h, r)
	}
}

// TestBFTRestartedLeaderCatchesUp: the leader of a committee of four is
// stopped while receipts keep coming (a block every epoch, proposals
// pipelined), the three others finalize without it, traffic stops, and it
// comes back from its disk: with no new block to vote on, no vote tells it
// it is behind, yet it fetches what it missed, takes the new leader's Raft
// traffic, and votes on the next receipts' block. The docker testnet does
// the same with a killed process.
func TestBFTRestartedLeaderCatchesUp(t *testing.T) {
	cl := newClusterBFT(t, 4, time.Second)
	l := cl.leader(t, 10*time.Second)
	p := cl.startPaying(t, l)
	p.pay(t, l)
	p.paidOnce(t, l, 15*time.Second)
	l.stop()
	l2 := cl.leader(t, 20*time.Second)
	h0 := l2.c.State().Height()
	for i := 0; l2.c.State().Height() < h0+5; i++ { // a receipt every 200 ms
		if i > 150 {
			t.Fatalf("five blocks without the old leader: height %d after %d receipts", l2.c.State().Height(), i)
		}
		p.pay(t, l2)
		time.Sleep(200 * time.Millisecond) // the receipts' pace, not a wait for an event
	}
	p.paidOnce(t, l2, 20*time.Second)
	cl.start(t, l)
	for _, m := range cl.members {
		if m != l && m.h != nil {
			_ = l.h.Connect(context.Background(), peer.AddrInfo{ID: m.h.ID(), Addrs: m.h.Addrs()})
		}
	}
	waitFor(t, 30*time.Second, "the restarted member at the committee's height", func() bool {
		return l.c.State().Height() >= l2.c.State().Height()
	})
	p.pay(t, l2)
	p.paidOnce(t, l, 30*time.Second)
	cl.checkOneHistory(t)
}
