package pod

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Version is the receipt format this package writes and reads.
const Version = 1

// Limits of the encoding; anything larger is rejected before it is parsed.
const (
	MaxNetworkLen = 64
	MaxPeerIDLen  = 64
	MaxCIDLen     = 128
	MaxSigLen     = 128
	MaxEncoded    = 1024
)

// Receipt is a cumulative, two-sided proof of delivery.
type Receipt struct {
	Version   uint8
	Network   string
	Epoch     uint64
	Server    peer.ID
	Client    peer.ID
	Root      cid.Cid
	Seq       uint64
	Bytes     uint64
	Blocks    uint64
	Digest    [32]byte // hash chain over the CIDs delivered so far, see Chain
	ClientSig []byte
	ServerSig []byte
}

// Key identifies the receipts that supersede each other.
type Key struct {
	Server, Client peer.ID
	Root           string // CID bytes as a string, so Key is comparable
	Epoch          uint64
}

// Key returns the receipt's (S, C, R, E).
func (r *Receipt) Key() Key {
	return Key{Server: r.Server, Client: r.Client, Root: string(r.Root.Bytes()), Epoch: r.Epoch}
}

// Chain extends a delivery digest with one more CID: d' = SHA-256(d || cid).
// The client folds each verified block into the digest in the order it
// received them, so a receipt commits to exactly which blocks it covers.
func Chain(d [32]byte, c cid.Cid) [32]byte {
	h := sha256.New()
	h.Write(d[:])
	h.Write(c.Bytes())
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Errors of decoding.
var (
	ErrMalformed      = errors.New("pod: malformed receipt")
	ErrUnknownVersion = errors.New("pod: unknown receipt version")
)

// appendBody appends the signed part of the receipt.
func (r *Receipt) appendBody(b []byte) []byte {
	b = append(b, r.Version)
	b = appendBytes(b, []byte(r.Network))
	b = binary.AppendUvarint(b, r.Epoch)
	b = appendBytes(b, []byte(r.Server))
	b = appendBytes(b, []byte(r.Client))
	var root []byte
	if r.Root.Defined() {
		root = r.Root.Bytes()
	}
	b = appendBytes(b, root)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendUvarint(b, r.Bytes)
	b = binary.AppendUvarint(b, r.Blocks)
	return append(b, r.Digest[:]...)
}

// Body returns the bytes the client signs (without domain prefix).
func (r *Receipt) Body() []byte { return r.appendBody(make([]byte, 0, 256)) }

// Marshal encodes the receipt, signatures included.
func (r *Receipt) Marshal() []byte {
	b := r.appendBody(make([]byte, 0, 384))
	b = appendBytes(b, r.ClientSig)
	return appendBytes(b, r.ServerSig)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// Unmarshal decodes a receipt. It accepts only the canonical encoding of a
// receipt of a known version, within the size limits; it checks that the
// peer IDs and the CID parse, but not the signatures (see Verify).
func Unmarshal(data []byte) (*Receipt, error) {
	if len(data) > MaxEncoded {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrMalformed, len(data), MaxEncoded)
	}
	d := decoder{b: data}
	r := &Receipt{}
	r.Version = d.byte()
	if d.err == nil && r.Version != Version {
		return nil, fmt.Errorf("%w %d (this build reads %d)", ErrUnknownVersion, r.Version, Version)
	}
	r.Network = string(d.bytes(MaxNetworkLen, "network"))
	r.Epoch = d.uvarint("epoch")
	server := d.bytes(MaxPeerIDLen, "server")
	client := d.bytes(MaxPeerIDLen, "client")
	root := d.bytes(MaxCIDLen, "root")
	r.Seq = d.uvarint("seq")
	r.Bytes = d.uvarint("bytes")
	r.Blocks = d.uvarint("blocks")
	copy(r.Digest[:], d.fixed(32, "digest"))
	r.ClientSig = d.bytes(MaxSigLen, "client signature")
	r.ServerSig = d.bytes(MaxSigLen, "server signature")
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	var err error
	if r.Server, err = peer.IDFromBytes(server); err != nil {
		return nil, fmt.Errorf("%w: server peer ID: %v", ErrMalformed, err)
	}
	if r.Client, err = peer.IDFromBytes(client); err != nil {
		return nil, fmt.Errorf("%w: client peer ID: %v", ErrMalformed, err)
	}
	if r.Root, err = cid.Cast(root); err != nil {
		return nil, fmt.Errorf("%w: root CID: %v", ErrMalformed, err)
	}
	if len(r.ClientSig) == 0 {
		r.ClientSig = nil
	}
	if len(r.ServerSig) == 0 {
		r.ServerSig = nil
	}
	// Canonical form only: one receipt, one encoding (no padded varints,
	// no alternative CID spellings).
	if !bytes.Equal(r.Marshal(), data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad or truncated %s", ErrMalformed, what)
	}
}

func (d *decoder) byte() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail("version")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed(n int, what string) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail(what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(max int, what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.err = fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrMalformed, what, n, max)
		return nil
	}
	v := d.fixed(int(n), what)
	return append([]byte(nil), v...)
}
