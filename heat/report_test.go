package heat

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func sampleReport(t testing.TB) *Report {
	return &Report{
		Epoch: 42,
		Quota: 10 << 30,
		Used:  3 << 30,
		Heat: []RootHeat{
			{Root: root(t, "hot"), Requests: 90, Bytes: 9 << 20},
			{Root: root(t, "warm"), Requests: 12, Bytes: 1 << 20},
		},
		Held: []Holding{{Root: root(t, "hot"), Size: 5 << 20}, {Root: root(t, "other"), Size: 1}},
		Orders: []OrderStatus{
			{Root: root(t, "hot"), State: OrderHeld},
			{Root: root(t, "big"), State: OrderDeclined, Reason: "quota full"},
		},
	}
}

func signedReport(t testing.TB, p party, edit func(*Report)) *Report {
	t.Helper()
	r := sampleReport(t)
	if edit != nil {
		edit(r)
	}
	if err := r.Sign(testNetwork, p.Key); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReportRoundTrip(t *testing.T) {
	p := newParty(t)
	for name, edit := range map[string]func(*Report){
		"full":  nil,
		"empty": func(r *Report) { *r = Report{Epoch: 1} },
		"limits": func(r *Report) {
			r.Heat, r.Held, r.Orders = nil, nil, nil
			for i := range MaxHeat {
				r.Heat = append(r.Heat, RootHeat{Root: root(t, i), Requests: math.MaxUint64, Bytes: math.MaxUint64})
			}
			for i := range MaxHeld {
				r.Held = append(r.Held, Holding{Root: root(t, i), Size: math.MaxUint64})
			}
			for i := range MaxOrders {
				r.Orders = append(r.Orders, OrderStatus{Root: root(t, i), State: OrderFailed, Reason: strings.Repeat("x", MaxStatusReason)})
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := signedReport(t, p, edit)
			if r.Reporter != p.ID || r.Network != testNetwork {
				t.Fatalf("Sign set reporter %s, network %q", r.Reporter, r.Network)
			}
			b := r.Marshal()
			got, err := UnmarshalReport(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
			}
			if err := CheckReport(got, testNetwork, r.Epoch, 0); err != nil {
				t.Fatalf("check: %v", err)
			}
		})
	}
}

// oldReport is a report signed by a build before Reach (version 1; key
// from the seed 1..32, network ore-test, epoch 7, one root in each list).
const oldReport = "01086f72652d746573742600240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664078080808004808040012401551220cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4098407012401551220cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd48020012401551220cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4020040c9f78c76b5ae64b2525ed2296ce88f5e658a6a83e38093c9a3d7e0c75db4f2d6ff2e15dbe7010fded4f6903d132a18aec6d730bbe191f9bbf049b72d9a2fa008"

// TestReportReach: a report that says its reporter's reach is version 2
// and signs the reach; one that does not is byte for byte what builds
// before Reach made, and their reports still decode and verify.
func TestReportReach(t *testing.T) {
	p := newParty(t)
	for _, reach := range []Reach{ReachUnknown, ReachDirect, ReachNAT, ReachSymmetric} {
		r := signedReport(t, p, func(r *Report) { r.Reach = reach })
		b := r.Marshal()
		want := byte(ReportVersionReach)
		if reach == ReachUnknown {
			want = Version
		}
		if b[0] != want {
			t.Errorf("reach %s encoded as version %d, want %d", reach, b[0], want)
		}
		got, err := UnmarshalReport(b)
		if err != nil {
			t.Fatalf("reach %s: %v", reach, err)
		}
		if got.Reach != reach || CheckReport(got, testNetwork, r.Epoch, 0) != nil {
			t.Errorf("reach %s decoded as %s", reach, got.Reach)
		}
	}
	// Stripping the reach (a relay downgrading the report to version 1)
	// breaks the signature.
	r := signedReport(t, p, func(r *Report) { r.Reach = ReachSymmetric })
	r.Reach = ReachUnknown
	d, err := UnmarshalReport(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckReport(d, testNetwork, d.Epoch, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("reach stripped: %v, want ErrBadSignature", err)
	}

	old, err := hex.DecodeString(oldReport)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalReport(old)
	if err != nil {
		t.Fatalf("a report of a build before Reach: %v", err)
	}
	if got.Reach != ReachUnknown || got.Epoch != 7 || len(got.Heat) != 1 || len(got.Held) != 1 || len(got.Orders) != 1 {
		t.Fatalf("old report decoded as %+v", got)
	}
	if err := CheckReport(got, testNetwork, 7, 0); err != nil {
		t.Fatalf("old report: %v", err)
	}
}

func TestReportForged(t *testing.T) {
	p, q := newParty(t), newParty(t)
	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	secpID, err := peer.IDFromPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	other := signedReport(t, q, nil)
	for _, tc := range []struct {
		name string
		edit func(*Report)
	}{
		{"epoch altered", func(r *Report) { r.Epoch++ }},
		{"used altered", func(r *Report) { r.Used = 0 }},
		{"heat altered", func(r *Report) { r.Heat[0].Requests *= 10 }},
		{"holding added", func(r *Report) { r.Held = append(r.Held, Holding{Root: root(t, "x"), Size: 1}) }},
		{"order state altered", func(r *Report) { r.Orders[1].State = OrderHeld }},
		{"reach altered", func(r *Report) { r.Reach = ReachDirect }},
		{"network altered", func(r *Report) { r.Network = "other" }},
		{"reporter swapped", func(r *Report) { r.Reporter = q.ID }},
		{"signature of another report", func(r *Report) { r.Sig = other.Sig }},
		{"unsigned", func(r *Report) { r.Sig = nil }},
		{"reporter without Ed25519 key", func(r *Report) {
			r.Reporter = secpID
			sig, err := secp.Sign(r.SigPayload())
			if err != nil {
				t.Fatal(err)
			}
			r.Sig = sig
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := signedReport(t, p, nil)
			tc.edit(r)
			err := r.Verify(r.Network)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify: %v, want ErrBadSignature", err)
			}
			// Through the wire too.
			if d, err := UnmarshalReport(r.Marshal()); err == nil {
				if err := CheckReport(d, d.Network, d.Epoch, 0); !errors.Is(err, ErrBadSignature) {
					t.Fatalf("CheckReport: %v, want ErrBadSignature", err)
				}
			}
		})
	}
	if err := new(Report).Sign(testNetwork, secp); err == nil {
		t.Error("signed a report with a secp256k1 key")
	}
}

func TestCheckReport(t *testing.T) {
	p := newParty(t)
	r := signedReport(t, p, nil) // epoch 42
	for _, tc := range []struct {
		name    string
		network string
		now     uint64
		skew    uint64
		want    error
	}{
		{"current", testNetwork, 42, 0, nil},
		{"within skew behind", testNetwork, 44, 2, nil},
		{"within skew ahead", testNetwork, 40, 2, nil},
		{"stale", testNetwork, 45, 2, ErrStale},
		{"from the future", testNetwork, 39, 2, ErrStale},
		{"wrong network", "ore-main", 42, 0, ErrWrongNetwork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReport(r, tc.network, tc.now, tc.skew)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := CheckReport(nil, testNetwork, 0, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil report: %v", err)
	}
}

func TestUnmarshalReportRejects(t *testing.T) {
	p := newParty(t)
	good := signedReport(t, p, nil).Marshal()
	// marshal encodes r as it is, unchecked, signed or not.
	marshal := func(edit func(*Report)) []byte {
		r := sampleReport(t)
		r.Network, r.Reporter = testNetwork, p.ID
		edit(r)
		return r.Marshal()
	}
	var long []RootHeat
	for i := range MaxHeat + 1 {
		long = append(long, RootHeat{Root: root(t, i), Requests: 1})
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"over the size limit", make([]byte, MaxReportSize+1), ErrTooLarge},
		{"unknown version", append([]byte{ReportVersionCompute + 1}, good[1:]...), ErrMalformed},
		{"version 3 without the compute fields", append([]byte{ReportVersionCompute}, good[1:]...), ErrMalformed},
		{"version 2 without the reach field", append([]byte{ReportVersionReach}, good[1:]...), ErrMalformed},
		{"unknown reach", marshal(func(r *Report) { r.Reach = ReachSymmetric + 1 }), ErrMalformed},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"over-long heat list", marshal(func(r *Report) { r.Heat = long }), ErrMalformed},
		{"duplicate heat root", marshal(func(r *Report) { r.Heat = append(r.Heat, r.Heat[0]) }), ErrMalformed},
		{"duplicate held root", marshal(func(r *Report) { r.Held = append(r.Held, r.Held[1]) }), ErrMalformed},
		{"duplicate order root", marshal(func(r *Report) { r.Orders = append(r.Orders, r.Orders[0]) }), ErrMalformed},
		{"unknown state", marshal(func(r *Report) { r.Orders[0].State = 5 }), ErrMalformed},
		{"zero state", marshal(func(r *Report) { r.Orders[0].State = 0 }), ErrMalformed},
		{"long reason", marshal(func(r *Report) { r.Orders[0].Reason = strings.Repeat("x", MaxStatusReason+1) }), ErrMalformed},
		{"no reporter", marshal(func(r *Report) { r.Reporter = "" }), ErrMalformed},
		{"bad reporter", marshal(func(r *Report) { r.Reporter = "garbage" }), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalReport(tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("bad CID", func(t *testing.T) {
		// The first heat root follows the fixed fields; spoil its first byte.
		r := sampleReport(t)
		r.Network, r.Reporter = testNetwork, p.ID
		b := r.Marshal()
		at := bytes.Index(b, r.Heat[0].Root.Bytes())
		b[at] = 0xff
		if _, err := UnmarshalReport(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("padded varint", func(t *testing.T) {
		r := &Report{Network: testNetwork, Reporter: p.ID, Epoch: 1}
		b := r.Marshal()
		at := 1 + 1 + len(testNetwork) + 1 + len(p.ID) // version, network, reporter
		if b[at] != 1 {
			t.Fatalf("layout: epoch byte is %d", b[at])
		}
		b = append(b[:at:at], append([]byte{0x81, 0x00}, b[at+1:]...)...)
		if _, err := UnmarshalReport(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestSignReportRefuses(t *testing.T) {
	p := newParty(t)
	r := sampleReport(t)
	r.Held = append(r.Held, r.Held[0])
	if err := r.Sign(testNetwork, p.Key); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate holding: %v", err)
	}
	// The largest CIDs in every list overflow MaxReportSize.
	r = &Report{}
	for i := range MaxHeat {
		r.Heat = append(r.Heat, RootHeat{Root: longRoot(t, i), Requests: 1})
	}
	for i := range MaxHeld {
		r.Held = append(r.Held, Holding{Root: longRoot(t, i), Size: 1})
	}
	err := r.Sign(testNetwork, p.Key)
	if !errors.Is(err, ErrTooLarge) || r.Sig != nil {
		t.Fatalf("oversized report: %v", err)
	}
	if _, err := UnmarshalReport(r.Marshal()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decoding an oversized report: %v", err)
	}
	if err := r.Sign(testNetwork, nil); err == nil {
		t.Error("signed without a key")
	}
}

func TestReportFree(t *testing.T) {
	for _, tc := range []struct{ quota, used, want uint64 }{
		{0, 5, math.MaxUint64},
		{10, 3, 7},
		{10, 10, 0},
		{10, 12, 0},
	} {
		if got := (&Report{Quota: tc.quota, Used: tc.used}).Free(); got != tc.want {
			t.Errorf("Free(quota %d, used %d) = %d, want %d", tc.quota, tc.used, got, tc.want)
		}
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		OrderFetching: "fetching", OrderHeld: "held", OrderDeclined: "declined", OrderFailed: "failed",
		State(9): "state(9)", ReasonHeat: "heat", ReasonPrewarm: "prewarm", Reason(0): "reason(0)",
		ReachUnknown: "unknown", ReachDirect: "direct", ReachNAT: "nat", ReachSymmetric: "symmetric-nat", Reach(4): "reach(4)",
	} {
		if v.String() != want {
			t.Errorf("%v, want %s", v, want)
		}
	}
}

func FuzzUnmarshalReport(f *testing.F) {
	p := newParty(f)
	f.Add(signedReport(f, p, nil).Marshal())
	f.Add(signedReport(f, p, func(r *Report) { *r = Report{} }).Marshal())
	f.Add(signedReport(f, p, func(r *Report) { r.Reach = ReachSymmetric }).Marshal())
	f.Add([]byte{Version})
	f.Add([]byte{ReportVersionReach})
	f.Add(signedReport(f, p, func(r *Report) { r.Compute = lender }).Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalReport(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps neither ErrMalformed nor ErrTooLarge: %v", err)
			}
			return
		}
		out := r.Marshal()
		if !bytes.Equal(out, b) {
			t.Fatal("accepted a non-canonical encoding")
		}
		again, err := UnmarshalReport(out)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-decoding: %v", err)
		}
		_ = CheckReport(r, r.Network, r.Epoch, 0)
		_ = r.Free()
	})
}
