package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/wire"
)

// OrderProof is a replication order with the proof that a final block
// holds it: the block's header and committee signatures (a block without
// its transactions) and the Merkle path of the order transaction's ID
// under the header's TxRoot. A box checks it against the genesis alone,
// without the chain: a quorum of the committee signed the header, and the
// header commits to the order.
type OrderProof struct {
	Tx    Tx     // KindOrder
	Block *Block // header and signatures; no transactions
	Index int    // of the order in the block's transactions
	Count int    // transactions in the block
	Path  [][32]byte
}

// Limits of an order proof: the order, a header with MaxBlockSigs
// signatures, and a Merkle path through at most MaxBlockTxs leaves.
const (
	maxProofPath      = 17 // ceil(log2(MaxBlockTxs)) + 1
	MaxOrderProofSize = maxOrderTx + 1024 + MaxBlockSigs*(maxPeerIDLen+maxSigLen+4) + maxProofPath*32 + 16
	orderProofVersion = 1
)

// NewOrderProof proves transaction i of the final block b, an order.
func NewOrderProof(b *Block, i int) (*OrderProof, error) {
	if i < 0 || i >= len(b.Txs) || b.Txs[i].Kind != KindOrder {
		return nil, fmt.Errorf("ledger: transaction %d of block %d is not an order", i, b.Header.Height)
	}
	path, ok := MerkleProof(b.TxIDs(), i)
	if !ok {
		return nil, fmt.Errorf("ledger: no Merkle path for transaction %d", i)
	}
	return &OrderProof{Tx: b.Txs[i], Block: &Block{Header: b.Header, Sigs: b.Sigs}, Index: i, Count: len(b.Txs), Path: path}, nil
}

// Marshal encodes the proof.
func (p *OrderProof) Marshal() []byte {
	b := append(make([]byte, 0, 2048), orderProofVersion)
	b = wire.AppendBytes(b, p.Tx.Marshal())
	b = wire.AppendBytes(b, p.Block.Marshal())
	b = binary.AppendUvarint(b, uint64(p.Index))
	b = binary.AppendUvarint(b, uint64(p.Count))
	b = binary.AppendUvarint(b, uint64(len(p.Path)))
	for _, h := range p.Path {
		b = append(b, h[:]...)
	}
	return b
}

// UnmarshalOrderProof decodes a proof within MaxOrderProofSize, in its
// canonical encoding; it checks no signature (see Verify).
func UnmarshalOrderProof(data []byte) (*OrderProof, error) {
	if len(data) > MaxOrderProofSize {
		return nil, fmt.Errorf("%w: order proof of %d bytes, the limit is %d", ErrMalformed, len(data), MaxOrderProofSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	if v := d.Byte("version"); d.Err() == nil && v != orderProofVersion {
		return nil, fmt.Errorf("%w: order proof version %d, this build reads %d", ErrMalformed, v, orderProofVersion)
	}
	p := &OrderProof{}
	rawTx := d.View(maxOrderTx, "order transaction")
	rawBlock := d.View(MaxOrderProofSize, "block header")
	idx, count := d.Uvarint("index"), d.Uvarint("count")
	n := d.Count(maxProofPath, "path")
	for i := 0; i < n && d.Err() == nil; i++ {
		p.Path = append(p.Path, d.Hash("path hash"))
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	if count == 0 || count > MaxBlockTxs || idx >= count {
		return nil, fmt.Errorf("%w: order %d of %d transactions", ErrMalformed, idx, count)
	}
	p.Index, p.Count = int(idx), int(count)
	tx, err := UnmarshalTx(rawTx)
	if err != nil {
		return nil, err
	}
	if tx.Kind != KindOrder {
		return nil, fmt.Errorf("%w: an order proof of a %s", ErrMalformed, tx.Kind)
	}
	p.Tx = *tx
	if p.Block, err = UnmarshalBlock(rawBlock); err != nil {
		return nil, err
	}
	if len(p.Block.Txs) != 0 {
		return nil, fmt.Errorf("%w: an order proof's block carries transactions", ErrMalformed)
	}
	return p, nil
}

// Verify checks that a quorum of g's committee signed the proof's header
// (Block.Final) and that the header's TxRoot commits to the order, and
// returns the order; it wraps ErrNotFinal when either fails. The ledger checked the order's rules when the block
// was built and signed; a box still checks it against its own clock
// (heat.CheckOrder).
func (p *OrderProof) Verify(g *Genesis) (*heat.Order, error) {
	if p.Tx.Kind != KindOrder || p.Tx.Order == nil || p.Block == nil {
		return nil, fmt.Errorf("%w: no order", ErrMalformed)
	}
	if !VerifyMerkleProof(p.Block.Header.TxRoot, p.Tx.ID(), p.Index, p.Count, p.Path) {
		return nil, fmt.Errorf("%w: block %d does not hold the order", ErrNotFinal, p.Block.Header.Height)
	}
	if !p.Block.Final(g) {
		return nil, fmt.Errorf("%w: block %d lacks a quorum of committee signatures", ErrNotFinal, p.Block.Header.Height)
	}
	return p.Tx.Order, nil
}
