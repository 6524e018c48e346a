package heat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Version is the encoding version of reports and orders.
const Version = 1

// Gossip topics.
const (
	ReportTopic = "/ore/heat/1"   // boxes' signed heat reports, once per epoch
	OrderTopic  = "/ore/orders/1" // the committee leader's signed replication orders
)

// Field limits shared by reports and orders.
const (
	MaxNetworkLen = 64
	MaxPeerIDLen  = 64
	MaxCIDLen     = 128
	MaxSigLen     = 128
)

// Errors. Every failure wraps one of them with what failed.
var (
	ErrMalformed     = errors.New("heat: malformed")
	ErrTooLarge      = errors.New("heat: too large")
	ErrBadSignature  = errors.New("heat: bad signature")
	ErrWrongNetwork  = errors.New("heat: wrong network")
	ErrStale         = errors.New("heat: stale epoch")
	ErrNotCommittee  = errors.New("heat: issuer not in the committee")
	ErrInvalidParams = errors.New("heat: invalid params")
)

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendCID(b []byte, c cid.Cid) []byte {
	var v []byte
	if c.Defined() {
		v = c.Bytes()
	}
	return appendBytes(b, v)
}

// decoder reads the canonical encoding; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad or truncated %s", ErrMalformed, what)
	}
}

func (d *decoder) byte(what string) uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
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

// count reads a list length and refuses one over max before anything is
// allocated for it.
func (d *decoder) count(max int, what string) int {
	n := d.uvarint(what + " count")
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.err = fmt.Errorf("%w: %d %s, the limit is %d", ErrMalformed, n, what, max)
		return 0
	}
	return int(n)
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
	if uint64(len(d.b)) < n {
		d.fail(what)
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) cid(what string) cid.Cid {
	raw := d.bytes(MaxCIDLen, what)
	if d.err != nil {
		return cid.Undef
	}
	c, err := cid.Cast(raw)
	if err != nil {
		d.err = fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
		return cid.Undef
	}
	return c
}

func (d *decoder) peer(what string) peer.ID {
	raw := d.bytes(MaxPeerIDLen, what)
	if d.err != nil {
		return ""
	}
	id, err := peer.IDFromBytes(raw)
	if err != nil {
		d.err = fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
		return ""
	}
	return id
}

// end fails on trailing bytes.
func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
}

// signer returns the peer ID of k, which must be an Ed25519 key.
func signer(k crypto.PrivKey, what string) (peer.ID, error) {
	if k == nil {
		return "", fmt.Errorf("heat: sign %s: no key", what)
	}
	if k.Type() != crypto.Ed25519 {
		return "", fmt.Errorf("heat: sign %s: key is %s, %ss take Ed25519", what, k.Type(), what)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("heat: sign %s: %w", what, err)
	}
	return id, nil
}

// verifySig checks that sig is signer's Ed25519 signature of payload.
func verifySig(signer peer.ID, payload, sig []byte, what string) error {
	if len(sig) == 0 {
		return fmt.Errorf("%w: unsigned %s", ErrBadSignature, what)
	}
	pk, err := signer.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: %s signer %s carries no public key: %v", ErrBadSignature, what, signer, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: %s signer key is %s, %ss take Ed25519", ErrBadSignature, what, pk.Type(), what)
	}
	ok, err := pk.Verify(payload, sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: %s by %s does not verify", ErrBadSignature, what, signer)
	}
	return nil
}

// checkEpoch refuses an epoch more than skew away from now.
func checkEpoch(epoch, now, skew uint64, what string) error {
	d := epoch - now
	if epoch < now {
		d = now - epoch
	}
	if d > skew {
		return fmt.Errorf("%w: %s of epoch %d, now is %d (skew %d)", ErrStale, what, epoch, now, skew)
	}
	return nil
}
