package ledger

import (
	"bytes"
	"errors"
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

// Authenticate checks each kind by its own authority.
func TestAuthenticate(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 1000)
	pub := f.pubs[0]
	dep := f.signed(t, f.s, NewDeposit(pub.ID, 0, 5))
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: pub.ID, Cap: 1, Expires: 9}
	if err := tk.Sign(pub.Key); err != nil {
		t.Fatal(err)
	}
	rc := NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], testRoot(t, "r"), 1, 1<<20, nil))
	for name, tx := range map[string]Tx{"deposit": dep, "ticket": NewTicketTx(tk), "receipt": rc} {
		if err := tx.Authenticate(testNetwork); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if name != "receipt" {
			if err := tx.Authenticate("elsewhere"); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s on another network: %v", name, err)
			}
		}
	}
	forged := *tk
	forged.Cap++
	ftx := NewTicketTx(&forged)
	if err := ftx.Authenticate(testNetwork); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a forged ticket: %v", err)
	}
	bad := rc
	r := *rc.Receipt
	r.Bytes++
	bad.Receipt = &r
	if err := bad.Authenticate(testNetwork); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a forged receipt: %v", err)
	}
}
