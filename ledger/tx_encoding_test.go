package ledger

import (
	"bytes"
	"testing"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// TestReceiptTxEncoding: a receipt transaction's encoding puts the
// receipt's bytes after their length, whether that length takes one
// uvarint byte (a receipt without signatures can be that short) or two.
func TestReceiptTxEncoding(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 1000)
	r := receipt(t, f.srvs[0], f.clis[0], testRoot(t, "r"), 1, GiB, nil)
	short := *r
	short.ClientSig, short.ServerSig, short.Network, short.Server, short.Client = nil, nil, "n", "", ""
	for name, r := range map[string]*pod.Receipt{"signed": r, "short": &short} {
		tx := NewReceiptTx(r)
		want := wire.AppendBytes([]byte{Version, byte(KindReceipt)}, r.Marshal())
		if got := tx.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("%s receipt (%d bytes): encoded as %x, want %x", name, len(r.Marshal()), got, want)
		}
	}
	if len(short.Marshal()) >= 128 || len(r.Marshal()) < 128 {
		t.Fatalf("the cases do not cover both length sizes: %d and %d bytes", len(short.Marshal()), len(r.Marshal()))
	}
}
