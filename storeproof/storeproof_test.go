package storeproof

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/orecdn/ore/internal/wire"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// Every challenge of every round over roots of awkward lengths proves and
// verifies, through the encoding.
func TestProveVerifyRoundTrip(t *testing.T) {
	for _, n := range []int{1, SegmentSize - 1, SegmentSize, SegmentSize + 1, 3*SegmentSize + 17, 37 * SegmentSize} {
		data := randomBytes(t, n)
		tree, err := NewTree(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		c := tree.Commitment()
		if c.Length != uint64(n) {
			t.Fatalf("length %d, want %d", c.Length, n)
		}
		for round := range 5 {
			seed := Seed([32]byte{byte(round)}, uint64(round), [][]byte{{1}, {2}})
			idx := Challenge(seed, []byte("box"), []byte("root"), c.Length)
			p, err := Prove(tree, bytes.NewReader(data), idx)
			if err != nil {
				t.Fatal(err)
			}
			enc := p.AppendTo(nil)
			d := wire.NewDecoder(enc, errors.New("malformed"))
			q := Read(d)
			if err := d.End(); err != nil {
				t.Fatal(err)
			}
			if err := Verify(c, idx, q); err != nil {
				t.Fatalf("%d bytes, round %d: %v", n, round, err)
			}
		}
	}
}

// A proof fails for another box's challenges, a flipped byte, a
// truncated segment, a path of another segment, and another commitment.
func TestVerifyRefuses(t *testing.T) {
	data := randomBytes(t, 200*SegmentSize+5)
	tree, err := NewTree(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := tree.Commitment()
	seed := Seed([32]byte{9}, 1, nil)
	idx := Challenge(seed, []byte("box-a"), []byte("root"), c.Length)
	p, err := Prove(tree, bytes.NewReader(data), idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(c, Challenge(seed, []byte("box-b"), []byte("root"), c.Length), p); !errors.Is(err, ErrBadProof) {
		t.Errorf("another box's challenges: %v", err)
	}
	flip := cloneProof(p)
	flip.Segments[3].Data[7] ^= 1
	if err := Verify(c, idx, flip); !errors.Is(err, ErrBadProof) {
		t.Errorf("a flipped byte: %v", err)
	}
	short := cloneProof(p)
	short.Segments[0].Data = short.Segments[0].Data[:10]
	if err := Verify(c, idx, short); !errors.Is(err, ErrBadProof) {
		t.Errorf("a truncated segment: %v", err)
	}
	swap := cloneProof(p)
	if idx[0] != idx[1] {
		swap.Segments[0].Path = swap.Segments[1].Path
		if err := Verify(c, idx, swap); !errors.Is(err, ErrBadProof) {
			t.Errorf("another segment's path: %v", err)
		}
	}
	other := append([]byte{}, data...)
	other[0] ^= 1
	oc, err := Commit(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(oc, idx, p); !errors.Is(err, ErrBadProof) {
		t.Errorf("a commitment to other bytes: %v", err)
	}
	if err := Verify(c, idx, &Proof{Segments: p.Segments[:ChallengesPerRound-1]}); !errors.Is(err, ErrBadProof) {
		t.Errorf("one segment short: %v", err)
	}
}

func cloneProof(p *Proof) *Proof {
	q := &Proof{}
	for _, s := range p.Segments {
		q.Segments = append(q.Segments, Segment{Data: append([]byte{}, s.Data...), Path: append([][32]byte{}, s.Path...)})
	}
	return q
}

// The challenges follow the seed: the same inputs give the same indices,
// another seed, box or root others; they cover the segments uniformly
// enough that a box missing 5 % fails a round as often as (1-0.05)^K says.
func TestChallengeCatchesAtTheFormulaRate(t *testing.T) {
	const length = 4096 * SegmentSize
	a := Challenge([32]byte{1}, []byte("box"), []byte("root"), length)
	if !slicesEqual(a, Challenge([32]byte{1}, []byte("box"), []byte("root"), length)) {
		t.Fatal("the same seed gave other challenges")
	}
	if slicesEqual(a, Challenge([32]byte{2}, []byte("box"), []byte("root"), length)) ||
		slicesEqual(a, Challenge([32]byte{1}, []byte("box2"), []byte("root"), length)) {
		t.Fatal("another seed or box gave the same challenges")
	}
	// The box dropped every segment whose index is 0 mod 20 (5 %).
	const rounds = 20_000
	caught := 0
	for r := range rounds {
		var seed [32]byte
		seed[0], seed[1], seed[2] = byte(r), byte(r>>8), byte(r>>16)
		for _, i := range Challenge(seed, []byte("box"), []byte("root"), length) {
			if i%20 == 0 {
				caught++
				break
			}
		}
	}
	want := 1 - math.Pow(0.95, ChallengesPerRound)
	got := float64(caught) / rounds
	// 20,000 rounds: the standard error is 0.33 %; 5 of them is 1.7 %.
	if math.Abs(got-want) > 0.017 {
		t.Fatalf("caught in %.3f of the rounds, the formula says %.3f", got, want)
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The arithmetic of the package doc: 96 challenges a day catch a 5 % loss
// with at least 99 %; a proof of a 64 MiB root is under 1 % of it per day.
func TestGoalsOfTheDefaults(t *testing.T) {
	rounds := int(RoundsPerDay(10))
	if p := CatchProbability(0.05, rounds); p < 0.99 {
		t.Fatalf("a day (%d rounds) catches a 5 %% loss with %.4f", rounds, p)
	}
	data := randomBytes(t, 64<<20)
	tree, err := NewTree(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	idx := Challenge([32]byte{3}, []byte("box"), []byte("root"), uint64(len(data)))
	p, err := Prove(tree, bytes.NewReader(data), idx)
	if err != nil {
		t.Fatal(err)
	}
	perDay := float64(p.Size() * rounds)
	if frac := perDay / float64(len(data)); frac >= 0.01 {
		t.Fatalf("proofs of a 64 MiB root cost %.2f %% of it a day", 100*frac)
	}
	if p.Size() > MaxProofSize {
		t.Fatalf("a proof of %d bytes, the limit is %d", p.Size(), MaxProofSize)
	}
}

// A proof of the largest root fits MaxProofSize.
func TestLargestProofFits(t *testing.T) {
	p := &Proof{}
	for range ChallengesPerRound {
		p.Segments = append(p.Segments, Segment{Data: make([]byte, SegmentSize), Path: make([][32]byte, MaxDepth)})
	}
	if p.Size() > MaxProofSize {
		t.Fatalf("a proof with %d-hash paths is %d bytes, the limit is %d", MaxDepth, p.Size(), MaxProofSize)
	}
	if got := bitsFor(Segments(MaxLength)); got != MaxDepth {
		t.Fatalf("the largest root has paths of %d hashes, MaxDepth is %d", got, MaxDepth)
	}
}

func bitsFor(n uint64) int {
	d := 0
	for x := uint64(1); x < n; x <<= 1 {
		d++
	}
	return d
}

func BenchmarkVerify64MiB(b *testing.B) {
	data := randomBytes(b, 64<<20)
	tree, err := NewTree(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	c := tree.Commitment()
	idx := Challenge([32]byte{3}, []byte("box"), []byte("root"), c.Length)
	p, err := Prove(tree, bytes.NewReader(data), idx)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := Verify(c, idx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// ProveFrom answers from two reads of the bytes, and refuses bytes that
// do not match the commitment (the box declines) or change between reads.
func TestProveFrom(t *testing.T) {
	data := randomBytes(t, 50*SegmentSize+3)
	c, err := Commit(data)
	if err != nil {
		t.Fatal(err)
	}
	idx := Challenge([32]byte{5}, []byte("box"), []byte("root"), c.Length)
	open := func(b []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	p, err := ProveFrom(open(data), c, idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(c, idx, p); err != nil {
		t.Fatal(err)
	}
	other := append([]byte{}, data...)
	other[len(other)-1] ^= 1
	if _, err := ProveFrom(open(other), c, idx); !errors.Is(err, ErrMismatch) {
		t.Fatalf("bytes that differ from the commitment: %v", err)
	}
	reads := 0
	changing := func() (io.ReadCloser, error) {
		reads++
		if reads == 1 {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
		return io.NopCloser(bytes.NewReader(other[:len(other)-SegmentSize])), nil
	}
	if _, err := ProveFrom(changing, c, idx); err == nil {
		t.Fatal("bytes that changed between the reads gave a proof")
	}
}
