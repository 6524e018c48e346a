package pod

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

type party struct {
	key crypto.PrivKey
	id  peer.ID
}

func newParty(t testing.TB) party {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return party{k, id}
}

func testRoot(t testing.TB, s string) cid.Cid {
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.DagProtobuf, h)
}

var testParams = Params{Network: "ore-test", GenesisTime: time.Unix(1_700_000_000, 0), EpochLength: 10 * time.Second, MaxSkew: 3}

// signed returns a receipt signed by both sides, after mutate changed its body.
func signed(t testing.TB, srv, cli party, mutate func(*Receipt)) *Receipt {
	r := &Receipt{Version: Version, Network: testParams.Network, Epoch: 100, Server: srv.id, Client: cli.id,
		Root: testRoot(t, "root"), Seq: 1, Bytes: 1 << 20, Blocks: 4}
	r.Digest = Chain(r.Digest, r.Root)
	if mutate != nil {
		mutate(r)
	}
	if err := r.SignClient(cli.key); err != nil {
		t.Fatal(err)
	}
	if err := r.SignServer(srv.key); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	r := signed(t, srv, cli, nil)
	b := r.Marshal()
	if len(b) > MaxEncoded {
		t.Fatalf("encoded %d bytes > limit", len(b))
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), b) || got.Server != r.Server || got.Client != r.Client || !got.Root.Equals(r.Root) || got.Digest != r.Digest {
		t.Fatalf("round trip changed the receipt: %+v vs %+v", got, r)
	}
	if err := testParams.Check(got, 100, true); err != nil {
		t.Fatal(err)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	good := signed(t, srv, cli, nil).Marshal()
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"oversized": make([]byte, MaxEncoded+1),
		"version":   append([]byte{3}, good[1:]...),
	}
	// A padded varint (non-canonical) for the epoch: 100 as 0xe4 0x80 0x00.
	netLen := int(good[1])
	epochAt := 2 + netLen
	padded := append(append(append([]byte(nil), good[:epochAt]...), 0xe4, 0x80, 0x00), good[epochAt+1:]...)
	cases["non-canonical varint"] = padded
	for name, b := range cases {
		if _, err := Unmarshal(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if ReasonOf(err) == "" {
			t.Errorf("%s: error %v has no reason", name, err)
		}
	}
	if _, err := Unmarshal(append([]byte{3}, good[1:]...)); ReasonOf(err) != ReasonUnknownVersion {
		t.Errorf("unknown version: reason %q", ReasonOf(err))
	}
}

func TestRules(t *testing.T) {
	srv, cli, other := newParty(t), newParty(t), newParty(t)
	cases := []struct {
		name string
		r    func() *Receipt
		want Reason
	}{
		{"wrong network", func() *Receipt { return signed(t, srv, cli, func(r *Receipt) { r.Network = "other" }) }, ReasonWrongNetwork},
		{"epoch too old", func() *Receipt { return signed(t, srv, cli, func(r *Receipt) { r.Epoch = 96 }) }, ReasonEpochOutOfRange},
		{"epoch in the future", func() *Receipt { return signed(t, srv, cli, func(r *Receipt) { r.Epoch = 104 }) }, ReasonEpochOutOfRange},
		{"self dealing", func() *Receipt { return signed(t, srv, srv, nil) }, ReasonSelfDealing},
		{"bytes over blocks", func() *Receipt {
			return signed(t, srv, cli, func(r *Receipt) { r.Blocks = 1; r.Bytes = MaxBlockSize + 1 })
		}, ReasonOversized},
		{"huge bytes", func() *Receipt {
			return signed(t, srv, cli, func(r *Receipt) { r.Blocks = ^uint64(0); r.Bytes = ^uint64(0) })
		}, ReasonOversized},
		{"unknown version", func() *Receipt { return signed(t, srv, cli, func(r *Receipt) { r.Version = 9 }) }, ReasonUnknownVersion},
		{"missing server signature", func() *Receipt { r := signed(t, srv, cli, nil); r.ServerSig = nil; return r }, ReasonMissingSig},
		{"missing client signature", func() *Receipt { r := signed(t, srv, cli, nil); r.ClientSig = nil; return r }, ReasonMissingSig},
		{"forged bytes after signing", func() *Receipt { r := signed(t, srv, cli, nil); r.Bytes *= 2; return r }, ReasonBadSig},
		{"server signature by someone else", func() *Receipt {
			r := signed(t, srv, cli, nil)
			sig, _ := other.key.Sign(r.ServerPayload())
			r.ServerSig = sig
			return r
		}, ReasonBadSig},
		{"client signature by the server", func() *Receipt {
			r := signed(t, srv, cli, nil)
			sig, _ := srv.key.Sign(r.ClientPayload())
			r.ClientSig = sig
			_ = r.SignServer(srv.key)
			return r
		}, ReasonBadSig},
		{"client signature replayed as server's", func() *Receipt {
			r := signed(t, srv, cli, nil)
			r.ServerSig = r.ClientSig
			return r
		}, ReasonBadSig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier(testParams)
			err := v.Verify(tc.r(), 100)
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.want)
			}
			if v.Stats().Rejected[tc.want] != 1 {
				t.Fatalf("rejection not counted: %v", v.Stats())
			}
		})
	}
}

func TestSequenceMustRise(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	v := NewVerifier(testParams)
	r1 := signed(t, srv, cli, nil)
	if err := v.Verify(r1, 100); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(r1, 100); ReasonOf(err) != ReasonStaleSeq {
		t.Fatalf("replay: %v", err)
	}
	r2 := signed(t, srv, cli, func(r *Receipt) { r.Seq = 2; r.Bytes = 2 << 20; r.Blocks = 8 })
	if err := v.Verify(r2, 100); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(r1, 100); ReasonOf(err) != ReasonStaleSeq {
		t.Fatalf("older receipt after newer: %v", err)
	}
	// Another epoch is another sequence.
	r3 := signed(t, srv, cli, func(r *Receipt) { r.Epoch = 101 })
	if err := v.Verify(r3, 100); err != nil {
		t.Fatal(err)
	}
	st := v.Stats()
	if st.Accepted != 3 || st.Rejected[ReasonStaleSeq] != 2 {
		t.Fatalf("stats %v", st)
	}
}

func TestSignWithWrongKey(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	r := &Receipt{Version: Version, Network: "n", Server: srv.id, Client: cli.id, Root: testRoot(t, "x"), Blocks: 1}
	if err := r.SignClient(srv.key); err == nil {
		t.Fatal("server key signed as client")
	}
	if err := r.SignServer(srv.key); err == nil {
		t.Fatal("countersigned without a client signature")
	}
}

func TestEpochs(t *testing.T) {
	p := testParams
	if p.EpochAt(p.GenesisTime.Add(-time.Hour)) != 0 || p.EpochAt(p.GenesisTime.Add(25*time.Second)) != 2 {
		t.Fatal("epoch arithmetic")
	}
	if err := (Params{Network: "x", GenesisTime: time.Now(), EpochLength: time.Millisecond}).Validate(); err == nil {
		t.Fatal("1ms epochs accepted")
	}
}

func TestWire(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	r := signed(t, srv, cli, nil)
	var buf bytes.Buffer
	if err := WriteRequest(&buf, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequest(&buf)
	if err != nil || got.Seq != r.Seq {
		t.Fatalf("request: %v", err)
	}
	buf.Reset()
	_ = WriteResponse(&buf, nil, errors.New("no"))
	if _, err := ReadResponse(&buf); !errors.Is(err, ErrRefused) {
		t.Fatalf("refusal: %v", err)
	}
	buf.Reset()
	_ = WriteResponse(&buf, r, nil)
	if got, err := ReadResponse(&buf); err != nil || got.VerifyServer() != nil {
		t.Fatalf("response: %v", err)
	}
	// A frame that claims to be huge is refused before allocation.
	if _, err := ReadRequest(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge frame: %v", err)
	}
}

// A refusal carries its reason code on the wire, and a refusal from a
// build before codes (text alone) still reads.
func TestRefusalReasonOnTheWire(t *testing.T) {
	var buf bytes.Buffer
	_ = WriteResponse(&buf, nil, reject(ReasonStaleSeq, "sequence %d does not supersede %d", 3, 4))
	_, err := ReadResponse(&buf)
	if !errors.Is(err, ErrRefused) || ReasonOf(err) != ReasonStaleSeq {
		t.Fatalf("coded refusal read as %v (reason %q)", err, ReasonOf(err))
	}
	if !strings.Contains(err.Error(), "does not supersede") {
		t.Fatalf("the refusal's text is lost: %v", err)
	}
	// The text of a refusal whose reason merely mentions a code is not a
	// code: only the code the server sent counts.
	buf.Reset()
	_ = WriteResponse(&buf, nil, errors.New("disk full, not stale_sequence"))
	if _, err := ReadResponse(&buf); !errors.Is(err, ErrRefused) || ReasonOf(err) != "" {
		t.Fatalf("uncoded refusal read as %v (reason %q)", err, ReasonOf(err))
	}
	buf.Reset()
	_ = writeFrame(&buf, []byte("pod: receipt rejected (stale_sequence): an old server")) // as a build before codes wrote it
	old := append([]byte{statusRejected}, buf.Bytes()...)
	if _, err := ReadResponse(bytes.NewReader(old)); !errors.Is(err, ErrRefused) || ReasonOf(err) != "" {
		t.Fatalf("a refusal without a code read as %v (reason %q)", err, ReasonOf(err))
	}
	buf.Reset()
	_ = writeFrame(&buf, []byte{reasonMark, 200, 'x'})
	if _, err := ReadResponse(bytes.NewReader(append([]byte{statusRejected}, buf.Bytes()...))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a code longer than its frame read as %v", err)
	}
}

func FuzzReadResponse(f *testing.F) {
	srv, cli := newParty(f), newParty(f)
	var ok, refused bytes.Buffer
	_ = WriteResponse(&ok, signed(f, srv, cli, nil), nil)
	_ = WriteResponse(&refused, nil, reject(ReasonOversized, "too big"))
	f.Add(ok.Bytes())
	f.Add(refused.Bytes())
	f.Add([]byte{statusRejected, 3, reasonMark, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadResponse(bytes.NewReader(b))
		if err == nil && r == nil {
			t.Fatal("no receipt and no error")
		}
		var rf *RefusedError
		if errors.As(err, &rf) && len(rf.Reason) > maxReason {
			t.Fatalf("a reason code of %d bytes", len(rf.Reason))
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	srv, cli := newParty(f), newParty(f)
	f.Add(signed(f, srv, cli, nil).Marshal())
	f.Add(signed(f, srv, cli, func(r *Receipt) { r.Version, r.Ticket = VersionTicket, [32]byte{1} }).Marshal())
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unmarshal(b)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("accepted a non-canonical encoding")
		}
		_ = testParams.Check(r, r.Epoch, true)
	})
}

func TestVerifyReceipts(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	// More than two chunks, so the parallel path runs; three bad receipts
	// of different kinds at both ends and in the middle.
	rs := make([]*Receipt, 2*verifyChunk+7)
	for i := range rs {
		rs[i] = signed(t, srv, cli, func(r *Receipt) { r.Seq = uint64(i + 1) })
	}
	rs[0].Bytes++                     // breaks both signatures
	rs[verifyChunk+3].ServerSig = nil // missing
	rs[len(rs)-1].ServerSig[5] ^= 1   // breaks the server's only
	errs := VerifyReceipts(rs)
	for i, err := range errs {
		var want Reason
		switch i {
		case 0, len(rs) - 1:
			want = ReasonBadSig
		case verifyChunk + 3:
			want = ReasonMissingSig
		}
		if got := ReasonOf(err); got != want {
			t.Fatalf("receipt %d: reason %q (%v), want %q", i, got, err, want)
		}
	}
	// A valid receipt is remembered; the same body with a forged
	// signature is not taken for it.
	ok := signed(t, srv, cli, func(r *Receipt) { r.Seq = 1000 })
	if err := ok.VerifySigs(); err != nil {
		t.Fatal(err)
	}
	forged := *ok
	forged.ServerSig = append([]byte(nil), ok.ServerSig...)
	forged.ServerSig[0] ^= 1
	if err := forged.VerifySigs(); ReasonOf(err) != ReasonBadSig {
		t.Fatalf("forged copy of a verified receipt: %v", err)
	}
	if err := ok.VerifySigs(); err != nil {
		t.Fatalf("verified receipt again: %v", err)
	}
}

// A signature's validity must not depend on whether it is checked alone
// or in a batch: the same verdicts come from VerifyClient/VerifyServer.
func TestVerifyReceiptsAgreesWithOneByOne(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	for i := range 20 {
		r := signed(t, srv, cli, func(r *Receipt) { r.Seq = uint64(5000 + i) })
		if i%3 == 0 {
			r.ClientSig[i] ^= 1
		}
		if i%4 == 0 {
			r.ServerSig[i] ^= 1
		}
		one := r.VerifyClient()
		if one == nil {
			one = r.VerifyServer()
		}
		batch := VerifyReceipts([]*Receipt{r})[0]
		if (one == nil) != (batch == nil) {
			t.Fatalf("receipt %d: one by one %v, batch %v", i, one, batch)
		}
	}
}

func TestCheckUnsignedLeavesSignaturesOut(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	r := signed(t, srv, cli, nil)
	r.Bytes++ // breaks both signatures, no other rule
	if err := testParams.CheckUnsigned(r, 100); err != nil {
		t.Fatalf("CheckUnsigned looked at signatures: %v", err)
	}
	if err := testParams.Check(r, 100, true); ReasonOf(err) != ReasonBadSig {
		t.Fatalf("Check: %v", err)
	}
}

// The windows at the ends of the epoch range: a window never wraps around.
func TestWindowsSaturate(t *testing.T) {
	p := testParams // MaxSkew 3
	max := ^uint64(0)
	cases := []struct {
		name string
		got  Window
		want Window
	}{
		{"around 0", p.Around(0), Window{0, 3}},
		{"around 2", p.Around(2), Window{0, 5}},
		{"around 100", p.Around(100), Window{97, 103}},
		{"around the last epoch", p.Around(max - 1), Window{max - 4, max}},
		{"block 0", p.InBlock(0), Window{0, 0}},
		{"block 100", p.InBlock(100), Window{97, 100}},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, c.want)
		}
	}
	srv, cli := newParty(t), newParty(t)
	for _, e := range []uint64{96, 101, max} {
		r := signed(t, srv, cli, func(r *Receipt) { r.Epoch = e })
		if err := p.CheckIn(r, p.InBlock(100)); ReasonOf(err) != ReasonEpochOutOfRange {
			t.Errorf("epoch %d in a block of epoch 100: %v, want %s", e, err, ReasonEpochOutOfRange)
		}
	}
	if err := p.CheckIn(signed(t, srv, cli, func(r *Receipt) { r.Epoch = 97 }), p.InBlock(100)); err != nil {
		t.Errorf("epoch 97 in a block of epoch 100: %v", err)
	}
}

func TestSupersedes(t *testing.T) {
	srv, cli := newParty(t), newParty(t)
	old := signed(t, srv, cli, func(r *Receipt) { r.Seq, r.Bytes, r.Blocks = 5, 4<<20, 4 })
	for _, c := range []struct {
		name             string
		seq, bytes, blks uint64
		want             bool
	}{
		{"more of everything", 6, 5 << 20, 5, true},
		{"a later sequence, nothing more", 6, 4 << 20, 4, true},
		{"the same sequence", 5, 5 << 20, 5, false},
		{"an earlier sequence", 4, 5 << 20, 5, false},
		{"fewer bytes", 6, 3 << 20, 5, false},
		{"fewer blocks", 6, 5 << 20, 3, false},
	} {
		r := signed(t, srv, cli, func(r *Receipt) { r.Seq, r.Bytes, r.Blocks = c.seq, c.bytes, c.blks })
		if got := r.Supersedes(old); got != c.want {
			t.Errorf("%s: supersedes %v, want %v", c.name, got, c.want)
		}
	}
}
