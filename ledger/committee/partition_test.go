package committee

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// fabric is the loopback network of a test cluster as its hosts' connection
// gaters see it: a peer that is cut off neither dials nor accepts a peer on
// the other side, over any transport, for Raft, gossip and chain sync alike.
type fabric struct {
	mu  sync.Mutex
	cut map[peer.ID]bool
}

func newFabric() *fabric { return &fabric{cut: make(map[peer.ID]bool)} }

// apart reports whether a and b are on different sides of the partition.
func (f *fabric) apart(a, b peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[a] != f.cut[b]
}

func (f *fabric) set(p peer.ID, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[p] = cut
}

func (f *fabric) gater(self peer.ID) connmgr.ConnectionGater { return &gate{self: self, f: f} }

// gate is one host's connection gater on the fabric.
type gate struct {
	self peer.ID
	f    *fabric
}

var _ connmgr.ConnectionGater = (*gate)(nil)

func (g *gate) InterceptPeerDial(p peer.ID) bool                 { return !g.f.apart(g.self, p) }
func (g *gate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.f.apart(g.self, p) }
func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool      { return true } // the peer is not known yet
func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.f.apart(g.self, p)
}
func (g *gate) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return !g.f.apart(g.self, c.RemotePeer()), 0
}

// isolate cuts m off from the other members: no new connection either way,
// and the open ones closed (again, until none is left: a dial that passed
// the gaters just before the cut may complete just after it).
func (cl *cluster) isolate(t *testing.T, m *member) {
	t.Helper()
	cl.net.set(m.h.ID(), true)
	waitFor(t, 10*time.Second, "the partition to close every connection", func() bool {
		closed := true
		for _, o := range cl.members {
			if o == m || o.h == nil {
				continue
			}
			for _, p := range [][2]host.Host{{m.h, o.h}, {o.h, m.h}} {
				if len(p[0].Network().ConnsToPeer(p[1].ID())) > 0 {
					closed = false
					_ = p[0].Network().ClosePeer(p[1].ID())
				}
			}
		}
		return closed
	})
}

// heal lets m connect to the others again. Nobody dials on the test's
// behalf: Raft reconnects the members, as it does after a real partition.
func (cl *cluster) heal(m *member) { cl.net.set(m.h.ID(), false) }

// leaderAmong waits until one of ms leads and returns it.
func leaderAmong(t *testing.T, d time.Duration, ms ...*member) *member {
	t.Helper()
	var lead *member
	waitFor(t, d, "a leader", func() bool {
		for _, m := range ms {
			if m.c.Leader() {
				lead = m
				return true
			}
		}
		return false
	})
	return lead
}

// submitVia hands a transaction of the publisher to member m.
func (cl *cluster) submitVia(t *testing.T, m *member, tx ledger.Tx) {
	t.Helper()
	if err := tx.Sign(cl.g.Network, cl.pub.Key); err != nil {
		t.Fatal(err)
	}
	if err := m.c.Submit(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
}

// book is what the receipts published in a test must pay: per key (server,
// client, root, epoch) the bytes of the highest receipt, since receipts are
// cumulative per key and the ledger pays only the increase.
type book struct {
	cl       *cluster
	root     cid.Cid
	due      map[pod.Key]uint64
	servers  []peer.ID
	receipts []*pod.Receipt
	deposits uint64 // the publisher's escrow before any payment
}

// publish gossips, through m, streams of cumulative receipts from fresh
// servers to fresh clients and records what they owe.
func (bk *book) publish(t *testing.T, m *member, streams int) {
	t.Helper()
	for i := 0; i < streams; i++ {
		srv, cli := newAccount(t), newAccount(t)
		bk.servers = append(bk.servers, srv.ID)
		for seq := uint64(1); seq <= 3; seq++ {
			r := bk.cl.receipt(t, srv, cli, bk.root, seq)
			if err := m.in.Publish(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			bk.receipts = append(bk.receipts, r)
			bk.due[r.Key()] = max(bk.due[r.Key()], r.Bytes) // price 2^30 per GiB: one unit per byte
		}
	}
}

// replay gossips every receipt again through m: none may pay twice.
func (bk *book) replay(m *member) {
	for _, r := range bk.receipts {
		_ = m.in.Publish(context.Background(), r) // the intake may refuse an old epoch: fine
	}
}

// owed is what server earned in all.
func (bk *book) owed(server peer.ID) uint64 {
	var sum uint64
	for k, v := range bk.due {
		if k.Server == server {
			sum += v
		}
	}
	return sum
}

// settled reports whether s paid every receipt once: every server its due,
// the publisher's escrow less all of it.
func (bk *book) settled(s *ledger.State) bool {
	var total uint64
	for _, id := range bk.servers {
		if s.Balance(id) != bk.owed(id) {
			return false
		}
		total += bk.owed(id)
	}
	return s.Escrow(bk.cl.pub.ID) == bk.deposits-total
}

// TestPartitionedCoordinatorCatchesUp cuts one coordinator off from the
// other two (a follower, then the leader) while receipts and transactions
// flow, and heals it: the two keep finalizing blocks, the cut-off one makes
// none of its own, and once healed it holds the same chain and state.
//
// In "behind a snapshot", the majority snapshots and drops the log entries
// the cut-off member lacks before the heal: it installs the snapshot and
// fetches the blocks from the others' chains.
func TestPartitionedCoordinatorCatchesUp(t *testing.T) {
	for _, tc := range []struct {
		name            string
		leader, compact bool
	}{{"follower", false, false}, {"leader", true, false}, {"behind a snapshot", false, true}} {
		t.Run(tc.name, func(t *testing.T) { testPartitionHeal(t, tc.leader, tc.compact) })
	}
}

func testPartitionHeal(t *testing.T, cutLeader, compact bool) {
	if compact {
		// Truncation drops whole raft-wal segments: small ones, so the
		// entries the cut-off member lacks are gone from the others' logs.
		wasTrailing, wasSegment := trailingLogs, walSegmentSize
		trailingLogs, walSegmentSize = 1, 1<<10
		t.Cleanup(func() { trailingLogs, walSegmentSize = wasTrailing, wasSegment })
	}
	// Epochs of 2 s: receipts stay valid for 6 s without a block, through
	// the election when the leader is cut off, even on a busy machine.
	cl := newClusterEpoch(t, 2*time.Second)
	note := slog.New(slog.NewTextHandler(&cl.logs, nil)).With("member", "test").Info
	lead := cl.leader(t, 10*time.Second)
	bk := &book{cl: cl, root: testkit.Root(t, "partition"), due: make(map[pod.Key]uint64), deposits: 500_000_000_000}
	nonce := uint64(0)
	next := func() uint64 { nonce++; return nonce }
	cl.submitVia(t, lead, ledger.NewDeposit(cl.pub.ID, next(), bk.deposits))
	cl.submitVia(t, lead, ledger.NewRegister(cl.pub.ID, next(), bk.root, 0))
	all := cl.members
	waitFor(t, 15*time.Second, "deposit and registration on every member", func() bool {
		for _, m := range all {
			if _, ok := m.c.State().Registration(bk.root); !ok {
				return false
			}
		}
		return true
	})

	// Receipts before the partition, paid on every member.
	note("publish before the cut")
	bk.publish(t, lead, 2)
	waitFor(t, 15*time.Second, "the first receipts paid everywhere", func() bool {
		for _, m := range all {
			if !bk.settled(m.c.State()) {
				return false
			}
		}
		return true
	})

	// The cut.
	cut := lead
	if !cutLeader {
		for _, m := range all {
			if m != lead {
				cut = m
				break
			}
		}
	}
	var rest []*member
	for _, m := range all {
		if m != cut {
			rest = append(rest, m)
		}
	}
	start := time.Now()
	note("cut", "member", cut.h.ID().ShortString())
	cl.isolate(t, cut)
	major := leaderAmong(t, 15*time.Second, rest...)
	t.Logf("cut off %s (leader: %v); the majority's leader after %s", cut.h.ID().ShortString(), cutLeader, time.Since(start))
	waitFor(t, 5*time.Second, "the cut-off member to step down", func() bool { return !cut.c.Leader() })

	// The majority goes on: receipts (and the old ones again), account
	// transactions, blocks final with its two signatures.
	firstCutNonce := nonce + 1
	bk.publish(t, rest[0], 2)
	bk.replay(rest[1])
	for i := 0; i < 3; i++ {
		before := major.c.State().Height()
		cl.submitVia(t, rest[i%2], ledger.NewDeposit(cl.pub.ID, next(), 1))
		bk.deposits++
		waitFor(t, 15*time.Second, "a block final on the majority", func() bool {
			for _, m := range rest {
				if b, ok := m.c.Block(before + 1); !ok || !b.Final(cl.g) {
					return false
				}
			}
			return true
		})
	}
	waitFor(t, 15*time.Second, "the receipts paid by the majority", func() bool {
		for _, m := range rest {
			if !bk.settled(m.c.State()) || m.c.State().Nonce(cl.pub.ID) != nonce {
				return false
			}
		}
		return true
	})

	// The cut-off member saw none of it, and every block it holds is the
	// majority's: no block of its own, final or not.
	cs, ms := cut.c.State(), major.c.State()
	if cs.Nonce(cl.pub.ID) >= firstCutNonce {
		t.Fatalf("the cut-off member applied a transaction made during the partition (nonce %d)", cs.Nonce(cl.pub.ID))
	}
	if cs.Height() >= ms.Height() {
		t.Fatalf("the cut-off member is at height %d, the majority at %d", cs.Height(), ms.Height())
	}
	for h := uint64(1); h <= cut.c.chain.height(); h++ {
		if a, b := mustBlock(t, cut, h), mustBlock(t, major, h); a.Hash() != b.Hash() {
			t.Fatalf("block %d of the cut-off member (final: %v) is not the majority's", h, a.Final(cl.g))
		}
	}
	missed := ms.Height() - cs.Height()
	if compact {
		for _, m := range rest {
			if err := m.c.raft.Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
		cutLast, err := cut.c.store.LastIndex()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rest {
			var l raft.Log
			if err := m.c.store.GetLog(cutLast+1, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("entry %d, the first the cut-off member lacks, still in a member's log (%v): it needs no snapshot", cutLast+1, err)
			}
		}
	}

	// Heal: the member catches up by itself, to one chain and one state.
	start = time.Now()
	note("heal")
	cl.heal(cut)
	waitFor(t, 45*time.Second, "the healed member catching up", func() bool { return oneChain(cl) })
	t.Logf("caught up %d blocks after %s", missed, time.Since(start))

	// The blocks it missed gather its signature on every member: it signs
	// them as it applies them, and gossips the signatures once its mesh is
	// back.
	waitFor(t, 15*time.Second, "the healed member's signature on the blocks it missed", func() bool {
		for _, m := range all {
			for h := cs.Height() + 1; h <= ms.Height(); h++ {
				if b, ok := m.c.Block(h); !ok || !signedBy(b, cut.h.ID()) {
					return false
				}
			}
		}
		return true
	})

	// It is a full member again: receipts (and every old one once more)
	// and a transaction through it make blocks it signs, on every member.
	note("publish and submit through the healed member")
	bk.publish(t, cut, 1)
	bk.replay(cut)
	before := cut.c.State().Height()
	cl.submitVia(t, cut, ledger.NewDeposit(cl.pub.ID, next(), 1))
	bk.deposits++
	waitFor(t, 15*time.Second, "every receipt paid once, in blocks the healed member signed, on every member", func() bool {
		if !oneChain(cl) {
			return false
		}
		for _, m := range all {
			s := m.c.State()
			if !bk.settled(s) || s.Nonce(cl.pub.ID) != nonce {
				return false
			}
			for h := before + 1; h <= s.Height(); h++ {
				if b, ok := m.c.Block(h); !ok || !signedBy(b, cut.h.ID()) {
					return false
				}
			}
		}
		return true
	})
	for _, m := range all {
		s := m.c.State()
		var total uint64
		for _, a := range s.Accounts() {
			total += s.Balance(a) + s.Escrow(a) + s.Account(a).Reserved
		}
		if total != s.Supply() {
			t.Errorf("supply not conserved: %d != %d", total, s.Supply())
		}
	}
}

func mustBlock(t *testing.T, m *member, h uint64) *ledger.Block {
	t.Helper()
	b, ok := m.c.Block(h)
	if !ok {
		t.Fatalf("no block %d", h)
	}
	return b
}

func signedBy(b *ledger.Block, id peer.ID) bool {
	for _, s := range b.Sigs {
		if s.Signer == id {
			return true
		}
	}
	return false
}

// oneChain reports whether every member holds the same blocks, all final,
// and the same state.
func oneChain(cl *cluster) bool {
	ref := cl.members[0].c
	top := ref.State()
	for _, m := range cl.members {
		s := m.c.State()
		if s.Height() != top.Height() || s.Hash() != top.Hash() {
			return false
		}
	}
	for h := uint64(1); h <= top.Height(); h++ {
		want, ok := ref.Block(h)
		if !ok {
			return false
		}
		for _, m := range cl.members {
			b, ok := m.c.Block(h)
			if !ok || b.Hash() != want.Hash() || !b.Final(cl.g) {
				return false
			}
		}
	}
	return true
}
