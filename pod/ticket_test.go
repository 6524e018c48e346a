package pod

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

func testTicket(t testing.TB, pub party, mutate func(*Ticket)) *Ticket {
	t.Helper()
	tk := &Ticket{Version: TicketVersion, Network: testParams.Network, Publisher: pub.id, Root: testRoot(t, "root"),
		Cap: 64 << 20, Expires: 120, Nonce: 7}
	if mutate != nil {
		mutate(tk)
	}
	if err := tk.Sign(pub.key); err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestTicketRoundTrip(t *testing.T) {
	pub, cli := newParty(t), newParty(t)
	for _, tk := range []*Ticket{
		testTicket(t, pub, nil),
		testTicket(t, pub, func(tk *Ticket) { tk.Client = cli.id }),
		testTicket(t, pub, func(tk *Ticket) { tk.Root = cid.Undef }), // every root of the publisher
	} {
		got, err := UnmarshalTicket(tk.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if got.ID() != tk.ID() || !bytes.Equal(got.Marshal(), tk.Marshal()) || got.Root.Defined() != tk.Root.Defined() || got.Client != tk.Client {
			t.Fatalf("round trip changed the ticket: %+v vs %+v", got, tk)
		}
		if err := got.Verify(); err != nil {
			t.Fatal(err)
		}
		if err := testParams.CheckTicket(got); err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseTicket(tk.String())
		if err != nil || parsed.ID() != tk.ID() {
			t.Fatalf("URL form: %v", err)
		}
	}
}

// A ticket's ID names its terms: change one and it is another ticket,
// whose signature does not verify.
func TestTicketForgeries(t *testing.T) {
	pub, other := newParty(t), newParty(t)
	tk := testTicket(t, pub, nil)
	for name, mutate := range map[string]func(*Ticket){
		"a larger cap":      func(f *Ticket) { f.Cap *= 2 },
		"a later expiry":    func(f *Ticket) { f.Expires++ },
		"another root":      func(f *Ticket) { f.Root = testRoot(t, "other") },
		"every root":        func(f *Ticket) { f.Root = cid.Undef },
		"another publisher": func(f *Ticket) { f.Publisher = other.id },
		"no signature":      func(f *Ticket) { f.Sig = nil },
	} {
		f := *tk
		mutate(&f)
		if f.Sig != nil && f.ID() == tk.ID() {
			t.Errorf("%s: same ID", name)
		}
		if err := f.Verify(); !errors.Is(err, ErrBadTicket) {
			t.Errorf("%s: verified (%v)", name, err)
		}
	}
	if err := tk.Sign(other.key); err == nil {
		t.Error("a ticket was signed with another key than its publisher's")
	}
	for name, c := range map[string]*Ticket{
		"other network": testTicket(t, pub, func(f *Ticket) { f.Network = "elsewhere" }),
		"zero cap":      testTicket(t, pub, func(f *Ticket) { f.Cap = 0 }),
		"self client":   testTicket(t, pub, func(f *Ticket) { f.Client = pub.id }),
	} {
		if err := testParams.CheckTicket(c); !errors.Is(err, ErrBadTicket) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTicketDecodeRejects(t *testing.T) {
	good := testTicket(t, newParty(t), nil).Marshal()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"version":   append([]byte{2}, good[1:]...),
		"oversized": make([]byte, MaxTicketEncoded+1),
	} {
		if _, err := UnmarshalTicket(b); !errors.Is(err, ErrBadTicket) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseTicket(strings.Repeat("A", 2*MaxTicketEncoded)); !errors.Is(err, ErrBadTicket) {
		t.Errorf("an overlong URL ticket: %v", err)
	}
}

func TestTicketCovers(t *testing.T) {
	pub, srv, cli, other := newParty(t), newParty(t), newParty(t), newParty(t)
	r := signed(t, srv, cli, nil) // root "root", epoch 100
	for _, c := range []struct {
		name   string
		mutate func(*Ticket)
		want   bool
	}{
		{"its root, a bearer", nil, true},
		{"every root", func(f *Ticket) { f.Root = cid.Undef }, true},
		{"its client", func(f *Ticket) { f.Client = cli.id }, true},
		{"another client", func(f *Ticket) { f.Client = other.id }, false},
		{"another root", func(f *Ticket) { f.Root = testRoot(t, "other") }, false},
		{"expires in the receipt's epoch", func(f *Ticket) { f.Expires = 100 }, true},
		{"expired before it", func(f *Ticket) { f.Expires = 99 }, false},
	} {
		if got := testTicket(t, pub, c.mutate).Covers(r); got != c.want {
			t.Errorf("%s: covers %v, want %v", c.name, got, c.want)
		}
	}
}

// A ticketed receipt: both signatures cover the ticket's ID; a network
// whose rules know no tickets refuses the format; a receipt of the first
// format cannot name one.
func TestTicketedReceipt(t *testing.T) {
	srv, cli, pub := newParty(t), newParty(t), newParty(t)
	tk := testTicket(t, pub, nil)
	r := signed(t, srv, cli, func(r *Receipt) { r.Version, r.Ticket = VersionTicket, tk.ID() })
	got, err := Unmarshal(r.Marshal())
	if err != nil || got.Ticket != tk.ID() {
		t.Fatalf("round trip: %v, ticket %x", err, got.Ticket)
	}
	withTickets := testParams
	withTickets.MaxReceiptVersion = VersionTicket
	if err := withTickets.Check(got, 100, true); err != nil {
		t.Fatal(err)
	}
	if err := testParams.Check(got, 100, true); ReasonOf(err) != ReasonUnknownVersion {
		t.Fatalf("a network without tickets: %v", err)
	}
	forged := *got
	forged.Ticket[0] ^= 1
	if err := withTickets.Check(&forged, 100, true); ReasonOf(err) != ReasonBadSig {
		t.Fatalf("a receipt moved to another ticket: %v", err)
	}
	old := signed(t, srv, cli, nil)
	old.Ticket = tk.ID()
	if err := withTickets.CheckIn(old, withTickets.Around(100)); ReasonOf(err) != ReasonMalformed {
		t.Fatalf("a first-format receipt naming a ticket: %v", err)
	}
}

func FuzzUnmarshalTicket(f *testing.F) {
	pub := newParty(f)
	f.Add(testTicket(f, pub, nil).Marshal())
	f.Add(testTicket(f, pub, func(tk *Ticket) { tk.Root, tk.Client = cid.Undef, newParty(f).id }).Marshal())
	f.Add([]byte{TicketVersion})
	hot := newParty(f)
	delegated := &Ticket{Version: TicketVersionDelegated, Network: testParams.Network, Publisher: pub.id, Cap: 1, Expires: 2, Signer: hot.id}
	if err := delegated.Sign(hot.key); err != nil {
		f.Fatal(err)
	}
	f.Add(delegated.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := UnmarshalTicket(b)
		if err != nil {
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("error without ErrBadTicket: %v", err)
			}
			return
		}
		if !bytes.Equal(tk.Marshal(), b) {
			t.Fatal("accepted a non-canonical encoding")
		}
		_ = tk.Verify()
	})
}

// A delegated ticket is signed by its Signer, names it in its ID, and is
// refused if it names its publisher as signer, is signed by another key,
// or tickets its signer.
func TestDelegatedTicket(t *testing.T) {
	pub, hot, other := newParty(t), newParty(t), newParty(t)
	mk := func(mutate func(*Ticket)) *Ticket {
		tk := &Ticket{Version: TicketVersionDelegated, Network: testParams.Network, Publisher: pub.id, Root: testRoot(t, "root"),
			Cap: 64 << 20, Expires: 120, Nonce: 7, Signer: hot.id}
		if mutate != nil {
			mutate(tk)
		}
		return tk
	}
	tk := mk(nil)
	if err := tk.Sign(pub.key); err == nil {
		t.Fatal("the publisher's key signed a ticket that names another signer")
	}
	if err := tk.Sign(hot.key); err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalTicket(tk.Marshal())
	if err != nil || got.Signer != hot.id || got.SignedBy() != hot.id || got.Verify() != nil || testParams.CheckTicket(got) != nil {
		t.Fatalf("a delegated ticket does not round-trip and verify: %v", err)
	}
	if plain := testTicket(t, pub, nil); plain.ID() == tk.ID() {
		t.Fatal("naming a signer does not change the ticket's ID")
	}
	moved := *got
	moved.Signer = other.id // the signature is the delegate's, not other's
	if moved.Verify() == nil {
		t.Fatal("a ticket verified for a signer that did not sign it")
	}
	for name, tk := range map[string]*Ticket{
		"its publisher as signer": mk(func(tk *Ticket) { tk.Signer = pub.id }),
		"no signer":               mk(func(tk *Ticket) { tk.Signer = "" }),
		"ticketing its signer":    mk(func(tk *Ticket) { tk.Client = hot.id }),
	} {
		if err := testParams.CheckTicket(tk); !errors.Is(err, ErrBadTicket) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
