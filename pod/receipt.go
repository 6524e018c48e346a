package pod

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/internal/wire"
)

// Receipt formats. Version receipts name no ticket; VersionTicket
// receipts add the ID of the ticket they are paid under (Ticket), on
// networks whose rules know tickets (Params.MaxReceiptVersion).
const (
	Version       = 1
	VersionTicket = 2
)

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
	Version uint8
	Network string
	Epoch   uint64
	Server  peer.ID
	Client  peer.ID
	Root    cid.Cid
	Seq     uint64
	Bytes   uint64
	Blocks  uint64
	Digest  [32]byte // hash chain over the CIDs delivered so far, see Chain
	// Ticket is the ID of the ticket the delivery is paid under (a
	// VersionTicket receipt; zero: none).
	Ticket    [32]byte
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
	return Key{Server: r.Server, Client: r.Client, Root: r.Root.KeyString(), Epoch: r.Epoch} // KeyString: the CID bytes, not copied
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
	b = wire.AppendBytes(b, []byte(r.Network))
	b = binary.AppendUvarint(b, r.Epoch)
	b = wire.AppendPeer(b, r.Server)
	b = wire.AppendPeer(b, r.Client)
	b = wire.AppendCID(b, r.Root)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendUvarint(b, r.Bytes)
	b = binary.AppendUvarint(b, r.Blocks)
	b = append(b, r.Digest[:]...)
	if r.Version >= VersionTicket {
		b = append(b, r.Ticket[:]...)
	}
	return b
}

// Body returns the bytes the client signs (without domain prefix).
func (r *Receipt) Body() []byte { return r.appendBody(make([]byte, 0, 256)) }

// Marshal encodes the receipt, signatures included.
func (r *Receipt) Marshal() []byte { return r.AppendMarshal(make([]byte, 0, 384)) }

// AppendMarshal appends the encoding Marshal returns to b.
func (r *Receipt) AppendMarshal(b []byte) []byte {
	b = r.appendBody(b)
	b = wire.AppendBytes(b, r.ClientSig)
	return wire.AppendBytes(b, r.ServerSig)
}

// Unmarshal decodes a receipt. It accepts only the canonical encoding of a
// receipt of a known version, within the size limits; it checks that the
// peer IDs and the CID parse, but not the signatures (see Verify).
func Unmarshal(data []byte) (*Receipt, error) {
	if len(data) > MaxEncoded {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrMalformed, len(data), MaxEncoded)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	r := &Receipt{}
	r.Version = d.Byte("version")
	if d.Err() == nil && r.Version != Version && r.Version != VersionTicket {
		return nil, fmt.Errorf("%w %d (this build reads %d and %d)", ErrUnknownVersion, r.Version, Version, VersionTicket)
	}
	r.Network = d.String(MaxNetworkLen, "network")
	r.Epoch = d.Uvarint("epoch")
	r.Server = d.Peer(MaxPeerIDLen, "server")
	r.Client = d.Peer(MaxPeerIDLen, "client")
	r.Root = d.CID(MaxCIDLen, "root")
	r.Seq = d.Uvarint("seq")
	r.Bytes = d.Uvarint("bytes")
	r.Blocks = d.Uvarint("blocks")
	r.Digest = d.Hash("digest")
	if r.Version >= VersionTicket {
		r.Ticket = d.Hash("ticket")
	}
	r.ClientSig = d.Bytes(MaxSigLen, "client signature")
	r.ServerSig = d.Bytes(MaxSigLen, "server signature")
	if err := d.End(); err != nil {
		return nil, err
	}
	// Canonical form only: one receipt, one encoding (no padded varints,
	// no alternative CID spellings).
	var buf [MaxEncoded]byte
	if !bytes.Equal(r.AppendMarshal(buf[:0]), data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return r, nil
}
