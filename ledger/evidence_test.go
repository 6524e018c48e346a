package ledger

import (
	"testing"
)

// equivocation is signer's two precommits at height 1, round 0, for two
// blocks built on s (proposed by a member of s's committee).
func equivocation(t *testing.T, s *State, signer party) *Evidence {
	t.Helper()
	proposer := s.g.Committee[0].ID
	a, _, _, err := Build(s, 1, proposer, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _, err := Build(s, 1, proposer, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := SignVote(signer.Key, Precommit, 1, 0, a.Hash())
	if err != nil {
		t.Fatal(err)
	}
	sb, err := SignVote(signer.Key, Precommit, 1, 0, b.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return NewEvidence(signer.ID, Precommit, 1, 0, b.Hash(), sb, a.Hash(), sa)
}

// TestEvidenceExcludesTheSigner: two precommits of one member for one
// (height, round) are proof anyone checks; a block that takes it
// excludes the member, whose precommits then count for nothing while the
// quorum stays 3 of 4. Crafted evidence is refused.
func TestEvidenceExcludesTheSigner(t *testing.T) {
	g, com := bftGenesis(t, 4)
	s, err := NewState(g)
	if err != nil {
		t.Fatal(err)
	}
	ev := equivocation(t, s, com[3])
	tx := NewEvidenceTx(ev)
	got, err := UnmarshalTx(tx.Marshal())
	if err != nil || got.ID() != tx.ID() {
		t.Fatalf("evidence does not round-trip: %v", err)
	}
	if err := got.Authenticate(g.Network); err != nil {
		t.Fatal(err)
	}

	forged := *ev
	forged.SigB = append([]byte(nil), ev.SigA...)
	outsider := equivocation(t, s, newParties(t, 99, 1)[0])
	majority := *g
	majority.Finality = FinalityMajority
	mstate, err := NewState(&majority)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		s    *State
		e    *Evidence
		want Reason
	}{
		"forged signature":     {s, &forged, ReasonBadSignature},
		"not a member":         {s, outsider, ReasonBadSignature},
		"under majority rule":  {mstate, ev, ReasonNotInRules},
		"a height in a future": {s, &Evidence{Signer: ev.Signer, Step: ev.Step, Height: 9, A: ev.A, B: ev.B, SigA: ev.SigA, SigB: ev.SigB}, ReasonMalformed},
	} {
		b, _, rej, err := Build(c.s, 1, com[0].ID, 3, []Tx{NewEvidenceTx(c.e)})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Txs) != 0 || len(rej) != 1 || rej[0].Reason != c.want {
			t.Errorf("%s: %d taken, refused %v, want %s", name, len(b.Txs), rej, c.want)
		}
	}

	b1, s1, rej, err := Build(s, 1, com[0].ID, 3, []Tx{tx})
	if err != nil || len(rej) != 0 || len(b1.Txs) != 1 {
		t.Fatalf("evidence left out: %v %v", err, rej)
	}
	if !s1.Excluded(com[3].ID) || s.Excluded(com[3].ID) {
		t.Fatal("the block did not exclude the signer (or changed the state before it)")
	}
	if s1.Hash() == s.Hash() {
		t.Fatal("the state hash does not cover the exclusion")
	}
	for _, p := range com[:3] {
		if err := b1.SignPrecommit(p.Key, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Once: a second proof against the same member is refused.
	again := equivocation(t, s, com[3])
	if _, err := Apply(s1, &Block{Header: Header{}, Txs: []Tx{NewEvidenceTx(again)}}); err == nil {
		t.Fatal("a block of garbage applied")
	}
	_, _, rej, _ = Build(s1, 2, com[0].ID, 4, []Tx{NewEvidenceTx(again)})
	if len(rej) != 1 || rej[0].Reason != ReasonAlreadyExcluded {
		t.Fatalf("a second proof: refused %v, want %s", rej, ReasonAlreadyExcluded)
	}

	// Block 2 precommitted by com[1], com[2] and the excluded com[3]: two
	// count, and 3 of 4 are needed.
	b2, _, _, err := Build(s1, 2, com[1].ID, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range com[1:] {
		if err := b2.SignPrecommit(p.Key, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := b2.VerifySignaturesExcept(g, s1.Excluded); n != 2 {
		t.Fatalf("%d precommits count, want 2", n)
	}
	if _, err := Verify(g, []*Block{b1, b2}); err == nil {
		t.Fatal("a block final only with an excluded member's precommit verified")
	}
	if err := b2.SignPrecommit(com[0].Key, 0); err != nil {
		t.Fatal(err)
	}
	if st, err := Verify(g, []*Block{b1, b2}); err != nil || !st.Excluded(com[3].ID) {
		t.Fatalf("3 precommits of members in good standing: %v", err)
	}
}
