package heat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

var lender = Compute{Slots: 2, Cap: 4, Busy: 1, Running: 3, Engine: EngineCompiler, Arch: "amd64"}

// TestReportCompute: a report of a box that lends CPU is version 3 and
// signs its Compute; one that lends nothing keeps the older encodings,
// and a version 3 report with a zero or unsound Compute is refused.
func TestReportCompute(t *testing.T) {
	p := newParty(t)
	for _, reach := range []Reach{ReachUnknown, ReachNAT} {
		r := signedReport(t, p, func(r *Report) { r.Reach, r.Compute = reach, lender })
		b := r.Marshal()
		if b[0] != ReportVersionCompute {
			t.Fatalf("a lender's report encoded as version %d", b[0])
		}
		got, err := UnmarshalReport(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Compute != lender || got.Reach != reach || CheckReport(got, testNetwork, r.Epoch, 0) != nil {
			t.Fatalf("decoded %+v, reach %s", got.Compute, got.Reach)
		}
		if got.Compute.Spare() != 1 {
			t.Errorf("spare %d, want 1 (one engine slot left)", got.Compute.Spare())
		}
	}
	// Stripping the compute (a relay downgrading the report) breaks the
	// signature.
	r := signedReport(t, p, func(r *Report) { r.Reach, r.Compute = ReachDirect, lender })
	r.Compute = Compute{}
	d, err := UnmarshalReport(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckReport(d, testNetwork, d.Epoch, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("compute stripped: %v, want ErrBadSignature", err)
	}
	// A version 3 report with a zero Compute is not canonical.
	plain := signedReport(t, p, func(r *Report) { r.Reach = ReachDirect }).Marshal()
	b := append([]byte{ReportVersionCompute}, plain[1:]...)
	if _, err := UnmarshalReport(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("version 3 without compute: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    Compute
	}{
		{"no slots", Compute{Cap: 1, Engine: EngineCompiler, Arch: "arm64"}},
		{"no cap", Compute{Slots: 1, Engine: EngineCompiler, Arch: "arm64"}},
		{"more busy than slots", Compute{Slots: 1, Cap: 1, Busy: 2, Engine: EngineCompiler, Arch: "arm64"}},
		{"more running than cap", Compute{Slots: 1, Cap: 1, Running: 2, Engine: EngineCompiler, Arch: "arm64"}},
		{"slots over the limit", Compute{Slots: MaxComputeSlots + 1, Cap: 1, Engine: EngineCompiler, Arch: "arm64"}},
		{"unknown engine", Compute{Slots: 1, Cap: 1, Engine: 3, Arch: "arm64"}},
		{"no arch", Compute{Slots: 1, Cap: 1, Engine: EngineInterpreter}},
		{"long arch", Compute{Slots: 1, Cap: 1, Engine: EngineInterpreter, Arch: strings.Repeat("a", MaxArchLen+1)}},
		{"arch not a name", Compute{Slots: 1, Cap: 1, Engine: EngineInterpreter, Arch: "arm\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleReport(t)
			r.Compute = tc.c
			if err := r.Sign(testNetwork, p.Key); !errors.Is(err, ErrMalformed) {
				t.Fatalf("sign: %v, want ErrMalformed", err)
			}
			r.Network, r.Reporter = testNetwork, p.ID
			if _, err := UnmarshalReport(r.Marshal()); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode: %v, want ErrMalformed", err)
			}
		})
	}
}

func runnerIDs(t *testing.T, n int) []peer.ID {
	ids := make([]peer.ID, n)
	for i, p := range newParties(t, n) {
		ids[i] = p.ID
	}
	return ids
}

func TestChooseRunners(t *testing.T) {
	ids := runnerIDs(t, 6)
	self := ids[5]
	comp := func(slots, busy uint32) Compute {
		return Compute{Slots: slots, Cap: slots, Busy: busy, Running: busy, Engine: EngineCompiler, Arch: "amd64"}
	}
	interp := func(slots, busy uint32) Compute {
		return Compute{Slots: slots, Cap: slots, Busy: busy, Running: busy, Engine: EngineInterpreter, Arch: "arm"}
	}
	p := DefaultRunnerParams()
	var job [32]byte
	light, heavy := p.HeavyWork-1, p.HeavyWork
	for _, tc := range []struct {
		name    string
		runners []Runner
		work    uint64
		want    []peer.ID
	}{
		{"none", nil, light, nil},
		{"self is never chosen", []Runner{{ID: self, Epoch: 10, Compute: comp(4, 0)}}, light, nil},
		{"stale report", []Runner{{ID: ids[0], Epoch: 10 - p.MaxAge - 1, Compute: comp(4, 0)}}, light, nil},
		{"report within the age", []Runner{{ID: ids[0], Epoch: 10 - p.MaxAge, Compute: comp(4, 0)}}, light, ids[:1]},
		{"full", []Runner{{ID: ids[0], Epoch: 10, Compute: comp(2, 2)}}, light, nil},
		{"engine full", []Runner{{ID: ids[0], Epoch: 10, Compute: Compute{Slots: 2, Cap: 2, Running: 2, Engine: EngineCompiler, Arch: "amd64"}}}, light, nil},
		{"full with the chooser's pending jobs", []Runner{{ID: ids[0], Epoch: 10, Compute: comp(2, 1), Pending: 1}}, light, nil},
		{"lends nothing", []Runner{{ID: ids[0], Epoch: 10}}, light, nil},
		{"most spare first", []Runner{
			{ID: ids[0], Epoch: 10, Compute: comp(2, 1)},
			{ID: ids[1], Epoch: 10, Compute: comp(4, 1)},
			{ID: ids[2], Epoch: 10, Compute: interp(8, 0)},
		}, light, []peer.ID{ids[2], ids[1], ids[0]}},
		{"heavy jobs to compilers first", []Runner{
			{ID: ids[0], Epoch: 10, Compute: comp(2, 1)},
			{ID: ids[1], Epoch: 10, Compute: comp(4, 1)},
			{ID: ids[2], Epoch: 10, Compute: interp(8, 0)},
		}, heavy, []peer.ID{ids[1], ids[0], ids[2]}},
		{"pending jobs count", []Runner{
			{ID: ids[0], Epoch: 10, Compute: comp(3, 0), Pending: 2},
			{ID: ids[1], Epoch: 10, Compute: comp(2, 0)},
		}, light, []peer.ID{ids[1], ids[0]}},
		{"a runner twice counts once", []Runner{
			{ID: ids[0], Epoch: 10, Compute: comp(1, 0)},
			{ID: ids[0], Epoch: 10, Compute: comp(1, 0)},
		}, light, ids[:1]},
		{"unsound compute ignored", []Runner{{ID: ids[0], Epoch: 10, Compute: Compute{Slots: 4, Cap: 4, Busy: 9, Engine: EngineCompiler, Arch: "amd64"}}}, light, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ChooseRunners(p, tc.runners, self, 10, job, tc.work, 0)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// Any order of the input gives the same ranking.
			rev := slices.Clone(tc.runners)
			slices.Reverse(rev)
			if again := ChooseRunners(p, rev, self, 10, job, tc.work, 0); !slices.Equal(again, got) {
				t.Fatalf("reversed input: %v, want %v", again, got)
			}
		})
	}
}

// TestChooseRunnersSpreads: among equal runners, the job decides who
// comes first (rendezvous hashing), so different jobs spread over them,
// and n bounds the answer.
func TestChooseRunnersSpreads(t *testing.T) {
	ids := runnerIDs(t, 4)
	var rs []Runner
	for _, id := range ids {
		rs = append(rs, Runner{ID: id, Epoch: 1, Compute: Compute{Slots: 1, Cap: 1, Engine: EngineCompiler, Arch: "arm64"}})
	}
	first := map[peer.ID]int{}
	for i := range 400 {
		var job [32]byte
		copy(job[:], fmt.Sprint(i))
		got := ChooseRunners(DefaultRunnerParams(), rs, "", 1, job, 0, 2)
		if len(got) != 2 {
			t.Fatalf("%d runners, want 2", len(got))
		}
		first[got[0]]++
	}
	for _, id := range ids {
		if first[id] < 50 {
			t.Errorf("runner %s first for %d of 400 jobs, want about 100", id, first[id])
		}
	}
}
