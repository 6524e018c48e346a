package ledger

import (
	"testing"
)

func TestVerifyReplaysAndChecksFinality(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 1_000_000)
	blocks, s := finalChain(t, f, 3)
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

func TestVerifyFromGoesOnWhereVerifyStopped(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 1_000_000)
	blocks, s := finalChain(t, f, 4)
	mid, err := Verify(f.g, blocks[:2])
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyFrom(f.g, mid, blocks[2:])
	if err != nil || got.Hash() != s.Hash() || got.Height() != 4 {
		t.Fatalf("VerifyFrom: %v", err)
	}
	if _, err := VerifyFrom(f.g, mid, blocks[3:]); err == nil {
		t.Fatal("a chain with a gap verified")
	}
	if same, err := VerifyFrom(f.g, got, nil); err != nil || same != got {
		t.Fatalf("nothing new: %v", err)
	}
}

// finalChain builds n empty blocks from genesis, each signed by two of the
// three members, and returns them with the state after the last.
func finalChain(t *testing.T, f *fixture, n uint64) ([]*Block, *State) {
	t.Helper()
	s, err := NewState(f.g)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*Block
	for e := uint64(1); e <= n; e++ {
		b, next, _, err := Build(s, e, f.com[0].ID, int64(e), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.com[:2] {
			if err := b.Sign(m.Key); err != nil {
				t.Fatal(err)
			}
		}
		blocks, s = append(blocks, b), next
	}
	return blocks, s
}
