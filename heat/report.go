package heat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/internal/wire"
)

// Limits of a report; UnmarshalReport refuses anything larger before it
// decodes it.
const (
	MaxReportSize   = 32 << 10
	MaxHeat         = 64
	MaxHeld         = 256
	MaxOrders       = 64
	MaxStatusReason = 80
)

const reportDomain = "ore/heat/v1/report\x00"

// ReportVersionReach is the encoding version of a report that says how
// the internet reaches its reporter: Version's fields with Reach after
// Used. A report whose Reach is ReachUnknown is encoded as Version,
// without the field, byte for byte as builds before Reach encoded every
// report, so that those builds still read it; a ReportVersionReach
// report with ReachUnknown is not canonical and is refused.
const ReportVersionReach = 2

// Reach is how the internet reaches a box, as far as the planner cares:
// who can fetch from it.
type Reach uint8

// Reaches.
const (
	// ReachUnknown: the report does not say (the box has not found out
	// yet, or a build before Reach made it).
	ReachUnknown Reach = 0
	// ReachDirect: boxes dial it directly, on a public address, a port
	// its router maps (UPnP, NAT-PMP) or an IPv6 address without NAT.
	ReachDirect Reach = 1
	// ReachNAT: behind a NAT that hole punching passes (or of a kind not
	// known yet): boxes behind other NATs reach it through a relay, then
	// directly by hole punching.
	ReachNAT Reach = 2
	// ReachSymmetric: behind a NAT that picks a new external port for
	// every destination, with no mapped port and no IPv6 address without
	// NAT: hole punching fails through it, so only the boxes it can dial
	// (ReachDirect ones, which reach it through a relay first) fetch from
	// it.
	ReachSymmetric Reach = 3
)

func (r Reach) String() string {
	switch r {
	case ReachUnknown:
		return "unknown"
	case ReachDirect:
		return "direct"
	case ReachNAT:
		return "nat"
	case ReachSymmetric:
		return "symmetric-nat"
	}
	return fmt.Sprintf("reach(%d)", uint8(r))
}

func (r Reach) valid() bool { return r <= ReachSymmetric }

// RootHeat is one root's decayed request and byte counts, rounded.
type RootHeat struct {
	Root     cid.Cid
	Requests uint64
	Bytes    uint64
}

// Holding is a root the box holds whole (every block of its DAG).
type Holding struct {
	Root cid.Cid
	Size uint64
}

// State is where a box is in executing a replication order.
type State uint8

// Order states.
const (
	OrderFetching State = 1 // fetching the DAG
	OrderHeld     State = 2 // holds it whole and keeps it until the order's Until
	OrderDeclined State = 3 // will not take it (no room, policy)
	OrderFailed   State = 4 // tried and could not fetch it
)

func (s State) String() string {
	switch s {
	case OrderFetching:
		return "fetching"
	case OrderHeld:
		return "held"
	case OrderDeclined:
		return "declined"
	case OrderFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

func (s State) valid() bool { return s >= OrderFetching && s <= OrderFailed }

// OrderStatus is the state of one order a box executes.
type OrderStatus struct {
	Root   cid.Cid
	State  State
	Reason string // why it was declined or failed; at most MaxStatusReason bytes
}

// Report is what a box (or gateway) gossips once per epoch on ReportTopic:
// the heat it saw, what it holds, how much room it has and how its orders
// are going. The reporter signs it.
type Report struct {
	Network  string
	Reporter peer.ID
	Epoch    uint64
	Quota    uint64        // bytes this box may store (0: unlimited)
	Used     uint64        // bytes stored
	Reach    Reach         // how the internet reaches the reporter (see ReportVersionReach)
	Compute  Compute       // what the reporter lends to jobs, and its load (see ReportVersionCompute)
	Heat     []RootHeat    // at most MaxHeat, hottest first (see Top)
	Held     []Holding     // at most MaxHeld
	Orders   []OrderStatus // at most MaxOrders
	Sig      []byte
}

// Free returns the bytes the box may still store: Quota-Used (0 when over
// quota), or math.MaxUint64 when Quota is 0.
func (r *Report) Free() uint64 {
	switch {
	case r.Quota == 0:
		return math.MaxUint64
	case r.Used >= r.Quota:
		return 0
	}
	return r.Quota - r.Used
}

func (r *Report) appendUnsigned(b []byte) []byte {
	v := byte(Version)
	switch {
	case r.Compute.Lends():
		v = ReportVersionCompute
	case r.Reach != ReachUnknown:
		v = ReportVersionReach
	}
	b = append(b, v)
	b = wire.AppendBytes(b, []byte(r.Network))
	b = wire.AppendPeer(b, r.Reporter)
	b = binary.AppendUvarint(b, r.Epoch)
	b = binary.AppendUvarint(b, r.Quota)
	b = binary.AppendUvarint(b, r.Used)
	if v >= ReportVersionReach {
		b = append(b, byte(r.Reach))
	}
	if v == ReportVersionCompute {
		b = r.Compute.appendTo(b)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Heat)))
	for _, h := range r.Heat {
		b = wire.AppendCID(b, h.Root)
		b = binary.AppendUvarint(b, h.Requests)
		b = binary.AppendUvarint(b, h.Bytes)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Held)))
	for _, h := range r.Held {
		b = wire.AppendCID(b, h.Root)
		b = binary.AppendUvarint(b, h.Size)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Orders)))
	for _, o := range r.Orders {
		b = wire.AppendCID(b, o.Root)
		b = append(b, byte(o.State))
		b = wire.AppendBytes(b, []byte(o.Reason))
	}
	return b
}

// Marshal encodes the report, signature included.
func (r *Report) Marshal() []byte {
	b := r.appendUnsigned(make([]byte, 0, 256+48*(len(r.Heat)+len(r.Held)+len(r.Orders))))
	return wire.AppendBytes(b, r.Sig)
}

// SigPayload is what the reporter signs: a domain prefix and the unsigned
// encoding (which names the network).
func (r *Report) SigPayload() []byte {
	return r.appendUnsigned(append(make([]byte, 0, 512), reportDomain...))
}

// check verifies the report's structure: the limits, defined and unique
// roots, known states.
func (r *Report) check() error {
	switch {
	case len(r.Network) > MaxNetworkLen:
		return fmt.Errorf("%w: report network is %d bytes, the limit is %d", ErrMalformed, len(r.Network), MaxNetworkLen)
	case len(r.Reporter) > MaxPeerIDLen:
		return fmt.Errorf("%w: reporter ID is %d bytes, the limit is %d", ErrMalformed, len(r.Reporter), MaxPeerIDLen)
	case len(r.Heat) > MaxHeat:
		return fmt.Errorf("%w: %d heat entries, the limit is %d", ErrMalformed, len(r.Heat), MaxHeat)
	case len(r.Held) > MaxHeld:
		return fmt.Errorf("%w: %d holdings, the limit is %d", ErrMalformed, len(r.Held), MaxHeld)
	case len(r.Orders) > MaxOrders:
		return fmt.Errorf("%w: %d order states, the limit is %d", ErrMalformed, len(r.Orders), MaxOrders)
	case len(r.Sig) > MaxSigLen:
		return fmt.Errorf("%w: report signature is %d bytes, the limit is %d", ErrMalformed, len(r.Sig), MaxSigLen)
	case !r.Reach.valid():
		return fmt.Errorf("%w: report reach is unknown %s", ErrMalformed, r.Reach)
	}
	if err := r.Compute.check(); err != nil {
		return err
	}
	seen := make(map[cid.Cid]bool, len(r.Heat))
	for _, h := range r.Heat {
		if err := unique(seen, h.Root, "heat"); err != nil {
			return err
		}
	}
	clear(seen)
	for _, h := range r.Held {
		if err := unique(seen, h.Root, "holding"); err != nil {
			return err
		}
	}
	clear(seen)
	for _, o := range r.Orders {
		if err := unique(seen, o.Root, "order state"); err != nil {
			return err
		}
		if !o.State.valid() {
			return fmt.Errorf("%w: order state of %s is unknown %s", ErrMalformed, o.Root, o.State)
		}
		if len(o.Reason) > MaxStatusReason {
			return fmt.Errorf("%w: order state reason of %d bytes, the limit is %d", ErrMalformed, len(o.Reason), MaxStatusReason)
		}
	}
	return nil
}

func unique(seen map[cid.Cid]bool, c cid.Cid, what string) error {
	if !c.Defined() || len(c.Bytes()) > MaxCIDLen {
		return fmt.Errorf("%w: %s root is undefined or too long", ErrMalformed, what)
	}
	if seen[c] {
		return fmt.Errorf("%w: %s root %s listed twice", ErrMalformed, what, c)
	}
	seen[c] = true
	return nil
}

// Sign sets Network to network and Reporter to k's peer ID and signs the
// report. k must be an Ed25519 key. It refuses a report that peers would
// refuse to decode.
func (r *Report) Sign(network string, k crypto.PrivKey) error {
	id, err := signer(k, "report")
	if err != nil {
		return err
	}
	r.Network, r.Reporter, r.Sig = network, id, nil
	if err := r.check(); err != nil {
		return fmt.Errorf("heat: sign report: %w", err)
	}
	sig, err := k.Sign(r.SigPayload())
	if err != nil {
		return fmt.Errorf("heat: sign report: %w", err)
	}
	r.Sig = sig
	if n := len(r.Marshal()); n > MaxReportSize {
		r.Sig = nil
		return fmt.Errorf("%w: report of %d bytes, the limit is %d", ErrTooLarge, n, MaxReportSize)
	}
	return nil
}

// Verify checks that the report is for network and signed by its
// reporter's Ed25519 key.
func (r *Report) Verify(network string) error {
	if r.Network != network {
		return fmt.Errorf("%w: report for %q, this is %q", ErrWrongNetwork, r.Network, network)
	}
	return verifySig(r.Reporter, r.SigPayload(), r.Sig, "report")
}

// CheckReport applies the rules to a received report: well formed, for
// network, of an epoch at most skew away from nowEpoch, and signed by its
// reporter. Cheap checks run first.
func CheckReport(r *Report, network string, nowEpoch, skew uint64) error {
	if r == nil {
		return fmt.Errorf("%w: no report", ErrMalformed)
	}
	if err := r.check(); err != nil {
		return err
	}
	if r.Network != network {
		return fmt.Errorf("%w: report for %q, this is %q", ErrWrongNetwork, r.Network, network)
	}
	if err := checkEpoch(r.Epoch, nowEpoch, skew, "report"); err != nil {
		return err
	}
	return r.Verify(network)
}

// UnmarshalReport decodes a report. It accepts only the canonical encoding
// of a known version (Version; ReportVersionReach with a known Reach
// other than ReachUnknown; ReportVersionCompute with a Compute that
// lends) within MaxReportSize and the list limits, with
// peer IDs and CIDs that parse, no root twice in a list and known order
// states;
// it does not check the signature (see CheckReport).
func UnmarshalReport(data []byte) (*Report, error) {
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("%w: report of %d bytes, the limit is %d", ErrTooLarge, len(data), MaxReportSize)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	v := d.Byte("version")
	if d.Err() == nil && v != Version && v != ReportVersionReach && v != ReportVersionCompute {
		return nil, fmt.Errorf("%w: report version %d, this build reads %d to %d", ErrMalformed, v, Version, ReportVersionCompute)
	}
	r := &Report{}
	r.Network = string(d.Bytes(MaxNetworkLen, "network"))
	r.Reporter = d.Peer(MaxPeerIDLen, "reporter")
	r.Epoch = d.Uvarint("epoch")
	r.Quota = d.Uvarint("quota")
	r.Used = d.Uvarint("used")
	if v >= ReportVersionReach {
		r.Reach = Reach(d.Byte("reach"))
	}
	if v == ReportVersionCompute {
		r.Compute = readCompute(d)
	}
	if n := d.Count(MaxHeat, "heat entries"); n > 0 {
		r.Heat = make([]RootHeat, n)
		for i := range r.Heat {
			h := &r.Heat[i]
			h.Root = d.CID(MaxCIDLen, "heat root")
			h.Requests = d.Uvarint("heat requests")
			h.Bytes = d.Uvarint("heat bytes")
		}
	}
	if n := d.Count(MaxHeld, "holdings"); n > 0 {
		r.Held = make([]Holding, n)
		for i := range r.Held {
			h := &r.Held[i]
			h.Root = d.CID(MaxCIDLen, "held root")
			h.Size = d.Uvarint("held size")
		}
	}
	if n := d.Count(MaxOrders, "order states"); n > 0 {
		r.Orders = make([]OrderStatus, n)
		for i := range r.Orders {
			o := &r.Orders[i]
			o.Root = d.CID(MaxCIDLen, "order root")
			o.State = State(d.Byte("order state"))
			o.Reason = string(d.Bytes(MaxStatusReason, "order reason"))
		}
	}
	r.Sig = d.Bytes(MaxSigLen, "signature") // nil when unsigned
	if err := d.End(); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	// One report, one encoding (no padded varints, no other CID spelling).
	if !bytes.Equal(r.Marshal(), data) {
		return nil, fmt.Errorf("%w: report not in canonical form", ErrMalformed)
	}
	return r, nil
}
