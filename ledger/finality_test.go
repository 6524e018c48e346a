package ledger

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// bftGenesis is a FinalityBFT genesis with a committee of n.
func bftGenesis(t *testing.T, n int) (*Genesis, []party) {
	t.Helper()
	com := newParties(t, 11, n)
	var members []Member
	for i, p := range com {
		members = append(members, Member{ID: p.ID, Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4800+i)}})
	}
	g, err := NewGenesis(testNetwork, testTime, members, nil, testPrice)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]uint8{true: FinalityBFT, false: FinalityMajority}[n >= 4]; g.FinalityRule() != want {
		t.Fatalf("NewGenesis picked finality rule %d for %d members, want %d", g.FinalityRule(), n, want)
	}
	return g, com
}

func TestQuorumAndToleranceByRule(t *testing.T) {
	for _, c := range []struct {
		n, rule             int
		quorum, crash, byzt int
	}{
		{3, FinalityMajority, 2, 1, 0}, {4, FinalityMajority, 3, 1, 0}, {5, FinalityMajority, 3, 2, 0},
		{3, FinalityBFT, 3, 0, 0}, {4, FinalityBFT, 3, 1, 1}, {5, FinalityBFT, 4, 1, 1},
	} {
		g, _ := bftGenesis(t, max(c.n, 4))
		if c.n == 3 {
			g.Committee = g.Committee[:3]
		}
		g.Finality = uint8(c.rule)
		crash, byz := g.Tolerates()
		if g.Quorum() != c.quorum || crash != c.crash || byz != c.byzt {
			t.Errorf("%d members, rule %d: quorum %d, tolerates %d crashed %d byzantine; want %d, %d, %d",
				c.n, c.rule, g.Quorum(), crash, byz, c.quorum, c.crash, c.byzt)
		}
	}
}

// TestBFTFinalityCountsPrecommitsOfOneRound: 3 of 4 precommits of one
// round make a block final; 2 do not, nor 3 spread over two rounds, nor
// signatures of the majority rule, nor a precommit for another height.
func TestBFTFinalityCountsPrecommitsOfOneRound(t *testing.T) {
	g, com := bftGenesis(t, 4)
	s, err := NewState(g)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _, err := Build(s, 1, com[0].ID, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	precommit := func(b *Block, p party, round uint32) {
		t.Helper()
		if err := b.SignPrecommit(p.Key, round); err != nil {
			t.Fatal(err)
		}
	}
	two := &Block{Header: b.Header}
	precommit(two, com[0], 0)
	precommit(two, com[1], 0)
	if two.Final(g) {
		t.Fatal("2 of 4 precommits made a block final")
	}
	mixed := &Block{Header: b.Header}
	precommit(mixed, com[0], 0)
	precommit(mixed, com[1], 0)
	precommit(mixed, com[2], 1)
	if n := mixed.VerifySignatures(g); n != 2 || mixed.Final(g) {
		t.Fatalf("precommits of rounds 0, 0, 1 count %d (final %v), want 2", n, mixed.Final(g))
	}
	majority := &Block{Header: b.Header}
	for _, p := range com[:3] {
		if err := majority.Sign(p.Key); err != nil {
			t.Fatal(err)
		}
	}
	if majority.Final(g) {
		t.Fatal("signatures of the majority rule made a FinalityBFT block final")
	}
	// A precommit is over (height, round, hash): one for another height
	// with the same bytes does not count.
	wrong := &Block{Header: b.Header}
	for _, p := range com[:3] {
		sig, err := SignVote(p.Key, Precommit, 2, 0, b.Hash())
		if err != nil {
			t.Fatal(err)
		}
		if err := wrong.AddSignature(Signature{Signer: p.ID, Sig: PrecommitSig(0, sig)}); err != nil {
			t.Fatal(err)
		}
	}
	if wrong.Final(g) {
		t.Fatal("precommits for height 2 made block 1 final")
	}
	three := &Block{Header: b.Header, Txs: b.Txs}
	for _, p := range com[1:] {
		precommit(three, p, 7)
	}
	if !three.Final(g) {
		t.Fatal("3 of 4 precommits of round 7 did not make the block final")
	}
	if n := three.VerifySignaturesExcept(g, func(id peer.ID) bool { return id == com[1].ID }); n != 2 {
		t.Fatalf("with one signer excluded %d count, want 2", n)
	}
	if _, err := Verify(g, []*Block{three}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(g, []*Block{two}); err == nil {
		t.Fatal("a chain of a block with 2 of 4 precommits verified")
	}
}

// TestMajorityChainStillVerifies: a genesis file written before the
// finality rule existed (no "finality") keeps the majority rule and its
// hash, so a chain signed 2 of 3 under it still verifies.
func TestMajorityChainStillVerifies(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 1_000_000)
	blocks, s := finalChain(t, f, 3)
	data, err := json.Marshal(f.g)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	delete(j, "finality")
	delete(j, "tolerates")
	old, _ := json.Marshal(j)
	if strings.Contains(string(old), "finality") {
		t.Fatal("the old-style genesis names a finality rule")
	}
	g, err := ParseGenesis(old)
	if err != nil {
		t.Fatal(err)
	}
	if g.FinalityRule() != FinalityMajority || g.Quorum() != 2 {
		t.Fatalf("a genesis without finality: rule %d quorum %d, want the majority rule, 2", g.FinalityRule(), g.Quorum())
	}
	got, err := Verify(g, blocks)
	if err != nil {
		t.Fatalf("a 2-of-3 chain of an old-style genesis: %v", err)
	}
	if got.Hash() != s.Hash() {
		t.Fatal("replayed state differs")
	}
	// The same genesis under FinalityBFT is another network: another hash.
	bft := *g
	bft.Finality = FinalityBFT
	if bft.Hash() == g.Hash() {
		t.Fatal("the finality rule does not change the genesis hash")
	}
	maj := *g
	maj.Finality = FinalityMajority
	if maj.Hash() != g.Hash() {
		t.Fatal("naming the majority rule changed the genesis hash")
	}
}
