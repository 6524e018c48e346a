package meter

import (
	"slices"
	"time"
)

// debt is what a server sent a client and holds no receipt for, by the
// epoch it was sent in, oldest first. It is the credit window's count.
type debt struct {
	bytes int64 // the sum of epochs
	// paid: the bytes of receipts the server countersigned for the client
	// since this entry was made: its credit window grows with them (see
	// Server.windowOf).
	paid   int64
	epochs []epochDebt
	// signs: the client sent a receipt it signed, countersigned or not.
	// Only then does debt no receipt can pay age out: a client that never
	// signs stays held back while it asks.
	signs bool
	// seen: when the client last asked, or was last found connected (by
	// the server's clock). A client that is gone for the debt grace is
	// forgotten, whether it signed or not (see Server.AgeDebts).
	seen time.Time
	// sent: the blocks the gate let through to the client that no receipt
	// claimed yet, oldest first (at most MaxSentPerClient): the meter a
	// receipt is checked against, by root.
	sent []sentBlock
}

// sentBlock is a block the gate let through, not yet claimed by a
// receipt (or only in part: size is what is left).
type sentBlock struct {
	key   blockKey
	size  int64
	epoch uint64
	seq   uint64 // the gate's send count: a block sent after a root's walk may be new to the box
}

type epochDebt struct {
	epoch uint64
	bytes int64
}

// add counts size sent in epoch e.
func (d *debt) add(e uint64, size int64) {
	d.bytes += size
	if n := len(d.epochs); n > 0 && d.epochs[n-1].epoch == e {
		d.epochs[n-1].bytes += size
		return
	}
	d.epochs = append(d.epochs, epochDebt{epoch: e, bytes: size})
}

// pay takes bytes off, oldest epoch first (a receipt pays the oldest debt;
// a refund, fromNewest, the block just counted).
func (d *debt) pay(bytes int64, fromNewest bool) {
	for bytes > 0 && len(d.epochs) > 0 {
		i := 0
		if fromNewest {
			i = len(d.epochs) - 1
		}
		take := min(bytes, d.epochs[i].bytes)
		d.epochs[i].bytes -= take
		d.bytes -= take
		bytes -= take
		if d.epochs[i].bytes == 0 {
			d.epochs = slices.Delete(d.epochs, i, i+1)
		}
	}
}

// age forgives the bytes sent in epochs no receipt can name any more
// (Params.Check refuses a receipt more than MaxSkew epochs old): the client
// can no longer pay them, however it tries. It reports whether it forgave
// any.
func (d *debt) age(now, maxSkew uint64) bool {
	i := 0
	for i < len(d.epochs) && d.epochs[i].epoch+maxSkew < now {
		d.bytes -= d.epochs[i].bytes
		i++
	}
	d.epochs = d.epochs[i:]
	return i > 0
}
