package committee

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
)

// earlyFixture is a member's FSM on a fresh chain and the entry of a
// valid first block (a publisher's deposit).
func earlyFixture(t *testing.T) (*fsm, []byte, *ledger.State) {
	t.Helper()
	var members []ledger.Member
	for range 3 {
		members = append(members, ledger.Member{ID: testkit.NewParty(t).ID, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}})
	}
	member := members[0].ID
	pub := testkit.NewParty(t)
	g, err := ledger.NewGenesis("ore-test", time.Now().Add(-time.Hour).Truncate(time.Second),
		members, map[peer.ID]uint64{pub.ID: 1_000_000}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	c, err := openChain(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	s, err := c.replay(g)
	if err != nil {
		t.Fatal(err)
	}
	tx := ledger.NewDeposit(pub.ID, 1, 500)
	if err := tx.Sign(g.Network, pub.Key); err != nil {
		t.Fatal(err)
	}
	b, next, rejected, err := ledger.Build(s, 1, member, 1, []ledger.Tx{tx})
	if err != nil || len(rejected) != 0 {
		t.Fatalf("build: %v, rejected %v", err, rejected)
	}
	return &fsm{g: g, chain: c, state: s}, b.Marshal(), next
}

func entry(data []byte) *raft.Log { return &raft.Log{Index: 5, Type: raft.LogCommand, Data: data} }

func TestEarlyApplyIsInstalledAtCommit(t *testing.T) {
	f, data, want := earlyFixture(t)
	f.prepare(data)
	e := f.early
	if e == nil {
		t.Fatal("prepare kept nothing for a follower's entry")
	}
	<-e.done
	if res := f.Apply(entry(data)).(applyResult); res.err != nil || res.height != 1 {
		t.Fatalf("apply: %+v", res)
	}
	if f.current() != e.state {
		t.Fatal("Apply applied the block again instead of installing the early state")
	}
	if f.current().Hash() != want.Hash() {
		t.Fatal("the early state is not the built one")
	}
	if f.early != nil {
		t.Fatal("the early entry outlived its Apply")
	}
}

func TestEarlyApplyRefusesWhatApplyRefuses(t *testing.T) {
	f, data, _ := earlyFixture(t)
	b, err := ledger.UnmarshalBlock(data)
	if err != nil {
		t.Fatal(err)
	}
	b.Header.StateHash[0] ^= 1
	bad := b.Marshal()
	before := f.current()
	f.prepare(bad)
	res := f.Apply(entry(bad)).(applyResult)
	if res.err == nil || f.current() != before {
		t.Fatalf("a block with a wrong state hash was applied early: %+v", res)
	}
	plain := &fsm{g: f.g, chain: f.chain, state: before} // no early entry
	if want := plain.Apply(entry(bad)).(applyResult); want.err == nil || want.err.Error() != res.err.Error() {
		t.Fatalf("early verdict %v, Apply's own %v", res.err, want.err)
	}
}

func TestEarlyApplyOnAnotherStateIsNotUsed(t *testing.T) {
	f, data, want := earlyFixture(t)
	f.prepare(data)
	<-f.early.done
	f.mu.Lock()
	f.early.parent = nil // as if the state moved on after prepare
	f.mu.Unlock()
	if res := f.Apply(entry(data)).(applyResult); res.err != nil || res.height != 1 {
		t.Fatalf("apply: %+v", res)
	}
	if f.current().Hash() != want.Hash() {
		t.Fatal("Apply's fallback reached another state")
	}
	// An entry other than the prepared one is applied on its own.
	f2, data2, want2 := earlyFixture(t)
	f2.prepare(append([]byte{}, data...)) // another chain's block: its parent is not f2's
	if res := f2.Apply(entry(data2)).(applyResult); res.err != nil || f2.current().Hash() != want2.Hash() {
		t.Fatalf("apply beside a foreign early entry: %+v", res)
	}
}

// A follower does not apply early a block it will not sign (its epoch is
// wrong by the member's clock); it applies it at commit like any entry,
// so its state stays the others'.
func TestEarlyApplySkipsUnsignableBlocks(t *testing.T) {
	f, data, want := earlyFixture(t)
	f.signable = func(*ledger.Header, uint64) error { return ErrFutureEpoch }
	f.prepare(data)
	<-f.early.done
	if f.early.block != nil {
		t.Fatal("a block ahead of the clock was applied early")
	}
	var signed []uint64
	f.applied = func(b *ledger.Block, parent uint64) { signed = append(signed, b.Header.Height) }
	if res := f.Apply(entry(data)).(applyResult); res.err != nil || res.height != 1 {
		t.Fatalf("apply: %+v", res)
	}
	if f.current().Hash() != want.Hash() || len(signed) != 1 {
		t.Fatalf("the block was not applied at commit (applied hook ran for %v)", signed)
	}
}
