package ledger

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/internal/wire"
)

// Block limits. A leader cuts blocks of at most MaxBlockTxs transactions;
// several blocks may share an epoch. MaxBlockSize leaves room for Raft's
// framing under the 64 MiB a log entry may take in the committee's log
// (raft-wal).
const (
	MaxBlockTxs  = 50_000
	MaxBlockSize = 60 << 20
	MaxBlockSigs = 5
)

// Header is what the committee signs (through its hash).
type Header struct {
	Version   uint8
	Height    uint64   // 1 for the first block after genesis
	Prev      [32]byte // hash of block Height-1; the genesis hash for height 1
	Epoch     uint64   // never before the previous block's
	Proposer  peer.ID  // the committee member that built the block
	Time      int64    // the leader's clock, unix nanoseconds; carried, never read
	TxRoot    [32]byte // MerkleRoot of the transactions' IDs
	StateHash [32]byte // State.Hash after applying the block
}

// Signature is a committee member's signature over a header hash.
type Signature struct {
	Signer peer.ID
	Sig    []byte
}

// Block is a header, its transactions and committee signatures. The
// signatures are not part of the hash; they sit sorted by signer, one each.
type Block struct {
	Header Header
	Txs    []Tx
	Sigs   []Signature
}

const (
	headerDomain   = "ore/ledger/v1/block-header\x00"
	blockSigDomain = "ore/ledger/v1/block-sig\x00"
)

func (h *Header) appendTo(b []byte) []byte {
	b = append(b, h.Version)
	b = binary.AppendUvarint(b, h.Height)
	b = append(b, h.Prev[:]...)
	b = binary.AppendUvarint(b, h.Epoch)
	b = wire.AppendPeer(b, h.Proposer)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time))
	b = append(b, h.TxRoot[:]...)
	return append(b, h.StateHash[:]...)
}

// Marshal encodes the header.
func (h *Header) Marshal() []byte { return h.appendTo(make([]byte, 0, 160)) }

// Hash is SHA-256 over a domain prefix and the header's encoding.
func (h *Header) Hash() [32]byte {
	b := h.appendTo(append(make([]byte, 0, 192), headerDomain...))
	return sha256.Sum256(b)
}

// Hash is the header's hash.
func (b *Block) Hash() [32]byte { return b.Header.Hash() }

// TxIDs are the IDs of the block's transactions, in order.
func (b *Block) TxIDs() [][32]byte {
	ids := make([][32]byte, len(b.Txs))
	for i := range b.Txs {
		ids[i] = b.Txs[i].ID()
	}
	return ids
}

// Marshal encodes the block: header, transactions, signatures.
func (b *Block) Marshal() []byte {
	out := b.Header.appendTo(make([]byte, 0, 256+len(b.Txs)*400))
	out = binary.AppendUvarint(out, uint64(len(b.Txs)))
	var tx []byte
	for i := range b.Txs {
		tx = b.Txs[i].appendTo(tx[:0])
		out = wire.AppendBytes(out, tx)
	}
	out = binary.AppendUvarint(out, uint64(len(b.Sigs)))
	for _, s := range b.Sigs {
		out = wire.AppendPeer(out, s.Signer)
		out = wire.AppendBytes(out, s.Sig)
	}
	return out
}

// UnmarshalBlock decodes a block. It accepts only the canonical encoding
// of a known version within the limits, signatures sorted by distinct
// signer; it checks no signature and no ledger rule (see Apply, Final).
func UnmarshalBlock(data []byte) (*Block, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%w: block of %d bytes, the limit is %d", ErrMalformed, len(data), MaxBlockSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	b := &Block{}
	h := &b.Header
	h.Version = d.Byte("version")
	if d.Err() == nil && h.Version != Version {
		return nil, fmt.Errorf("%w: block version %d, this build reads %d", ErrMalformed, h.Version, Version)
	}
	h.Height = d.Uvarint("height")
	h.Prev = d.Hash("previous hash")
	h.Epoch = d.Uvarint("epoch")
	h.Proposer = d.Peer(maxPeerIDLen, "proposer")
	h.Time = int64(d.Uint64("time"))
	h.TxRoot = d.Hash("tx root")
	h.StateHash = d.Hash("state hash")
	n := d.Uvarint("transaction count")
	if d.Err() == nil && (n > MaxBlockTxs || n > uint64(d.Len()/minTxEncoding)) {
		return nil, fmt.Errorf("%w: %d transactions (limit %d, %d bytes left)", ErrMalformed, n, MaxBlockTxs, d.Len())
	}
	if d.Err() == nil && n > 0 {
		b.Txs = make([]Tx, 0, n)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		raw := d.View(maxTxEncoded, "transaction") // UnmarshalTx copies what it keeps
		if d.Err() != nil {
			break
		}
		t, err := UnmarshalTx(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: transaction %d: %w", ErrMalformed, i, err)
		}
		b.Txs = append(b.Txs, *t)
	}
	ns := d.Count(MaxBlockSigs, "signatures")
	for i := 0; i < ns && d.Err() == nil; i++ {
		s := Signature{Signer: d.Peer(maxPeerIDLen, "signer"), Sig: d.Bytes(maxSigLen, "signature")}
		if d.Err() == nil && i > 0 && b.Sigs[i-1].Signer >= s.Signer {
			return nil, fmt.Errorf("%w: signatures not sorted by distinct signer", ErrMalformed)
		}
		b.Sigs = append(b.Sigs, s)
	}
	// Every field is read in its only encoding (see internal/wire) and the
	// transactions are canonical themselves, so what decodes is canonical.
	if err := d.End(); err != nil {
		return nil, err
	}
	return b, nil
}

// SigPayload is what a committee member signs: a domain prefix and the
// header hash.
func SigPayload(headerHash [32]byte) []byte {
	return append(append(make([]byte, 0, 64), blockSigDomain...), headerHash[:]...)
}

// Sign adds (or replaces) k's signature over the header hash. It does not
// check that k is on the committee.
func (b *Block) Sign(k crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return fmt.Errorf("ledger: sign block: %w", err)
	}
	sig, err := k.Sign(SigPayload(b.Hash()))
	if err != nil {
		return fmt.Errorf("ledger: sign block: %w", err)
	}
	return b.AddSignature(Signature{Signer: id, Sig: sig})
}

// AddSignature adds a signature received from another member (replacing
// an earlier one of the same signer), keeping the list sorted. It does not
// verify it.
func (b *Block) AddSignature(s Signature) error {
	if len(s.Sig) == 0 || len(s.Sig) > maxSigLen {
		return fmt.Errorf("%w: block signature of %d bytes", ErrBadSignature, len(s.Sig))
	}
	i, found := slices.BinarySearchFunc(b.Sigs, s.Signer, func(x Signature, id peer.ID) int {
		return cmp.Compare(x.Signer, id)
	})
	if found {
		b.Sigs[i] = s
		return nil
	}
	if len(b.Sigs) >= MaxBlockSigs {
		return fmt.Errorf("ledger: block already has %d signatures", len(b.Sigs))
	}
	b.Sigs = slices.Insert(b.Sigs, i, s)
	return nil
}

// VerifySignatures counts the valid signatures of distinct committee
// members of g under its finality rule (under FinalityBFT, the precommits
// of the round with the most).
func (b *Block) VerifySignatures(g *Genesis) int { return b.countSigs(g, nil) }

// VerifySignaturesExcept is VerifySignatures without the signatures of
// the members excluded names (excluded for equivocation).
func (b *Block) VerifySignaturesExcept(g *Genesis, excluded func(peer.ID) bool) int {
	return b.countSigs(g, excluded)
}

// Final reports whether g.Quorum() members signed the block under g's
// finality rule. A block's state is applied only once it is final.
func (b *Block) Final(g *Genesis) bool { return b.VerifySignatures(g) >= g.Quorum() }
