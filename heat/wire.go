package heat

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Version is the encoding version of reports and orders.
const Version = 1

// Gossip topics.
const (
	ReportTopic = "/ore/heat/1"   // boxes' signed heat reports, once per epoch
	OrderTopic  = "/ore/orders/2" // the committee's replication orders, each proven final (ledger.OrderProof)
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
	ErrTooLong       = errors.New("heat: order runs too long")
	ErrInvalidParams = errors.New("heat: invalid params")
)

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
