package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// AppendBytes appends v with its length as a uvarint in front.
func AppendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// AppendCID appends c's bytes with their length in front; an undefined CID
// is appended as no bytes.
func AppendCID(b []byte, c cid.Cid) []byte {
	var v []byte
	if c.Defined() {
		v = c.Bytes()
	}
	return AppendBytes(b, v)
}

// AppendPeer appends id's bytes with their length in front.
func AppendPeer(b []byte, id peer.ID) []byte { return AppendBytes(b, []byte(id)) }

// Decoder reads fields in the order they were appended. The first failure
// sticks: later reads return zero values and leave it as it is. Every
// failure wraps the sentinel given to NewDecoder.
type Decoder struct {
	b         []byte
	malformed error
	err       error
}

// NewDecoder reads b; its errors wrap malformed (the caller's
// ErrMalformed), which must not be nil.
func NewDecoder(b []byte, malformed error) *Decoder {
	return &Decoder{b: b, malformed: malformed}
}

// Err is the first failure, or nil.
func (d *Decoder) Err() error { return d.err }

// Len is the number of bytes not read yet.
func (d *Decoder) Len() int { return len(d.b) }

// Failf records a failure found by the caller (a value out of its range),
// wrapping the sentinel, unless an earlier failure sticks.
func (d *Decoder) Failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %w", d.malformed, fmt.Errorf(format, args...))
	}
}

func (d *Decoder) fail(what string) { d.Failf("bad or truncated %s", what) }

// End fails on trailing bytes and returns the first failure, or nil.
func (d *Decoder) End() error {
	if d.err == nil && len(d.b) != 0 {
		d.Failf("%d trailing bytes", len(d.b))
	}
	return d.err
}

// Byte reads one byte.
func (d *Decoder) Byte(what string) uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Uvarint reads a uvarint in its shortest form: a padded one (a last
// byte of zero after others) is a failure, so no value has two encodings.
func (d *Decoder) Uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.Failf("%s: padded uvarint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Count reads a list length (a uvarint) and refuses one over max, before
// the caller allocates anything for it.
func (d *Decoder) Count(max int, what string) int {
	n := d.Uvarint(what + " count")
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.Failf("%d %s, the limit is %d", n, what, max)
		return 0
	}
	return int(n)
}

// fixed returns the next n bytes, not copied.
func (d *Decoder) fixed(n int, what string) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// Hash reads 32 bytes as they are (a SHA-256 digest).
func (d *Decoder) Hash(what string) (h [32]byte) {
	copy(h[:], d.fixed(32, what))
	return h
}

// Uint64 reads 8 bytes, big-endian.
func (d *Decoder) Uint64(what string) uint64 {
	v := d.fixed(8, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Bytes reads a length-prefixed run of at most max bytes and returns a
// copy of it (nil when it is empty).
func (d *Decoder) Bytes(max int, what string) []byte {
	if v := d.view(max, what); v != nil {
		return append([]byte(nil), v...)
	}
	return nil
}

// String reads a length-prefixed string of at most max bytes.
func (d *Decoder) String(max int, what string) string { return string(d.view(max, what)) }

// View reads a length-prefixed byte string of at most max bytes and
// returns it in place, not copied: for a nested encoding the caller
// decodes at once and does not keep.
func (d *Decoder) View(max int, what string) []byte { return d.view(max, what) }

func (d *Decoder) view(max int, what string) []byte {
	n := d.Uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.Failf("%s is %d bytes, the limit is %d", what, n, max)
		return nil
	}
	return d.fixed(int(n), what)
}

// CID reads a length-prefixed CID of at most max bytes; an empty or
// unparsable one is a failure.
func (d *Decoder) CID(max int, what string) cid.Cid {
	raw := d.view(max, what) // Cast copies it
	if d.err != nil {
		return cid.Undef
	}
	c, err := cid.Cast(raw)
	if err != nil {
		d.Failf("%s CID: %w", what, err)
		return cid.Undef
	}
	return c
}

// OptCID reads what AppendCID wrote of a CID that may be undefined: no
// bytes are cid.Undef; bytes that do not parse are a failure.
func (d *Decoder) OptCID(max int, what string) cid.Cid {
	if d.err == nil && len(d.b) > 0 && d.b[0] == 0 {
		d.b = d.b[1:]
		return cid.Undef
	}
	return d.CID(max, what)
}

// OptPeer reads what AppendPeer wrote of a peer ID that may be empty: no
// bytes are ""; bytes that do not parse are a failure.
func (d *Decoder) OptPeer(max int, what string) peer.ID {
	if d.err == nil && len(d.b) > 0 && d.b[0] == 0 {
		d.b = d.b[1:]
		return ""
	}
	return d.Peer(max, what)
}

// Peer reads a length-prefixed peer ID of at most max bytes; an empty or
// unparsable one is a failure.
func (d *Decoder) Peer(max int, what string) peer.ID {
	raw := d.view(max, what) // IDFromBytes copies it
	if d.err != nil {
		return ""
	}
	id, err := peer.IDFromBytes(raw)
	if err != nil {
		d.Failf("%s peer ID: %w", what, err)
		return ""
	}
	return id
}
