package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

var errTest = errors.New("test: malformed")

func testCID(t *testing.T) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte("root"), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	// An identity multihash of 36 bytes, as an Ed25519 peer ID is.
	h, err := mh.Sum(bytes.Repeat([]byte{7}, 36), mh.IDENTITY, -1)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromBytes(h)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// record is one of every field, in a fixed order.
type record struct {
	kind  uint8
	n     uint64
	hash  [32]byte
	time  uint64
	name  []byte
	root  cid.Cid
	from  peer.ID
	items []uint64
}

func (r *record) marshal() []byte {
	b := append([]byte(nil), r.kind)
	b = binary.AppendUvarint(b, r.n)
	b = append(b, r.hash[:]...)
	b = binary.BigEndian.AppendUint64(b, r.time)
	b = AppendBytes(b, r.name)
	b = AppendCID(b, r.root)
	b = AppendPeer(b, r.from)
	b = binary.AppendUvarint(b, uint64(len(r.items)))
	for _, v := range r.items {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func unmarshal(data []byte) (*record, error) {
	d := NewDecoder(data, errTest)
	r := &record{}
	r.kind = d.Byte("kind")
	r.n = d.Uvarint("n")
	r.hash = d.Hash("hash")
	r.time = d.Uint64("time")
	r.name = d.Bytes(16, "name")
	r.root = d.CID(128, "root")
	r.from = d.Peer(64, "from")
	if n := d.Count(4, "items"); n > 0 {
		r.items = make([]uint64, n)
		for i := range r.items {
			r.items[i] = d.Uvarint("item")
		}
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return r, nil
}

func sample(t *testing.T) *record {
	r := &record{kind: 3, n: 300, time: 1 << 40, name: []byte("ore"), root: testCID(t), from: testPeer(t), items: []uint64{0, 1, 1 << 63}}
	for i := range r.hash {
		r.hash[i] = byte(i)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	r := sample(t)
	b := r.marshal()
	got, err := unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.kind != r.kind || got.n != r.n || got.hash != r.hash || got.time != r.time ||
		!bytes.Equal(got.name, r.name) || !got.root.Equals(r.root) || got.from != r.from ||
		len(got.items) != len(r.items) || got.items[2] != r.items[2] {
		t.Fatalf("round trip changed the record: %+v vs %+v", got, r)
	}
	if !bytes.Equal(got.marshal(), b) {
		t.Fatal("re-encoding differs")
	}
}

func TestBytesAreCopied(t *testing.T) {
	in := AppendBytes(nil, []byte("ore"))
	d := NewDecoder(in, errTest)
	v := d.Bytes(8, "name")
	in[1] = 'x'
	if string(v) != "ore" {
		t.Fatalf("decoded bytes alias the input: %q", v)
	}
}

func TestEncoding(t *testing.T) {
	// The layout itself: signatures and hashes are computed over it.
	if got := AppendBytes([]byte{9}, []byte("ab")); !bytes.Equal(got, []byte{9, 2, 'a', 'b'}) {
		t.Errorf("AppendBytes: %x", got)
	}
	if got := AppendBytes(nil, make([]byte, 200)); !bytes.Equal(got[:2], []byte{0xc8, 0x01}) || len(got) != 202 {
		t.Errorf("AppendBytes of 200 bytes: prefix %x, %d bytes", got[:2], len(got))
	}
	if got := AppendCID(nil, cid.Undef); !bytes.Equal(got, []byte{0}) {
		t.Errorf("undefined CID: %x", got)
	}
	c := testCID(t)
	if got := AppendCID(nil, c); !bytes.Equal(got, AppendBytes(nil, c.Bytes())) {
		t.Errorf("CID: %x", got)
	}
	p := testPeer(t)
	if got := AppendPeer(nil, p); !bytes.Equal(got, AppendBytes(nil, []byte(p))) {
		t.Errorf("peer: %x", got)
	}
}

func TestEmptyBytesAreNil(t *testing.T) {
	d := NewDecoder([]byte{0}, errTest)
	if v := d.Bytes(8, "v"); v != nil || d.End() != nil {
		t.Fatalf("got %v, %v", v, d.Err())
	}
}

func TestTruncated(t *testing.T) {
	b := sample(t).marshal()
	for i := range len(b) {
		_, err := unmarshal(b[:i])
		if !errors.Is(err, errTest) {
			t.Fatalf("%d of %d bytes: %v", i, len(b), err)
		}
	}
	_, err := unmarshal(nil)
	if err == nil || err.Error() != "test: malformed: bad or truncated kind" {
		t.Fatalf("empty input: %v", err)
	}
}

func TestTrailingBytes(t *testing.T) {
	b := append(sample(t).marshal(), 0, 0)
	_, err := unmarshal(b)
	if !errors.Is(err, errTest) || err.Error() != "test: malformed: 2 trailing bytes" {
		t.Fatalf("got %v", err)
	}
}

func TestLimits(t *testing.T) {
	// Over-long count: refused from the count, whatever follows.
	r := sample(t)
	r.items = make([]uint64, 5)
	_, err := unmarshal(r.marshal())
	if !errors.Is(err, errTest) || err.Error() != "test: malformed: 5 items, the limit is 4" {
		t.Fatalf("count: %v", err)
	}
	// A count of 2^64-1 claims no memory.
	d := NewDecoder(binary.AppendUvarint(nil, 1<<64-1), errTest)
	if n := d.Count(4, "items"); n != 0 || !errors.Is(d.Err(), errTest) {
		t.Fatalf("huge count: %d, %v", n, d.Err())
	}
	// Over-long bytes.
	r = sample(t)
	r.name = make([]byte, 17)
	_, err = unmarshal(r.marshal())
	if !errors.Is(err, errTest) || err.Error() != "test: malformed: name is 17 bytes, the limit is 16" {
		t.Fatalf("bytes: %v", err)
	}
	// A length larger than what is left.
	d = NewDecoder([]byte{5, 'a', 'b'}, errTest)
	if v := d.Bytes(8, "name"); v != nil || d.Err() == nil || d.Err().Error() != "test: malformed: bad or truncated name" {
		t.Fatalf("short bytes: %v, %v", v, d.Err())
	}
	// An over-long uvarint (more than 64 bits).
	d = NewDecoder(bytes.Repeat([]byte{0xff}, 11), errTest)
	if d.Uvarint("n"); !errors.Is(d.Err(), errTest) {
		t.Fatalf("overflowing uvarint: %v", d.Err())
	}
}

func TestBadPeerAndCID(t *testing.T) {
	d := NewDecoder(AppendBytes(nil, []byte("garbage")), errTest)
	if id := d.Peer(64, "from"); id != "" || !errors.Is(d.Err(), errTest) || !strings.HasPrefix(d.Err().Error(), "test: malformed: from peer ID: ") {
		t.Fatalf("peer: %q, %v", id, d.Err())
	}
	// An undefined CID encodes as no bytes, which does not decode.
	d = NewDecoder(AppendCID(nil, cid.Undef), errTest)
	if c := d.CID(128, "root"); c.Defined() || !errors.Is(d.Err(), errTest) || !strings.HasPrefix(d.Err().Error(), "test: malformed: root CID: ") {
		t.Fatalf("cid: %v, %v", c, d.Err())
	}
	// The limit applies before parsing.
	d = NewDecoder(AppendCID(nil, testCID(t)), errTest)
	if d.CID(8, "root"); !errors.Is(d.Err(), errTest) || !strings.Contains(d.Err().Error(), "the limit is 8") {
		t.Fatalf("cid over the limit: %v", d.Err())
	}
}

func TestFirstFailureSticks(t *testing.T) {
	d := NewDecoder([]byte{1}, errTest)
	d.Byte("a")
	d.Byte("b") // fails: nothing left
	d.Failf("later %d", 1)
	if v := d.Uvarint("c"); v != 0 {
		t.Fatalf("read %d after a failure", v)
	}
	if err := d.End(); err == nil || err.Error() != "test: malformed: bad or truncated b" {
		t.Fatalf("got %v", err)
	}
	d = NewDecoder(nil, errTest)
	inner := errors.New("inner")
	d.Failf("value: %w", inner)
	if !errors.Is(d.Err(), errTest) || !errors.Is(d.Err(), inner) || d.Err().Error() != "test: malformed: value: inner" {
		t.Fatalf("Failf: %v", d.Err())
	}
}

func TestPaddedUvarintRefused(t *testing.T) {
	for _, in := range [][]byte{{0x81, 0x00}, {0x80, 0x00}, {0xff, 0x80, 0x00}} {
		d := NewDecoder(in, errTest)
		if _, err := d.Uvarint("n"), d.End(); !errors.Is(err, errTest) {
			t.Fatalf("padded uvarint %x: %v", in, err)
		}
	}
	d := NewDecoder([]byte{0x00, 0x81, 0x01}, errTest)
	if a, b := d.Uvarint("a"), d.Uvarint("b"); a != 0 || b != 129 || d.End() != nil {
		t.Fatalf("minimal uvarints: %d %d %v", a, b, d.Err())
	}
}

// Optional CIDs and peers: empty reads as absent, present reads back, and
// bytes that do not parse still fail.
func TestOptional(t *testing.T) {
	c, p := testCID(t), testPeer(t)
	b := AppendCID(nil, cid.Undef)
	b = AppendPeer(b, "")
	b = AppendCID(b, c)
	b = AppendPeer(b, p)
	d := NewDecoder(b, errTest)
	if got := d.OptCID(MaxTest, "a"); got.Defined() {
		t.Fatalf("an empty CID read as %s", got)
	}
	if got := d.OptPeer(MaxTest, "b"); got != "" {
		t.Fatalf("an empty peer read as %s", got)
	}
	if got := d.OptCID(MaxTest, "c"); !got.Equals(c) {
		t.Fatalf("CID read as %s", got)
	}
	if got := d.OptPeer(MaxTest, "d"); got != p {
		t.Fatalf("peer read as %s", got)
	}
	if err := d.End(); err != nil {
		t.Fatal(err)
	}
	d = NewDecoder(AppendBytes(nil, []byte{1, 2, 3}), errTest)
	if d.OptCID(MaxTest, "junk"); !errors.Is(d.Err(), errTest) {
		t.Fatalf("junk CID: %v", d.Err())
	}
}

// MaxTest is a field limit no test field reaches.
const MaxTest = 256
