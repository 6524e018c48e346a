package ledger

import (
	"testing"
)

func TestVerifyReplaysAndChecksFinality(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 1_000_000)
	s0, err := NewState(f.g)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*Block
	s := s0
	for e := uint64(1); e <= 3; e++ {
		b, next, _, err := Build(s, e, f.com[0].id, int64(e), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.com[:2] {
			if err := b.Sign(m.key); err != nil {
				t.Fatal(err)
			}
		}
		blocks, s = append(blocks, b), next
	}
	got, err := Verify(f.g, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != s.Hash() || got.Height() != 3 {
		t.Fatalf("replayed state differs")
	}
	blocks[1].Sigs = blocks[1].Sigs[:1]
	if _, err := Verify(f.g, blocks); err == nil {
		t.Fatal("a block with one signature of three verified")
	}
}
