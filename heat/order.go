package heat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/internal/wire"
)

// Limits of an order; UnmarshalOrder refuses anything larger before it
// decodes it.
const (
	MaxOrderSize  = 8 << 10
	MaxOrderBoxes = 64
)

// How long an order may run: Until - Epoch, by reason. Any single
// committee member can sign an order (the committee's quorum does not
// stand behind orders yet), so a box bounds what one signature may make
// it hold: an order for a million epochs would pin a root, and the
// box's quota, for good. The bounds keep renewals working: while a root
// stays hot, or its pre-warm runs, the leader issues its order again
// every epoch with a later Until, and each renewal extends the hold
// (node's sched.take).
const (
	// MaxHeatOrderEpochs bounds a heat order: Params.Lifetime may not
	// exceed it (the default lifetime is 6 epochs).
	MaxHeatOrderEpochs = 64
	// MaxPrewarmOrderEpochs bounds a pre-warm order: the ledger accepts a
	// pre-warm up to ledger.MaxPrewarmEpochs after its block's epoch,
	// which is not after the order's. It is that constant, repeated here
	// because this package does not depend on the ledger (a test in
	// ledger/committee checks they agree).
	MaxPrewarmOrderEpochs = 60_480
)

// MaxOrderEpochs is how long an order for reason may run (Until - Epoch);
// 0 for an unknown reason.
func MaxOrderEpochs(r Reason) uint64 {
	switch r {
	case ReasonHeat:
		return MaxHeatOrderEpochs
	case ReasonPrewarm:
		return MaxPrewarmOrderEpochs
	}
	return 0
}

const orderDomain = "ore/heat/v1/order\x00"

// Reason is why a root is replicated.
type Reason uint8

// Reasons.
const (
	ReasonHeat    Reason = 1 // requests for it crossed the hot threshold
	ReasonPrewarm Reason = 2 // its publisher asked for replicas ahead of demand
)

func (r Reason) String() string {
	switch r {
	case ReasonHeat:
		return "heat"
	case ReasonPrewarm:
		return "prewarm"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

func (r Reason) valid() bool { return r == ReasonHeat || r == ReasonPrewarm }

// Order tells boxes to fetch a root whole and hold it through epoch Until.
// The committee's leader signs it and gossips it on OrderTopic.
type Order struct {
	Network string
	Issuer  peer.ID // the coordinator that signed it
	Epoch   uint64  // issued in
	Root    cid.Cid
	Size    uint64 // bytes of the DAG if known, else 0
	Until   uint64 // last epoch the boxes must hold the root
	Reason  Reason
	Boxes   []peer.ID // at most MaxOrderBoxes, sorted, unique: every box that must hold it
	Sig     []byte
}

// Names reports whether p is one of the order's boxes.
func (o *Order) Names(p peer.ID) bool {
	return slices.Contains(o.Boxes, p)
}

func (o *Order) appendUnsigned(b []byte) []byte {
	b = append(b, Version)
	b = wire.AppendBytes(b, []byte(o.Network))
	b = wire.AppendPeer(b, o.Issuer)
	b = binary.AppendUvarint(b, o.Epoch)
	b = wire.AppendCID(b, o.Root)
	b = binary.AppendUvarint(b, o.Size)
	b = binary.AppendUvarint(b, o.Until)
	b = append(b, byte(o.Reason))
	b = binary.AppendUvarint(b, uint64(len(o.Boxes)))
	for _, p := range o.Boxes {
		b = wire.AppendPeer(b, p)
	}
	return b
}

// Marshal encodes the order, signature included.
func (o *Order) Marshal() []byte {
	b := o.appendUnsigned(make([]byte, 0, 256+40*len(o.Boxes)))
	return wire.AppendBytes(b, o.Sig)
}

// SigPayload is what the issuer signs: a domain prefix and the unsigned
// encoding (which names the network).
func (o *Order) SigPayload() []byte {
	return o.appendUnsigned(append(make([]byte, 0, 256+40*len(o.Boxes)), orderDomain...))
}

// check verifies the order's structure: limits, a defined root, a known
// reason, boxes sorted and unique.
func (o *Order) check() error {
	switch {
	case len(o.Network) > MaxNetworkLen:
		return fmt.Errorf("%w: order network is %d bytes, the limit is %d", ErrMalformed, len(o.Network), MaxNetworkLen)
	case len(o.Issuer) > MaxPeerIDLen:
		return fmt.Errorf("%w: issuer ID is %d bytes, the limit is %d", ErrMalformed, len(o.Issuer), MaxPeerIDLen)
	case !o.Root.Defined() || len(o.Root.Bytes()) > MaxCIDLen:
		return fmt.Errorf("%w: order root is undefined or too long", ErrMalformed)
	case !o.Reason.valid():
		return fmt.Errorf("%w: order reason is unknown %s", ErrMalformed, o.Reason)
	case len(o.Boxes) > MaxOrderBoxes:
		return fmt.Errorf("%w: order names %d boxes, the limit is %d", ErrMalformed, len(o.Boxes), MaxOrderBoxes)
	case len(o.Sig) > MaxSigLen:
		return fmt.Errorf("%w: order signature is %d bytes, the limit is %d", ErrMalformed, len(o.Sig), MaxSigLen)
	}
	for i, p := range o.Boxes {
		if len(p) == 0 || len(p) > MaxPeerIDLen {
			return fmt.Errorf("%w: order box %d has an ID of %d bytes", ErrMalformed, i, len(p))
		}
		if i > 0 && o.Boxes[i-1] >= p {
			return fmt.Errorf("%w: order boxes not sorted and unique at %d", ErrMalformed, i)
		}
	}
	return nil
}

// Sign sets Network to network and Issuer to k's peer ID and signs the
// order. k must be an Ed25519 key. It refuses an order that peers would
// refuse to decode.
func (o *Order) Sign(network string, k crypto.PrivKey) error {
	id, err := signer(k, "order")
	if err != nil {
		return err
	}
	o.Network, o.Issuer, o.Sig = network, id, nil
	if err := o.check(); err != nil {
		return fmt.Errorf("heat: sign order: %w", err)
	}
	sig, err := k.Sign(o.SigPayload())
	if err != nil {
		return fmt.Errorf("heat: sign order: %w", err)
	}
	o.Sig = sig
	if n := len(o.Marshal()); n > MaxOrderSize {
		o.Sig = nil
		return fmt.Errorf("%w: order of %d bytes, the limit is %d", ErrTooLarge, n, MaxOrderSize)
	}
	return nil
}

// Verify checks that the order is for network and signed by its issuer's
// Ed25519 key. It does not check that the issuer is in the committee (see
// CheckOrder).
func (o *Order) Verify(network string) error {
	if o.Network != network {
		return fmt.Errorf("%w: order for %q, this is %q", ErrWrongNetwork, o.Network, network)
	}
	return verifySig(o.Issuer, o.SigPayload(), o.Sig, "order")
}

// CheckOrder applies the rules to a received order: well formed, for
// network, issued by a committee member (isMember; nil admits nobody), in
// an epoch at most skew away from nowEpoch, with Until neither before Epoch
// nor already past nor more than MaxOrderEpochs(Reason) after Epoch, and
// signed by its issuer. Cheap checks run first.
func CheckOrder(o *Order, network string, isMember func(peer.ID) bool, nowEpoch, skew uint64) error {
	if o == nil {
		return fmt.Errorf("%w: no order", ErrMalformed)
	}
	if err := o.check(); err != nil {
		return err
	}
	if o.Network != network {
		return fmt.Errorf("%w: order for %q, this is %q", ErrWrongNetwork, o.Network, network)
	}
	if isMember == nil || !isMember(o.Issuer) {
		return fmt.Errorf("%w: order issued by %s", ErrNotCommittee, o.Issuer)
	}
	if err := checkEpoch(o.Epoch, nowEpoch, skew, "order"); err != nil {
		return err
	}
	if o.Until < o.Epoch {
		return fmt.Errorf("%w: order until epoch %d, before its issue in %d", ErrMalformed, o.Until, o.Epoch)
	}
	if limit := MaxOrderEpochs(o.Reason); o.Until-o.Epoch > limit {
		return fmt.Errorf("%w: %s order of epoch %d runs until %d, at most %d epochs", ErrTooLong, o.Reason, o.Epoch, o.Until, limit)
	}
	if o.Until < nowEpoch {
		return fmt.Errorf("%w: order expired in epoch %d, now is %d", ErrStale, o.Until, nowEpoch)
	}
	return o.Verify(network)
}

// UnmarshalOrder decodes an order. It accepts only the canonical encoding
// of a known version within MaxOrderSize, with peer IDs and the CID that
// parse, a known reason and sorted unique boxes; it does not check the
// signature or the issuer (see CheckOrder).
func UnmarshalOrder(data []byte) (*Order, error) {
	if len(data) > MaxOrderSize {
		return nil, fmt.Errorf("%w: order of %d bytes, the limit is %d", ErrTooLarge, len(data), MaxOrderSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	if v := d.Byte("version"); d.Err() == nil && v != Version {
		return nil, fmt.Errorf("%w: order version %d, this build reads %d", ErrMalformed, v, Version)
	}
	o := &Order{}
	o.Network = string(d.Bytes(MaxNetworkLen, "network"))
	o.Issuer = d.Peer(MaxPeerIDLen, "issuer")
	o.Epoch = d.Uvarint("epoch")
	o.Root = d.CID(MaxCIDLen, "root")
	o.Size = d.Uvarint("size")
	o.Until = d.Uvarint("until")
	o.Reason = Reason(d.Byte("reason"))
	if n := d.Count(MaxOrderBoxes, "boxes"); n > 0 {
		o.Boxes = make([]peer.ID, n)
		for i := range o.Boxes {
			o.Boxes[i] = d.Peer(MaxPeerIDLen, "box")
		}
	}
	o.Sig = d.Bytes(MaxSigLen, "signature") // nil when unsigned
	if err := d.End(); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(o.Marshal(), data) {
		return nil, fmt.Errorf("%w: order not in canonical form", ErrMalformed)
	}
	return o, nil
}
