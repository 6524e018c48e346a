package ledger

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// party is an account with its key; keys come from a seed so every run
// is the same.
type party = testkit.Party

func newParties(t testing.TB, seed uint64, n int) []party { return testkit.NewParties(t, seed, n) }

func testRoot(t testing.TB, s string) cid.Cid {
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.DagProtobuf, h)
}

var testTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	testNetwork = "ore-test"
	testPrice   = 1000 // per GiB
	GiB         = 1 << 30
)

// fixture is a network: a committee of 3, publishers, servers, clients.
type fixture struct {
	g                *Genesis
	s                *State
	com, pubs        []party
	srvs, clis       []party
	members, parties map[peer.ID]party
}

func newFixture(t testing.TB, nPubs, nSrvs, nClis int, pubBalance uint64) *fixture {
	t.Helper()
	f := &fixture{com: newParties(t, 1, 3), pubs: newParties(t, 2, nPubs), srvs: newParties(t, 3, nSrvs),
		clis: newParties(t, 4, nClis), parties: make(map[peer.ID]party)}
	var members []Member
	for i, p := range f.com {
		members = append(members, Member{ID: p.ID, Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4700+i)}})
	}
	bal := make(map[peer.ID]uint64)
	for _, p := range f.pubs {
		bal[p.ID] = pubBalance
	}
	for _, ps := range [][]party{f.com, f.pubs, f.srvs, f.clis} {
		for _, p := range ps {
			f.parties[p.ID] = p
		}
	}
	g, err := NewGenesis(testNetwork, testTime, members, bal, testPrice)
	if err != nil {
		t.Fatal(err)
	}
	// Rules 3, whose rules most tests here try: every receipt of
	// registered content pays. Tests of rules 4 set them (newFixtureV4).
	g.Rules = RulesV3
	// The state rules' tests sign blocks by a majority, and their golden
	// state hashes chain from this genesis's hash: they keep the first
	// finality rule. finality_test.go tests FinalityBFT.
	g.Finality = FinalityMajority
	f.g = g
	if f.s, err = NewState(g); err != nil {
		t.Fatal(err)
	}
	return f
}

// signed returns an account transaction with the next nonce of its
// signer in s, signed.
func (f *fixture) signed(t testing.TB, s *State, tx Tx) Tx {
	t.Helper()
	if tx.Nonce == 0 {
		tx.Nonce = s.Nonce(tx.From) + 1
	}
	if err := tx.Sign(testNetwork, f.parties[tx.From].Key); err != nil {
		t.Fatal(err)
	}
	return tx
}

// receipt returns a receipt signed by both sides.
func receipt(t testing.TB, srv, cli party, root cid.Cid, epoch, bytes uint64, mutate func(*pod.Receipt)) *pod.Receipt {
	t.Helper()
	r := &pod.Receipt{Version: pod.Version, Network: testNetwork, Epoch: epoch, Server: srv.ID, Client: cli.ID,
		Root: root, Seq: 1 + bytes/4096, Bytes: bytes, Blocks: max(1, (bytes+pod.MaxBlockSize-1)/pod.MaxBlockSize)}
	r.Digest = pod.Chain(r.Digest, root)
	if mutate != nil {
		mutate(r)
	}
	return testkit.Signed(t, r, srv, cli)
}

// sizedRoot returns a root named name whose DAG is size bytes by its
// block, and the block: a dag-pb node whose one link declares the rest
// (size must exceed the node), or a raw block of size bytes.
func sizedRoot(t testing.TB, name string, size uint64, raw bool) (cid.Cid, []byte) {
	t.Helper()
	if raw {
		b := make([]byte, size)
		copy(b, name)
		h, err := mh.Sum(b, mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		return cid.NewCidV1(cid.Raw, h), b
	}
	leaf := testRoot(t, name+"/leaf")
	node := func(tsize uint64) *merkledag.ProtoNode {
		nd := merkledag.NodeWithData([]byte(name))
		if err := nd.AddRawLink("leaf", &format.Link{Cid: leaf, Size: tsize}); err != nil {
			t.Fatal(err)
		}
		nd.SetCidBuilder(merkledag.V1CidPrefix())
		return nd
	}
	// The node's length depends on the varint of the size it declares:
	// declare the rest until the two agree.
	tsize := uint64(0)
	for range 4 {
		n := uint64(len(node(tsize).RawData()))
		if n >= size {
			t.Fatalf("a root of %d bytes is smaller than its own node", size)
		}
		if n+tsize == size {
			nd := node(tsize)
			return nd.Cid(), nd.RawData()
		}
		tsize = size - n
	}
	t.Fatalf("no dag-pb node declares %d bytes in all", size)
	return cid.Undef, nil
}

// build builds a block and fails the test if any transaction is refused.
func (f *fixture) build(t testing.TB, s *State, epoch uint64, txs ...Tx) (*Block, *State) {
	t.Helper()
	b, n, rej, err := Build(s, epoch, f.com[0].ID, int64(epoch)*int64(10*time.Second), txs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rej {
		t.Fatalf("tx %d refused (%s): %v", r.Index, r.Reason, r.Err)
	}
	checkSupply(t, n)
	return b, n
}

// advance builds and applies a block, checking Apply agrees with Build.
func (f *fixture) advance(t testing.TB, epoch uint64, txs ...Tx) *State {
	t.Helper()
	b, n := f.build(t, f.s, epoch, txs...)
	got, err := Apply(f.s, b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != n.Hash() || got.LastHash() != n.LastHash() {
		t.Fatal("Apply and Build disagree")
	}
	f.s = got
	return got
}

// forced builds a block of txs without checking them: a header that
// follows s, the right TxRoot, a made-up state hash.
func forced(s *State, proposer peer.ID, epoch uint64, txs ...Tx) *Block {
	b := &Block{Header: Header{Version: Version, Height: s.Height() + 1, Prev: s.LastHash(), Epoch: epoch, Proposer: proposer}, Txs: txs}
	b.Header.TxRoot = MerkleRoot(b.TxIDs())
	return b
}

// checkSupply checks conservation and that the cached hash is the state's.
func checkSupply(t testing.TB, s *State) {
	t.Helper()
	var sum uint64
	for _, a := range s.accounts {
		if a == (Account{}) {
			t.Fatal("zero account stored")
		}
		sum += a.Balance + a.Escrow + a.Reserved
	}
	sum += s.jobs.locked() // RulesV5: bonds and held pay
	if sum != s.Supply() {
		t.Fatalf("supply %d, accounts hold %d", s.Supply(), sum)
	}
	if s.computeHash() != s.Hash() {
		t.Fatal("state changed after its hash was taken")
	}
	if freshHash(s) != s.Hash() {
		t.Fatal("the state hash, with every paid section hashed anew, differs from the one its blocks built")
	}
}

// freshHash hashes a copy of s whose paid sections and ticket shards are
// all new, merged and hashed from scratch: what the sections shared between states and
// hashed once must give.
func freshHash(s *State) [32]byte {
	c := *s
	c.paid = make(map[uint64]*paidEpoch, len(s.paid))
	for e, p := range s.paid {
		c.paid[e] = &paidEpoch{owner: &c, bytes: maps.Clone(p.bytes), added: slices.Collect(maps.Keys(p.bytes)), spent: maps.Clone(p.spent),
			claimed: maps.Clone(p.claimed), open: maps.Clone(p.open), replicated: maps.Clone(p.replicated)}
	}
	c.ordersHash, c.ordersOwned = [32]byte{}, true
	for i, sh := range s.tickets {
		if sh != nil {
			c.tickets[i] = &ticketShard{owner: &c, m: maps.Clone(sh.m)}
		}
	}
	return c.computeHash()
}

// wantReason checks that Build refuses tx with reason, and that Apply
// fails on a block that carries it anyway.
func (f *fixture) wantReason(t *testing.T, s *State, epoch uint64, tx Tx, want Reason) {
	t.Helper()
	_, n, rej, err := Build(s, epoch, f.com[0].ID, 0, []Tx{tx})
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 1 || rej[0].Reason != want || rej[0].Index != 0 {
		t.Fatalf("Build refused %+v, want one with reason %s", rej, want)
	}
	if n.Hash() == s.Hash() {
		t.Fatal("same hash across heights")
	}
	_, err = Apply(s, forced(s, f.com[0].ID, epoch, tx))
	var te *TxError
	if !errors.As(err, &te) || te.Reason != want || !errors.Is(err, ErrInvalidTx) {
		t.Fatalf("Apply: %v, want a TxError with reason %s", err, want)
	}
	if ReasonOf(err) != want {
		t.Fatalf("ReasonOf = %s", ReasonOf(err))
	}
}
