package heat

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

func sampleOrder(t testing.TB, boxes []party) *Order {
	o := &Order{Epoch: 100, Root: root(t, "hot"), Size: 5 << 20, Until: 106, Reason: ReasonHeat}
	for _, b := range boxes {
		o.Boxes = append(o.Boxes, b.ID)
	}
	slices.Sort(o.Boxes)
	return o
}

func signedOrder(t testing.TB, issuer party, boxes []party, edit func(*Order)) *Order {
	t.Helper()
	o := sampleOrder(t, boxes)
	if edit != nil {
		edit(o)
	}
	if err := o.Sign(testNetwork, issuer.Key); err != nil {
		t.Fatal(err)
	}
	return o
}

func members(ps ...party) func(peer.ID) bool {
	return func(id peer.ID) bool {
		return slices.ContainsFunc(ps, func(p party) bool { return p.ID == id })
	}
}

func TestOrderRoundTrip(t *testing.T) {
	issuer, boxes := newParty(t), newParties(t, 5)
	var many []party
	for range MaxOrderBoxes {
		many = append(many, newParty(t))
	}
	for name, o := range map[string]*Order{
		"full":      signedOrder(t, issuer, boxes, nil),
		"no boxes":  signedOrder(t, issuer, nil, func(o *Order) { o.Size = 0 }),
		"max boxes": signedOrder(t, issuer, many, func(o *Order) { o.Reason = ReasonPrewarm }),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := UnmarshalOrder(o.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, o) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, o)
			}
			if err := CheckOrder(got, testNetwork, members(issuer), o.Epoch, 0); err != nil {
				t.Fatalf("check: %v", err)
			}
		})
	}
	o := signedOrder(t, issuer, boxes, nil)
	for _, b := range boxes {
		if !o.Names(b.ID) {
			t.Errorf("order does not name its box %s", b.ID)
		}
	}
	if o.Names(issuer.ID) {
		t.Error("order names its issuer")
	}
}

func TestOrderForged(t *testing.T) {
	issuer, boxes, intruder := newParty(t), newParties(t, 3), newParty(t)
	for _, tc := range []struct {
		name string
		edit func(*Order)
	}{
		{"box added", func(o *Order) {
			o.Boxes = append(o.Boxes, intruder.ID)
			slices.Sort(o.Boxes)
		}},
		{"until extended", func(o *Order) { o.Until += 10 }},
		{"root swapped", func(o *Order) { o.Root = root(t, "other") }},
		{"reason altered", func(o *Order) { o.Reason = ReasonPrewarm }},
		{"issuer swapped", func(o *Order) { o.Issuer = intruder.ID }},
		{"unsigned", func(o *Order) { o.Sig = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := signedOrder(t, issuer, boxes, nil)
			tc.edit(o)
			d, err := UnmarshalOrder(o.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			// The intruder is a member here so that only the signature fails.
			err = CheckOrder(d, testNetwork, members(issuer, intruder), d.Epoch, 0)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("got %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestCheckOrder(t *testing.T) {
	issuer, outsider, boxes := newParty(t), newParty(t), newParties(t, 3)
	isMember := members(issuer)
	for _, tc := range []struct {
		name    string
		o       *Order
		network string
		member  func(peer.ID) bool
		now     uint64
		want    error
	}{
		{"valid", signedOrder(t, issuer, boxes, nil), testNetwork, isMember, 100, nil},
		{"valid within skew", signedOrder(t, issuer, boxes, nil), testNetwork, isMember, 102, nil},
		{"not a member", signedOrder(t, outsider, boxes, nil), testNetwork, isMember, 100, ErrNotCommittee},
		{"no committee", signedOrder(t, issuer, boxes, nil), testNetwork, nil, 100, ErrNotCommittee},
		{"wrong network", signedOrder(t, issuer, boxes, nil), "ore-main", isMember, 100, ErrWrongNetwork},
		{"stale", signedOrder(t, issuer, boxes, nil), testNetwork, isMember, 103, ErrStale},
		{"from the future", signedOrder(t, issuer, boxes, nil), testNetwork, isMember, 97, ErrStale},
		{"expired", signedOrder(t, issuer, boxes, func(o *Order) { o.Until = 101 }), testNetwork, isMember, 102, ErrStale},
		{"until before epoch", signedOrder(t, issuer, boxes, func(o *Order) { o.Until = 99 }), testNetwork, isMember, 99, ErrMalformed},
		{"heat order at its longest", signedOrder(t, issuer, boxes, func(o *Order) { o.Until = 100 + MaxHeatOrderEpochs }), testNetwork, isMember, 100, nil},
		{"heat order too long", signedOrder(t, issuer, boxes, func(o *Order) { o.Until = 100 + MaxHeatOrderEpochs + 1 }), testNetwork, isMember, 100, ErrTooLong},
		{"heat order for a million epochs", signedOrder(t, issuer, boxes, func(o *Order) { o.Until = 1_000_100 }), testNetwork, isMember, 100, ErrTooLong},
		{"pre-warm at its longest", signedOrder(t, issuer, boxes, func(o *Order) { o.Until, o.Reason = 100+MaxPrewarmOrderEpochs, ReasonPrewarm }), testNetwork, isMember, 100, nil},
		{"pre-warm too long", signedOrder(t, issuer, boxes, func(o *Order) { o.Until, o.Reason = 101+MaxPrewarmOrderEpochs, ReasonPrewarm }), testNetwork, isMember, 100, ErrTooLong},
		{"until at the end of time", signedOrder(t, issuer, boxes, func(o *Order) { o.Until = ^uint64(0) }), testNetwork, isMember, 100, ErrTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOrder(tc.o, tc.network, tc.member, tc.now, 2)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := CheckOrder(nil, testNetwork, isMember, 0, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil order: %v", err)
	}
}

func TestUnmarshalOrderRejects(t *testing.T) {
	issuer, boxes := newParty(t), newParties(t, 3)
	good := signedOrder(t, issuer, boxes, nil).Marshal()
	marshal := func(edit func(*Order)) []byte {
		o := sampleOrder(t, boxes)
		o.Network, o.Issuer = testNetwork, issuer.ID
		edit(o)
		return o.Marshal()
	}
	var many []peer.ID
	for range MaxOrderBoxes + 1 {
		many = append(many, newParty(t).ID)
	}
	slices.Sort(many)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"over the size limit", make([]byte, MaxOrderSize+1), ErrTooLarge},
		{"unknown version", append([]byte{0}, good[1:]...), ErrMalformed},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
		{"too many boxes", marshal(func(o *Order) { o.Boxes = many }), ErrMalformed},
		{"unsorted boxes", marshal(func(o *Order) { o.Boxes[0], o.Boxes[1] = o.Boxes[1], o.Boxes[0] }), ErrMalformed},
		{"repeated box", marshal(func(o *Order) { o.Boxes[1] = o.Boxes[0] }), ErrMalformed},
		{"bad box", marshal(func(o *Order) { o.Boxes[0] = "\x00" }), ErrMalformed},
		{"unknown reason", marshal(func(o *Order) { o.Reason = 3 }), ErrMalformed},
		{"no root", marshal(func(o *Order) { o.Root = cid.Undef }), ErrMalformed},
		{"no issuer", marshal(func(o *Order) { o.Issuer = "" }), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalOrder(tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignOrderRefuses(t *testing.T) {
	issuer, boxes := newParty(t), newParties(t, 3)
	o := sampleOrder(t, boxes)
	o.Boxes[0], o.Boxes[1] = o.Boxes[1], o.Boxes[0]
	if err := o.Sign(testNetwork, issuer.Key); !errors.Is(err, ErrMalformed) || o.Sig != nil {
		t.Errorf("unsorted boxes: %v", err)
	}
}

func FuzzUnmarshalOrder(f *testing.F) {
	issuer, boxes := newParty(f), newParties(f, 3)
	f.Add(signedOrder(f, issuer, boxes, nil).Marshal())
	f.Add(signedOrder(f, issuer, nil, nil).Marshal())
	f.Add([]byte{Version})
	f.Add([]byte{})
	isMember := members(issuer)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := UnmarshalOrder(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps neither ErrMalformed nor ErrTooLarge: %v", err)
			}
			return
		}
		out := o.Marshal()
		if !bytes.Equal(out, b) {
			t.Fatal("accepted a non-canonical encoding")
		}
		again, err := UnmarshalOrder(out)
		if err != nil || !reflect.DeepEqual(again, o) {
			t.Fatalf("re-decoding: %v", err)
		}
		_ = CheckOrder(o, o.Network, isMember, o.Epoch, 0)
		_ = o.Names(o.Issuer)
	})
}
