package intake

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// MaxBatch is the most receipts one gossip message carries: 512 receipts
// of at most pod.MaxEncoded bytes stay inside gossipsub's 1 MiB message
// limit, and a full message is one Ed25519 batch of 1,024 signatures,
// which costs ~20 % less per signature than batches of 256
// (pod.BenchmarkVerifyReceipts). Peers built with a smaller MaxBatch
// refuse the larger messages.
const MaxBatch = 512

// ErrMalformed is a gossip message that is not a well-formed batch.
var ErrMalformed = errors.New("intake: malformed receipts message")

// encodeBatch is the message form of rs (1 to MaxBatch receipts): a
// count, then each receipt's canonical encoding, length-prefixed.
func encodeBatch(rs []*pod.Receipt) []byte {
	b := binary.AppendUvarint(make([]byte, 0, len(rs)*300), uint64(len(rs)))
	for _, r := range rs {
		b = wire.AppendBytes(b, r.Marshal())
	}
	return b
}

// decodeBatch reads a message; it fails on an empty or oversized batch, a
// malformed receipt and trailing bytes.
func decodeBatch(data []byte) ([]*pod.Receipt, error) {
	d := wire.NewDecoder(data, ErrMalformed)
	n := d.Count(MaxBatch, "receipts")
	if d.Err() == nil && n == 0 {
		d.Failf("no receipts")
	}
	rs := make([]*pod.Receipt, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		raw := d.View(pod.MaxEncoded, "receipt") // Unmarshal copies what it keeps
		if d.Err() != nil {
			break
		}
		r, err := pod.Unmarshal(raw)
		if err != nil {
			return nil, fmt.Errorf("receipt %d of %d: %w", i, n, err)
		}
		rs = append(rs, r)
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return rs, nil
}
