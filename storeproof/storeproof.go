package storeproof

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/orecdn/ore/internal/wire"
)

// Parameters of the proofs (see the package doc for the arithmetic).
const (
	// SegmentSize is the bytes of one committed segment (the last one of
	// a root may be shorter).
	SegmentSize = 1024
	// ChallengesPerRound is K: the segments each held (box, root) answers
	// for in each round.
	ChallengesPerRound = 8
	// RoundEpochs is the default length of a challenge round (a genesis
	// may set another): 720 epochs are 2 h at the default 10 s epoch, 12
	// rounds and 96 challenges a day.
	RoundEpochs = 720
	// ProofWindow is how many epochs after the beacon's epoch a block may
	// still take a proof of its round: 30 epochs are 5 minutes (at most
	// half a round on a network with shorter rounds; see
	// ledger.Genesis.ProofWindow).
	ProofWindow = 30
	// MaxMisses is how many missed rounds revoke a box's order of a root.
	MaxMisses = 3
	// MaxLength is the largest committed root: 1 TiB, 2^30 segments.
	MaxLength = 1 << 40
	// MaxDepth is the longest path: ceil(log2(MaxLength/SegmentSize)).
	MaxDepth = 30
	// MaxProofSize bounds an encoded proof: K segments with full paths
	// and their framing.
	MaxProofSize = 16 << 10
)

// ErrBadProof wraps every proof that does not verify.
var ErrBadProof = errors.New("storeproof: bad proof")

// Commitment is a publisher's commitment to a root's bytes: the Merkle
// root over their segments and their length.
type Commitment struct {
	Root   [32]byte
	Length uint64
}

// Segments is how many segments length bytes make.
func Segments(length uint64) uint64 { return (length + SegmentSize - 1) / SegmentSize }

// segmentLen is the length of segment i of length bytes.
func segmentLen(i, length uint64) int {
	if end := (i + 1) * SegmentSize; end > length {
		return int(length - i*SegmentSize)
	}
	return SegmentSize
}

const (
	leafPrefix  = 0x00
	innerPrefix = 0x01
)

func leafHash(seg []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(seg)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func innerHash(l, r [32]byte) [32]byte {
	var buf [65]byte
	buf[0] = innerPrefix
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// split is RFC 6962's: the largest power of two below n (n >= 2).
func split(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// Tree is the segment tree of a root's bytes: its leaf hashes (32 bytes
// per segment), from which Root and Path compute what they need.
type Tree struct {
	leaves [][32]byte
	length uint64
	inner  map[[2]uint64][32]byte // subtree roots by leaf range, computed once
}

// NewTree reads a root's bytes from r to its end and hashes them.
func NewTree(r io.Reader) (*Tree, error) {
	t := &Tree{}
	buf := make([]byte, SegmentSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			t.leaves = append(t.leaves, leafHash(buf[:n]))
			t.length += uint64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("storeproof: read segment %d: %w", len(t.leaves), err)
		}
		if t.length > MaxLength {
			return nil, fmt.Errorf("storeproof: more than %d bytes: too large to commit", uint64(MaxLength))
		}
	}
	if t.length == 0 {
		return nil, errors.New("storeproof: no bytes to commit")
	}
	return t, nil
}

// Commit is the commitment to data.
func Commit(data []byte) (Commitment, error) {
	t, err := NewTree(bytes.NewReader(data))
	if err != nil {
		return Commitment{}, err
	}
	return t.Commitment(), nil
}

// Commitment is the tree's root and length.
func (t *Tree) Commitment() Commitment {
	return Commitment{Root: t.node(0, uint64(len(t.leaves))), Length: t.length}
}

// node is the root of the subtree over leaves [lo, hi), remembered.
func (t *Tree) node(lo, hi uint64) [32]byte {
	if hi-lo == 1 {
		return t.leaves[lo]
	}
	if h, ok := t.inner[[2]uint64{lo, hi}]; ok {
		return h
	}
	if t.inner == nil {
		t.inner = make(map[[2]uint64][32]byte, len(t.leaves))
	}
	k := split(hi - lo)
	h := innerHash(t.node(lo, lo+k), t.node(lo+k, hi))
	t.inner[[2]uint64{lo, hi}] = h
	return h
}

// Path is the audit path of segment i, sibling hashes bottom up.
func (t *Tree) Path(i uint64) ([][32]byte, error) {
	if i >= uint64(len(t.leaves)) {
		return nil, fmt.Errorf("storeproof: segment %d of %d", i, len(t.leaves))
	}
	var path [][32]byte
	for lo, hi := uint64(0), uint64(len(t.leaves)); hi-lo > 1; {
		k := split(hi - lo)
		if i < lo+k {
			path = append(path, t.node(lo+k, hi))
			hi = lo + k
		} else {
			path = append(path, t.node(lo, lo+k))
			lo += k
		}
	}
	for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
		path[a], path[b] = path[b], path[a]
	}
	return path, nil
}

// verifyPath checks that seg is segment i of a tree of n segments under root.
func verifyPath(root [32]byte, seg []byte, i, n uint64, path [][32]byte) bool {
	if i >= n {
		return false
	}
	var left []bool // per level, top down: the sibling is on the left
	for lo, hi := uint64(0), n; hi-lo > 1; {
		k := split(hi - lo)
		if i < lo+k {
			left = append(left, false)
			hi = lo + k
		} else {
			left = append(left, true)
			lo += k
		}
	}
	if len(left) != len(path) {
		return false
	}
	h := leafHash(seg)
	for j := range path {
		if left[len(left)-1-j] {
			h = innerHash(path[j], h)
		} else {
			h = innerHash(h, path[j])
		}
	}
	return h == root
}

const (
	seedDomain      = "ore/storeproof/v1/seed\x00"
	challengeDomain = "ore/storeproof/v1/challenge\x00"
)

// Seed is a round's randomness: SHA-256 over a domain prefix, the hash and
// height of the block whose certificate it reads and the certificate's
// signatures, which the caller sorts by signer.
func Seed(prevHash [32]byte, height uint64, sigs [][]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(seedDomain))
	h.Write(prevHash[:])
	var b []byte
	b = binary.BigEndian.AppendUint64(b, height)
	b = binary.AppendUvarint(b, uint64(len(sigs)))
	h.Write(b)
	for _, s := range sigs {
		h.Write(wire.AppendBytes(nil, s))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Challenge returns the K segment indices (box, root) answers for in the
// round of seed, for a commitment of length bytes. box and root are the
// peer ID's and the CID's bytes.
func Challenge(seed [32]byte, box, root []byte, length uint64) []uint64 {
	n := Segments(length)
	out := make([]uint64, ChallengesPerRound)
	if n == 0 {
		return out
	}
	b := make([]byte, 0, len(challengeDomain)+32+len(box)+len(root)+24)
	b = append(b, challengeDomain...)
	b = append(b, seed[:]...)
	b = wire.AppendBytes(b, box)
	b = wire.AppendBytes(b, root)
	for j := range out {
		h := sha256.Sum256(binary.AppendUvarint(b, uint64(j)))
		// The modulo bias is below n/2^64 (< 2^-34 at MaxLength): nothing
		// a box can use.
		out[j] = binary.BigEndian.Uint64(h[:8]) % n
	}
	return out
}

// Proof is a box's answer to its challenges: each challenged segment's
// bytes and path, in challenge order.
type Proof struct {
	Segments []Segment
}

// Segment is one challenged segment and its audit path.
type Segment struct {
	Data []byte
	Path [][32]byte
}

// Prove builds the proof of the challenged indices from the tree of the
// root's bytes and a reader of them.
func Prove(t *Tree, r io.ReaderAt, indices []uint64) (*Proof, error) {
	p := &Proof{Segments: make([]Segment, len(indices))}
	for j, i := range indices {
		if i >= uint64(len(t.leaves)) {
			return nil, fmt.Errorf("storeproof: challenge of segment %d, the tree has %d", i, len(t.leaves))
		}
		seg := make([]byte, segmentLen(i, t.length))
		if n, err := r.ReadAt(seg, int64(i*SegmentSize)); n < len(seg) {
			return nil, fmt.Errorf("storeproof: read segment %d: %d of %d bytes: %w", i, n, len(seg), err)
		}
		path, err := t.Path(i)
		if err != nil {
			return nil, err
		}
		p.Segments[j] = Segment{Data: seg, Path: path}
	}
	return p, nil
}

// Verify checks that p answers the challenged indices under commitment c:
// one segment per index, of the right length, whose path leads to the root.
func Verify(c Commitment, indices []uint64, p *Proof) error {
	if p == nil || len(p.Segments) != len(indices) {
		return fmt.Errorf("%w: %d segments for %d challenges", ErrBadProof, segCount(p), len(indices))
	}
	if c.Length == 0 || c.Length > MaxLength {
		return fmt.Errorf("%w: a commitment of %d bytes", ErrBadProof, c.Length)
	}
	n := Segments(c.Length)
	for j, i := range indices {
		s := p.Segments[j]
		if i >= n || len(s.Data) != segmentLen(i, c.Length) {
			return fmt.Errorf("%w: segment %d of %d bytes (index %d of %d)", ErrBadProof, j, len(s.Data), i, n)
		}
		if !verifyPath(c.Root, s.Data, i, n, s.Path) {
			return fmt.Errorf("%w: segment %d (index %d) is not under the commitment", ErrBadProof, j, i)
		}
	}
	return nil
}

func segCount(p *Proof) int {
	if p == nil {
		return 0
	}
	return len(p.Segments)
}

// AppendTo appends the proof's encoding: the segment count, then each
// segment's bytes and path.
func (p *Proof) AppendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.Segments)))
	for _, s := range p.Segments {
		b = wire.AppendBytes(b, s.Data)
		b = binary.AppendUvarint(b, uint64(len(s.Path)))
		for _, h := range s.Path {
			b = append(b, h[:]...)
		}
	}
	return b
}

// Size is the proof's encoded size.
func (p *Proof) Size() int { return len(p.AppendTo(nil)) }

// Read decodes a proof from d (see AppendTo): at most ChallengesPerRound
// segments of at most SegmentSize bytes with paths of at most MaxDepth.
func Read(d *wire.Decoder) *Proof {
	n := d.Count(ChallengesPerRound, "proof segments")
	p := &Proof{Segments: make([]Segment, 0, n)}
	for i := 0; i < n && d.Err() == nil; i++ {
		s := Segment{Data: d.Bytes(SegmentSize, "segment")}
		m := d.Count(MaxDepth, "path")
		for k := 0; k < m && d.Err() == nil; k++ {
			s.Path = append(s.Path, d.Hash("path hash"))
		}
		p.Segments = append(p.Segments, s)
	}
	return p
}

// CatchProbability is the chance that a box missing a fraction alpha of a
// root's segments fails at least one of rounds rounds of K challenges:
// 1 - (1-alpha)^(K*rounds).
func CatchProbability(alpha float64, rounds int) float64 {
	return 1 - math.Pow(1-alpha, float64(ChallengesPerRound*rounds))
}

// RoundsPerDay is how many rounds a day has at epochSeconds per epoch.
func RoundsPerDay(epochSeconds float64) float64 { return 86400 / (epochSeconds * RoundEpochs) }

// ErrMismatch is a root whose bytes do not match the commitment offered
// for it: a box declines to hold it for pay (no proof of it can verify).
var ErrMismatch = errors.New("storeproof: the bytes do not match the commitment")

// Check reads a root's bytes and reports whether they match c (wrapping
// ErrMismatch if not): what a box does when it fetched a root offered for
// storage, before it holds it for pay.
func Check(r io.Reader, c Commitment) (*Tree, error) {
	t, err := NewTree(r)
	if err != nil {
		return nil, err
	}
	if got := t.Commitment(); got != c {
		return nil, fmt.Errorf("%w: %d bytes under %x, the offer commits to %d under %x", ErrMismatch, got.Length, got.Root[:8], c.Length, c.Root[:8])
	}
	return t, nil
}

// ProveFrom answers challenges from a root's bytes read twice by open,
// holding no more than the tree (32 bytes a segment) and the challenged
// segments: once to build the tree and check it against c (ErrMismatch),
// once to take the segments.
func ProveFrom(open func() (io.ReadCloser, error), c Commitment, indices []uint64) (*Proof, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	t, err := Check(r, c)
	r.Close()
	if err != nil {
		return nil, err
	}
	want := make(map[uint64][]byte, len(indices))
	for _, i := range indices {
		if i >= uint64(len(t.leaves)) {
			return nil, fmt.Errorf("storeproof: challenge of segment %d, the root has %d", i, len(t.leaves))
		}
		want[i] = nil
	}
	r, err = open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := make([]byte, SegmentSize)
	for i := uint64(0); i < uint64(len(t.leaves)); i++ {
		n, err := io.ReadFull(r, buf)
		if n < segmentLen(i, t.length) {
			return nil, fmt.Errorf("storeproof: segment %d changed between reads (%d bytes): %w", i, n, err)
		}
		if _, ok := want[i]; ok {
			want[i] = append([]byte(nil), buf[:n]...)
		}
	}
	p := &Proof{Segments: make([]Segment, len(indices))}
	for j, i := range indices {
		path, err := t.Path(i)
		if err != nil {
			return nil, err
		}
		p.Segments[j] = Segment{Data: want[i], Path: path}
	}
	if err := Verify(c, indices, p); err != nil {
		return nil, fmt.Errorf("storeproof: the root changed between reads: %w", err)
	}
	return p, nil
}
