package pod

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
)

// A Ticket is a publisher's authorization of paid demand, the way CDNs
// bind paid delivery to demand the customer asked for (CloudFront signed
// URLs, Akamai token auth, Saturn's request tokens): a publisher signs
// that deliveries of its content to a client, up to a byte cap and until
// an epoch, are to be paid from its escrow. Receipts name the ticket they
// are paid under by its ID (Receipt.Ticket); the ledger learns a ticket
// once, checks its signature once, and then knows it by that ID, so the
// many receipts of a session do not each carry or re-verify it.
//
// A box or a sybil client cannot mint paid demand: without a ticket of
// the publisher's, a receipt pays nothing (unless the publisher opened
// the root to anyone, within a budget it set), and all receipts under one
// ticket, over every server, never pay for more than its Cap.
type Ticket struct {
	Version   uint8
	Network   string
	Publisher peer.ID // whose escrow pays; the ticket is signed with its key
	// Root is the content the ticket pays for; cid.Undef: any root the
	// publisher registered.
	Root cid.Cid
	// Client is the only client whose receipts the ticket pays; "": any
	// client that holds the ticket (a bearer ticket, as in a signed URL).
	Client  peer.ID
	Cap     uint64 // bytes paid under the ticket, over every server, client and epoch
	Expires uint64 // the last epoch a receipt under the ticket may name
	Nonce   uint64 // tells apart tickets that are otherwise the same
	// Signer (TicketVersionDelegated) is the key that signed the ticket
	// for the publisher: one the publisher delegated on the ledger, so
	// the key that holds its escrow stays offline while its app servers
	// issue tickets. "" in TicketVersion: the publisher signed it.
	Signer peer.ID
	Sig    []byte
}

// Ticket versions: TicketVersion is signed by its publisher,
// TicketVersionDelegated by a key the publisher delegated (Signer).
const (
	TicketVersion          = 1
	TicketVersionDelegated = 2
)

// MaxTicketEncoded bounds an encoded ticket.
const MaxTicketEncoded = 512

// ErrBadTicket wraps every ticket that does not decode, verify or pass
// the stateless rules.
var ErrBadTicket = errors.New("pod: bad ticket")

const (
	ticketSigDomain = "ore/pod/v1/ticket\x00"
	ticketIDDomain  = "ore/pod/v1/ticket-id\x00"
)

func (t *Ticket) appendBody(b []byte) []byte {
	b = append(b, t.Version)
	b = wire.AppendBytes(b, []byte(t.Network))
	b = wire.AppendPeer(b, t.Publisher)
	b = wire.AppendCID(b, t.Root)
	b = wire.AppendPeer(b, t.Client)
	b = binary.AppendUvarint(b, t.Cap)
	b = binary.AppendUvarint(b, t.Expires)
	b = binary.AppendUvarint(b, t.Nonce)
	if t.Version >= TicketVersionDelegated {
		b = wire.AppendPeer(b, t.Signer)
	}
	return b
}

// SignedBy is the key whose signature makes the ticket: its Signer if a
// publisher delegated it, else the publisher.
func (t *Ticket) SignedBy() peer.ID {
	if t.Version >= TicketVersionDelegated {
		return t.Signer
	}
	return t.Publisher
}

// ID is the ticket's name: SHA-256 over a domain prefix and the signed
// body (not the signature, so a ticket has one ID however it is signed).
func (t *Ticket) ID() [32]byte {
	var buf [MaxTicketEncoded]byte
	return sha256.Sum256(t.appendBody(append(buf[:0], ticketIDDomain...)))
}

// Marshal encodes the ticket, signature included.
func (t *Ticket) Marshal() []byte {
	return wire.AppendBytes(t.appendBody(make([]byte, 0, 256)), t.Sig)
}

// UnmarshalTicket decodes a ticket. It accepts only the canonical encoding
// of a known version within MaxTicketEncoded; it checks that the peer IDs
// and the CID parse, not the signature (Verify) nor the rules (Check).
func UnmarshalTicket(data []byte) (*Ticket, error) {
	if len(data) > MaxTicketEncoded {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadTicket, len(data), MaxTicketEncoded)
	}
	d := wire.NewDecoder(data, ErrBadTicket)
	t := &Ticket{Version: d.Byte("version")}
	if d.Err() == nil && t.Version != TicketVersion && t.Version != TicketVersionDelegated {
		return nil, fmt.Errorf("%w: version %d, this build reads %d and %d", ErrBadTicket, t.Version, TicketVersion, TicketVersionDelegated)
	}
	t.Network = d.String(MaxNetworkLen, "network")
	t.Publisher = d.Peer(MaxPeerIDLen, "publisher")
	t.Root = d.OptCID(MaxCIDLen, "root")
	t.Client = d.OptPeer(MaxPeerIDLen, "client")
	t.Cap = d.Uvarint("cap")
	t.Expires = d.Uvarint("expires")
	t.Nonce = d.Uvarint("nonce")
	if t.Version >= TicketVersionDelegated {
		t.Signer = d.Peer(MaxPeerIDLen, "signer")
	}
	t.Sig = d.Bytes(MaxSigLen, "signature")
	if err := d.End(); err != nil {
		return nil, err
	}
	if !bytes.Equal(t.Marshal(), data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrBadTicket)
	}
	return t, nil
}

// String is the ticket in the form a URL carries (base64url, no padding):
// a gateway takes it as ?ore-ticket= or in the Ore-Ticket header.
func (t *Ticket) String() string { return base64.RawURLEncoding.EncodeToString(t.Marshal()) }

// ParseTicket reads what String wrote.
func ParseTicket(s string) (*Ticket, error) {
	if len(s) > base64.RawURLEncoding.EncodedLen(MaxTicketEncoded) {
		return nil, fmt.Errorf("%w: %d characters, the limit is %d", ErrBadTicket, len(s), base64.RawURLEncoding.EncodedLen(MaxTicketEncoded))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", ErrBadTicket, err)
	}
	return UnmarshalTicket(b)
}

// Sign signs the ticket with the key SignedBy names: the publisher's, or
// the delegated Signer's.
func (t *Ticket) Sign(k crypto.PrivKey) error {
	if err := checkKey(k, t.SignedBy(), "ticket signer"); err != nil {
		return err
	}
	sig, err := k.Sign(t.appendBody([]byte(ticketSigDomain)))
	if err != nil {
		return fmt.Errorf("pod: ticket sign: %w", err)
	}
	t.Sig = sig
	return nil
}

// Verify checks the signature of the key SignedBy names. Whether a
// delegated signer may sign for the publisher is the ledger's to say.
func (t *Ticket) Verify() error {
	if len(t.Sig) == 0 {
		return fmt.Errorf("%w: unsigned", ErrBadTicket)
	}
	signer := t.SignedBy()
	pk, err := signer.ExtractPublicKey()
	if err != nil || pk.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: signer %s has no Ed25519 key", ErrBadTicket, signer)
	}
	ok, err := pk.Verify(t.appendBody([]byte(ticketSigDomain)), t.Sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: signature does not verify for %s", ErrBadTicket, signer)
	}
	return nil
}

// CheckTicket applies the stateless rules of a ticket on a network: its network,
// a cap, a publisher that is not its own client. Whether it has expired
// and what is left of its cap are the ledger's to say.
func (p Params) CheckTicket(t *Ticket) error {
	switch {
	case t.Version != TicketVersion && t.Version != TicketVersionDelegated:
		return fmt.Errorf("%w: version %d", ErrBadTicket, t.Version)
	case t.Version == TicketVersionDelegated && (t.Signer == "" || t.Signer == t.Publisher):
		return fmt.Errorf("%w: a delegated ticket names a signer other than its publisher", ErrBadTicket)
	case t.Client != "" && t.Client == t.Signer:
		return fmt.Errorf("%w: signer %s tickets itself", ErrBadTicket, t.Signer)
	case t.Network != p.Network:
		return fmt.Errorf("%w: network %q, this is %q", ErrBadTicket, t.Network, p.Network)
	case t.Cap == 0:
		return fmt.Errorf("%w: a cap of 0 bytes pays nothing", ErrBadTicket)
	case t.Client != "" && t.Client == t.Publisher:
		return fmt.Errorf("%w: publisher %s tickets itself", ErrBadTicket, t.Publisher)
	}
	return nil
}

// Covers reports whether the ticket pays for receipt r's delivery, as far
// as the ticket alone says: r's root and client are the ticket's, and r's
// epoch is not after it expired. The ledger adds what only it knows (the
// ticket is on the chain, the publisher registered the root, the cap has
// room).
func (t *Ticket) Covers(r *Receipt) bool {
	return (!t.Root.Defined() || t.Root.Equals(r.Root)) &&
		(t.Client == "" || t.Client == r.Client) &&
		r.Epoch <= t.Expires
}
