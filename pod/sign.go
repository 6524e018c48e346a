package pod

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"github.com/orecdn/ore/internal/wire"
)

// Domain separation: a signature over a receipt can never be taken for a
// signature over anything else, nor a client's for a server's.
const (
	clientDomain = "ore/pod/v1/client-receipt\x00"
	serverDomain = "ore/pod/v1/server-countersign\x00"
)

// ClientPayload is what the client signs.
func (r *Receipt) ClientPayload() []byte { return r.appendClientPayload(make([]byte, 0, 320)) }

func (r *Receipt) appendClientPayload(b []byte) []byte {
	return r.appendBody(append(b, clientDomain...))
}

// ServerPayload is what the server signs: the body and the client's
// signature.
func (r *Receipt) ServerPayload() []byte { return r.appendServerPayload(make([]byte, 0, 400)) }

func (r *Receipt) appendServerPayload(b []byte) []byte {
	b = r.appendBody(append(b, serverDomain...))
	return wire.AppendBytes(b, r.ClientSig)
}

// SignClient signs the receipt as its client. k must be the client's key.
func (r *Receipt) SignClient(k crypto.PrivKey) error {
	if err := checkKey(k, r.Client, "client"); err != nil {
		return err
	}
	r.ServerSig = nil
	sig, err := k.Sign(r.ClientPayload())
	if err != nil {
		return fmt.Errorf("pod: client sign: %w", err)
	}
	r.ClientSig = sig
	return nil
}

// SignServer countersigns the receipt as its server. Check the client's
// signature first (VerifyClient).
func (r *Receipt) SignServer(k crypto.PrivKey) error {
	if err := checkKey(k, r.Server, "server"); err != nil {
		return err
	}
	if len(r.ClientSig) == 0 {
		return errors.New("pod: countersign: the client has not signed")
	}
	sig, err := k.Sign(r.ServerPayload())
	if err != nil {
		return fmt.Errorf("pod: server sign: %w", err)
	}
	r.ServerSig = sig
	return nil
}

func checkKey(k crypto.PrivKey, want peer.ID, role string) error {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return fmt.Errorf("pod: %s key: %w", role, err)
	}
	if id != want {
		return fmt.Errorf("pod: key of %s signing as %s %s", id, role, want)
	}
	return nil
}

// VerifyClient checks the client's signature.
func (r *Receipt) VerifyClient() error {
	return verifySig(r.Client, r.ClientPayload(), r.ClientSig, "client")
}

// VerifyServer checks the server's signature.
func (r *Receipt) VerifyServer() error {
	return verifySig(r.Server, r.ServerPayload(), r.ServerSig, "server")
}

// Signature errors.
var (
	ErrMissingSignature = errors.New("pod: missing signature")
	ErrBadSignature     = errors.New("pod: bad signature")
)

func verifySig(id peer.ID, payload, sig []byte, role string) error {
	if len(sig) == 0 {
		return fmt.Errorf("%w: no %s signature", ErrMissingSignature, role)
	}
	pk, err := expandedKey(id, role)
	if err != nil {
		return err
	}
	if !voi.VerifyExpandedWithOptions(pk, payload, sig, zip215) {
		return fmt.Errorf("%w: %s signature does not verify", ErrBadSignature, role)
	}
	return nil
}
