package heat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/internal/wire"
)

// ReportVersionCompute is the encoding version of a report whose
// reporter lends CPU to jobs (package compute): ReportVersionReach's
// fields, Reach always present (ReachUnknown allowed), then Compute. A
// report whose Compute is zero (the box lends nothing) is encoded as
// Version or ReportVersionReach, as before Compute existed; a
// ReportVersionCompute report with a zero Compute is not canonical.
const ReportVersionCompute = 3

// Limits of a report's Compute.
const (
	// MaxComputeSlots bounds Slots and Cap: no box runs more jobs at once.
	MaxComputeSlots = 1024
	// MaxArchLen bounds Compute.Arch (Go's GOARCH names are at most 8).
	MaxArchLen = 16
)

// Engine is how a box runs WebAssembly: compiled to machine code (wazero's
// compiler, on amd64 and arm64) or interpreted (elsewhere, armv7
// included), several times slower on heavy jobs.
type Engine uint8

// Engines.
const (
	EngineCompiler    Engine = 1
	EngineInterpreter Engine = 2
)

func (e Engine) String() string {
	switch e {
	case EngineCompiler:
		return "compiler"
	case EngineInterpreter:
		return "interpreter"
	}
	return fmt.Sprintf("engine(%d)", uint8(e))
}

// Compute is what a box lends to other peers' jobs and how busy it was
// when it reported. The zero Compute lends nothing.
type Compute struct {
	// Slots is how many jobs the box runs for other peers at once: the
	// cores it lends (ore init --compute-share). At least 1 when set.
	Slots uint32
	// Cap is how many jobs its engine runs at once, its own included
	// (the rest of its cores stay with delivery).
	Cap uint32
	// Busy is how many of Slots were taken; Running how many jobs its
	// engine ran, of Cap.
	Busy, Running uint32
	Engine        Engine
	Arch          string // GOARCH: at most MaxArchLen bytes of [a-z0-9]
}

// Lends reports whether the box lends CPU at all.
func (c Compute) Lends() bool { return c != (Compute{}) }

// Spare is how many more jobs the box could take for others when it
// reported: free slots, as far as its engine has room.
func (c Compute) Spare() uint32 {
	if c.Busy >= c.Slots || c.Running >= c.Cap {
		return 0
	}
	return min(c.Slots-c.Busy, c.Cap-c.Running)
}

func (c Compute) appendTo(b []byte) []byte {
	for _, v := range []uint32{c.Slots, c.Cap, c.Busy, c.Running} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = append(b, byte(c.Engine))
	return wire.AppendBytes(b, []byte(c.Arch))
}

func readCompute(d *wire.Decoder) Compute {
	var c Compute
	for _, f := range []struct {
		v    *uint32
		what string
	}{{&c.Slots, "compute slots"}, {&c.Cap, "compute cap"}, {&c.Busy, "compute busy"}, {&c.Running, "compute running"}} {
		v := d.Uvarint(f.what)
		if v > MaxComputeSlots {
			d.Failf("%s %d, the limit is %d", f.what, v, MaxComputeSlots)
			return c
		}
		*f.v = uint32(v)
	}
	c.Engine = Engine(d.Byte("compute engine"))
	c.Arch = d.String(MaxArchLen, "compute arch")
	return c
}

// check refuses a Compute peers would not decode, or that says nothing
// sound: no slots, more busy than there is, an unknown engine, an
// architecture name that is not one.
func (c Compute) check() error {
	if !c.Lends() {
		return nil
	}
	switch {
	case c.Slots < 1 || c.Slots > MaxComputeSlots || c.Cap < 1 || c.Cap > MaxComputeSlots:
		return fmt.Errorf("%w: compute of %d slots and a cap of %d, each 1 to %d", ErrMalformed, c.Slots, c.Cap, MaxComputeSlots)
	case c.Busy > c.Slots || c.Running > c.Cap:
		return fmt.Errorf("%w: compute of %d/%d slots busy, %d/%d running", ErrMalformed, c.Busy, c.Slots, c.Running, c.Cap)
	case c.Engine != EngineCompiler && c.Engine != EngineInterpreter:
		return fmt.Errorf("%w: compute engine is unknown %s", ErrMalformed, c.Engine)
	case len(c.Arch) == 0 || len(c.Arch) > MaxArchLen:
		return fmt.Errorf("%w: compute arch of %d bytes, 1 to %d", ErrMalformed, len(c.Arch), MaxArchLen)
	}
	for i := 0; i < len(c.Arch); i++ {
		if ch := c.Arch[i]; !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9') {
			return fmt.Errorf("%w: compute arch %q is not [a-z0-9]", ErrMalformed, c.Arch)
		}
	}
	return nil
}

// Runner is a box that lends CPU, as a job's chooser knows it: its latest
// report's Compute, the epoch of that report, and the jobs the chooser
// sent it since and has not had an answer for (the report is an epoch
// old; the chooser's own load on it is not).
type Runner struct {
	ID      peer.ID
	Epoch   uint64
	Compute Compute
	Pending uint32
}

// RunnerParams tune ChooseRunners.
type RunnerParams struct {
	// MaxAge: a runner whose report is more than MaxAge epochs older than
	// now is not chosen (it may be gone).
	MaxAge uint64
	// HeavyWork: a job whose function may spend at least this many work
	// units is heavy, and goes to compiling engines first.
	HeavyWork uint64
}

// DefaultRunnerParams returns ChooseRunners' defaults: reports of the last
// two epochs, and heavy jobs from 2^30 work units (about a second on the
// interpreter of an armv7 box, a tenth of it compiled).
func DefaultRunnerParams() RunnerParams {
	return RunnerParams{MaxAge: 2, HeavyWork: 1 << 30}
}

// ChooseRunners ranks the runners that may take job (a pod.JobID) now:
// fresh reports (at most p.MaxAge epochs old), with spare room once the
// chooser's own pending jobs are counted, never self. For a heavy job
// (work at least p.HeavyWork) compiling engines come first; then the most
// spare room; ties are broken by rendezvous hashing of the job and the
// runner, so choosers spread the same load the same way and the same job
// goes to the same box (whose index may already hold its output). It is
// pure: the same inputs in any order give the same ranking. At most n
// runners are returned (n < 1: all).
func ChooseRunners(p RunnerParams, runners []Runner, self peer.ID, now uint64, job [32]byte, work uint64, n int) []peer.ID {
	heavy := work >= p.HeavyWork
	type cand struct {
		id       peer.ID
		compiled bool
		spare    uint32
		score    [32]byte
	}
	var cs []cand
	seen := make(map[peer.ID]bool, len(runners))
	for _, r := range runners {
		if r.ID == self || seen[r.ID] || r.Epoch+p.MaxAge < now || r.Compute.check() != nil {
			continue
		}
		seen[r.ID] = true
		spare := r.Compute.Spare()
		if spare <= r.Pending {
			continue
		}
		cs = append(cs, cand{id: r.ID, compiled: r.Compute.Engine == EngineCompiler, spare: spare - r.Pending,
			score: sha256.Sum256(append(append([]byte("ore/heat/v1/runner\x00"), job[:]...), r.ID...))})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if heavy && a.compiled != b.compiled {
			if a.compiled {
				return -1
			}
			return 1
		}
		if a.spare != b.spare {
			if a.spare > b.spare {
				return -1
			}
			return 1
		}
		if c := bytes.Compare(a.score[:], b.score[:]); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.id), []byte(b.id))
	})
	if n > 0 && len(cs) > n {
		cs = cs[:n]
	}
	out := make([]peer.ID, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}
