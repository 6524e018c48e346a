package committee

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/ledger"
)

func TestCheckEpoch(t *testing.T) {
	for _, tc := range []struct {
		name              string
		epoch, parent, at uint64
		want              error
	}{
		{"closes the epoch that ended", 9, 8, 10, nil},
		{"the clock's own epoch", 10, 9, 10, nil},
		{"one ahead", 11, 9, 10, nil},
		{"two ahead", 12, 9, 10, ErrFutureEpoch},
		{"far future", 1 << 62, 9, 10, ErrFutureEpoch},
		{"max epoch", ^uint64(0), 9, 10, ErrFutureEpoch},
		{"same as the parent", 9, 9, 10, nil},
		{"before the parent", 8, 9, 10, ErrPastEpoch},
		{"an old block, caught up", 3, 2, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkEpoch(tc.epoch, tc.parent, tc.at); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("checkEpoch(%d, %d, %d) = %v, want %v", tc.epoch, tc.parent, tc.at, err, tc.want)
			}
		})
	}
}

func TestForgetBeforeFollowsTheChain(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		state, closed, maxSk uint64
		want                 uint64
	}{
		{"clock and chain agree", 100, 100, 3, 97},
		// This member's clock runs 5 epochs ahead: a correct leader's next
		// block (epoch 101) still pays receipts of epoch 98.
		{"fast clock", 100, 105, 3, 97},
		{"chain ahead of the clock", 100, 90, 3, 97},
		// No block for long: the clock caps what the pool keeps.
		{"chain stalled", 100, 200, 3, 200 - 3 - forgetSlack},
		{"young network", 1, 2, 3, 0},
	} {
		if got := forgetBefore(tc.state, tc.closed, tc.maxSk); got != tc.want {
			t.Errorf("%s: forgetBefore(%d, %d, %d) = %d, want %d", tc.name, tc.state, tc.closed, tc.maxSk, got, tc.want)
		}
	}
}

// signedOwn reports whether m's own copy of block h carries m's signature.
func signedOwn(m *member, h uint64) bool {
	b, ok := m.c.Head(h)
	return ok && signedBy(b, m.h.ID())
}

// A block from the far future, committed through Raft as a hostile leader
// would (and signed by it), is applied by every member, so their states
// stay one, but no other member signs it: it is not final. Normal blocks
// before it are signed by every member, and the leader refuses to propose
// on a chain that is ahead of its clock.
func TestFarFutureBlockIsNotSigned(t *testing.T) {
	cl := newCluster(t)
	lead := cl.leader(t, 10*time.Second)
	cl.submit(t, ledger.NewDeposit(cl.pub.ID, 1, 1000))
	waitFor(t, 45*time.Second, "the first block signed by every member", func() bool {
		for _, m := range cl.members {
			if !signedOwn(m, 1) {
				return false
			}
		}
		return true
	})
	lead = cl.leader(t, 10*time.Second)

	s := lead.c.State()
	tx := ledger.NewDeposit(cl.pub.ID, s.Nonce(cl.pub.ID)+1, 1000)
	if err := tx.Sign(cl.g.Network, cl.pub.Key); err != nil {
		t.Fatal(err)
	}
	const far = uint64(1) << 62
	b, _, rejected, err := ledger.Build(s, far, lead.h.ID(), cl.clock.Now().UnixNano(), []ledger.Tx{tx})
	if err != nil || len(rejected) != 0 {
		t.Fatalf("build: %v, rejected %v", err, rejected)
	}
	h := b.Header.Height
	f := lead.c.raft.Apply(b.Marshal(), applyTimeout)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if res := f.Response().(applyResult); res.err != nil {
		t.Fatalf("the state machine refused the block: %v", res.err)
	}
	// The hostile leader signs its block and gossips the signature.
	mine, err := lead.c.sign(b)
	if err != nil {
		t.Fatal(err)
	}
	lead.c.addSig(&sigMsg{height: h, hash: b.Hash(), sig: mine})
	if err := lead.c.publish(lead.c.ctx, lead.c.blocks, (&sigMsg{height: h, hash: b.Hash(), sig: mine}).marshal()); err != nil {
		t.Fatal(err)
	}

	// Every member applies it (one state) and counts its refusal to sign.
	waitFor(t, 30*time.Second, "every member applied the block and refused it", func() bool {
		for _, m := range cl.members {
			if m.c.State().Height() != h || testutil.ToFloat64(m.c.metrics.epoch.unsigned.WithLabelValues("future_epoch")) != 1 {
				return false
			}
		}
		return true
	})
	for _, m := range cl.members {
		if m.c.State().Hash() != lead.c.State().Hash() {
			t.Fatal("the members' states differ")
		}
		if m != lead && signedOwn(m, h) {
			t.Fatalf("member %s signed a block of epoch %d", m.h.ID().ShortString(), far)
		}
		if got := testutil.ToFloat64(m.c.metrics.epoch.lead); got < 1e18 {
			t.Errorf("member %s shows an epoch lead of %v", m.h.ID().ShortString(), got)
		}
	}
	// The leader's own signature reached the others, and is not enough.
	for _, m := range cl.members {
		if m == lead {
			continue
		}
		waitFor(t, 30*time.Second, "the leader's signature gossiped", func() bool { return signedBy(mustHead(t, m, h), lead.h.ID()) })
		if mustHead(t, m, h).Final(cl.g) {
			t.Fatal("the far-future block is final")
		}
	}

	// No correct leader builds on it before its clock gets there.
	if _, err := lead.c.propose(cl.g.Params().EpochAt(cl.clock.Now()) - 1); !errors.Is(err, ErrFutureEpoch) {
		t.Fatalf("propose on a chain at epoch %d: %v, want ErrFutureEpoch", far, err)
	}
}

func mustHead(t *testing.T, m *member, h uint64) *ledger.Block {
	t.Helper()
	b, ok := m.c.Head(h)
	if !ok {
		t.Fatalf("member %s has no block %d", m.h.ID().ShortString(), h)
	}
	return b
}
