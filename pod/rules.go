package pod

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Params are the network's genesis parameters that receipts depend on.
type Params struct {
	Network     string        // network ID: receipts of other networks are refused
	GenesisTime time.Time     // epoch 0 starts here
	EpochLength time.Duration // default 10 s
	MaxSkew     uint64        // receipts more than this many epochs from now are refused
	// MaxReceiptVersion is the newest receipt format the network's rules
	// take (0: Version): VersionTicket once the ledger pays by tickets.
	MaxReceiptVersion uint8
}

// Defaults.
const (
	DefaultEpochLength = 10 * time.Second
	DefaultMaxSkew     = 3
	// MaxBlockSize bounds one block's bytes: boxo refuses larger blocks on
	// the wire (2 MiB), and ore's chunks are at most 1 MiB.
	MaxBlockSize = 2 << 20
)

// DefaultParams are the parameters of a development network.
func DefaultParams(network string) Params {
	return Params{
		Network:     network,
		GenesisTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		EpochLength: DefaultEpochLength,
		MaxSkew:     DefaultMaxSkew,
	}
}

// Validate checks the parameters against each other.
func (p Params) Validate() error {
	if p.Network == "" || len(p.Network) > MaxNetworkLen {
		return fmt.Errorf("pod: network ID must be 1 to %d bytes", MaxNetworkLen)
	}
	if p.EpochLength < time.Second {
		return fmt.Errorf("pod: epoch length %s is under 1s", p.EpochLength)
	}
	if p.GenesisTime.IsZero() {
		return errors.New("pod: no genesis time")
	}
	return nil
}

// EpochAt is the epoch that contains t (0 before genesis).
func (p Params) EpochAt(t time.Time) uint64 {
	d := t.Sub(p.GenesisTime)
	if d < 0 {
		return 0
	}
	return uint64(d / p.EpochLength)
}

// Reason names why a receipt was rejected; metrics count by it.
type Reason string

// Rejection reasons, one per rule.
const (
	ReasonMalformed       Reason = "malformed"
	ReasonUnknownVersion  Reason = "unknown_version"
	ReasonWrongNetwork    Reason = "wrong_network"
	ReasonEpochOutOfRange Reason = "epoch_out_of_range"
	ReasonSelfDealing     Reason = "self_dealing"
	ReasonOversized       Reason = "oversized"
	ReasonMissingSig      Reason = "missing_signature"
	ReasonBadSig          Reason = "bad_signature"
	ReasonStaleSeq        Reason = "stale_sequence"
	// ReasonUnsent: the receipt claims more bytes of its root than its
	// server sent the client and the client has not receipted yet (the
	// server's own meter, see package meter).
	ReasonUnsent Reason = "unsent_bytes"
	// ReasonNotServed: the server does not hold the receipt's root, or
	// sent the client no block of it that a receipt has not claimed yet.
	ReasonNotServed Reason = "root_not_served"
)

// Reasons lists every reason, for metrics that start at zero.
var Reasons = []Reason{ReasonMalformed, ReasonUnknownVersion, ReasonWrongNetwork, ReasonEpochOutOfRange,
	ReasonSelfDealing, ReasonOversized, ReasonMissingSig, ReasonBadSig, ReasonStaleSeq, ReasonUnsent, ReasonNotServed}

// RejectError is a receipt that broke a rule.
type RejectError struct {
	Reason Reason
	Err    error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("pod: receipt rejected (%s): %v", e.Reason, e.Err)
}
func (e *RejectError) Unwrap() error { return e.Err }

func reject(r Reason, format string, args ...any) error {
	return &RejectError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the reason of a rejection error ("" if err is not one).
func ReasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	var rf *RefusedError
	if errors.As(err, &rf) {
		return rf.Reason
	}
	switch {
	case errors.Is(err, ErrUnknownVersion):
		return ReasonUnknownVersion
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	}
	return ""
}

// Check applies every stateless rule to r at epoch now. Signatures are
// checked as the receipt's state requires: the client's always, the
// server's when requireServer.
func (p Params) Check(r *Receipt, now uint64, requireServer bool) error {
	if err := p.CheckUnsigned(r, now); err != nil {
		return err
	}
	if err := r.VerifyClient(); err != nil {
		return sigReject(err)
	}
	if requireServer {
		if err := r.VerifyServer(); err != nil {
			return sigReject(err)
		}
	}
	return nil
}

// CheckUnsigned applies every stateless rule but the signature checks, for
// callers that verify signatures in batches (VerifyReceipts) afterwards: a
// peer whose clock reads epoch now accepts receipts within MaxSkew of it,
// either way, since clocks differ.
func (p Params) CheckUnsigned(r *Receipt, now uint64) error {
	return p.CheckIn(r, p.Around(now))
}

// Window is a range of receipt epochs a checker accepts, both ends
// included.
type Window struct{ First, Last uint64 }

// Around is the window of a peer whose clock reads epoch now: MaxSkew
// epochs either side.
func (p Params) Around(now uint64) Window {
	w := Window{First: now - min(now, p.MaxSkew), Last: now + p.MaxSkew}
	if w.Last < now {
		w.Last = ^uint64(0)
	}
	return w
}

// InBlock is the window of a block of the given epoch: receipts of that
// epoch and of the MaxSkew epochs before it. A block never takes a receipt
// from its future.
func (p Params) InBlock(epoch uint64) Window {
	return Window{First: epoch - min(epoch, p.MaxSkew), Last: epoch}
}

// CheckIn applies every stateless rule but the signature checks, with
// receipt epochs accepted in w. It is the one definition of the receipt
// rules: gossip intake, a server countersigning and the ledger's state
// machine all check through it, each with its own window.
func (p Params) CheckIn(r *Receipt, w Window) error {
	if r.Version != Version && (r.Version != VersionTicket || p.MaxReceiptVersion < VersionTicket) {
		return reject(ReasonUnknownVersion, "version %d, this network takes %d to %d", r.Version, Version, max(Version, p.MaxReceiptVersion))
	}
	if r.Version < VersionTicket && r.Ticket != [32]byte{} {
		return reject(ReasonMalformed, "a version %d receipt cannot name a ticket", r.Version)
	}
	if r.Network != p.Network {
		return reject(ReasonWrongNetwork, "network %q, this is %q", r.Network, p.Network)
	}
	if r.Epoch < w.First || r.Epoch > w.Last {
		return reject(ReasonEpochOutOfRange, "epoch %d, accepted here are %d to %d", r.Epoch, w.First, w.Last)
	}
	if r.Server == r.Client {
		return reject(ReasonSelfDealing, "server and client are both %s", r.Server)
	}
	if r.Blocks == 0 {
		return reject(ReasonMalformed, "no blocks")
	}
	if r.Bytes > ^uint64(0)-MaxBlockSize || (r.Bytes+MaxBlockSize-1)/MaxBlockSize > r.Blocks {
		return reject(ReasonOversized, "%d bytes in %d blocks (at most %d bytes a block)", r.Bytes, r.Blocks, MaxBlockSize)
	}
	if !r.Root.Defined() {
		return reject(ReasonMalformed, "no root CID")
	}
	return nil
}

// Supersedes reports whether r replaces old, a receipt for the same (S, C,
// R, E): a later sequence that takes back none of the bytes or blocks old
// counted. Receipts are cumulative, so a receipt that does not supersede
// the one before is stale. It is the one definition of "newer": a server
// countersigns only receipts that supersede what it signed, pools keep
// only receipts that supersede what they hold, and the ledger, which pays
// the bytes beyond those already paid, gains nothing from one that does
// not.
func (r *Receipt) Supersedes(old *Receipt) bool {
	return r.Seq > old.Seq && r.Bytes >= old.Bytes && r.Blocks >= old.Blocks
}

func sigReject(err error) error {
	if errors.Is(err, ErrMissingSignature) {
		return &RejectError{Reason: ReasonMissingSig, Err: err}
	}
	return &RejectError{Reason: ReasonBadSig, Err: err}
}

// Verifier applies the rules to a stream of receipts: the stateless ones,
// both signatures, and that each supersedes the last receipt it accepted
// for the same (S, C, R, E). It counts rejections by reason. It is
// safe for concurrent use. Forget drops the state of old epochs.
type Verifier struct {
	params Params

	mu       sync.Mutex
	last     map[Key]*Receipt
	rejected map[Reason]uint64
	accepted uint64
}

// NewVerifier returns a verifier for a network.
func NewVerifier(p Params) *Verifier {
	return &Verifier{params: p, last: make(map[Key]*Receipt), rejected: make(map[Reason]uint64)}
}

// Verify accepts r (a fully signed receipt) at epoch now, or says why not.
func (v *Verifier) Verify(r *Receipt, now uint64) error {
	err := v.params.Check(r, now, true)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err == nil {
		k := r.Key()
		if last, ok := v.last[k]; ok && !r.Supersedes(last) {
			err = reject(ReasonStaleSeq, "sequence %d (%d bytes) does not supersede %d (%d bytes)", r.Seq, r.Bytes, last.Seq, last.Bytes)
		} else {
			v.last[k] = r
		}
	}
	if err != nil {
		v.rejected[ReasonOf(err)]++
		return err
	}
	v.accepted++
	return nil
}

// CountRejected records a receipt that failed before it could be verified
// (it did not decode).
func (v *Verifier) CountRejected(err error) {
	v.mu.Lock()
	v.rejected[ReasonOf(err)]++
	v.mu.Unlock()
}

// Forget drops sequence state of epochs older than before.
func (v *Verifier) Forget(before uint64) {
	v.mu.Lock()
	for k := range v.last {
		if k.Epoch < before {
			delete(v.last, k)
		}
	}
	v.mu.Unlock()
}

// Stats are a verifier's counters.
type Stats struct {
	Accepted uint64
	Rejected map[Reason]uint64
}

// Stats returns the counters.
func (v *Verifier) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Stats{Accepted: v.accepted, Rejected: make(map[Reason]uint64, len(v.rejected))}
	for r, n := range v.rejected {
		s.Rejected[r] = n
	}
	return s
}

// String formats stats for logs.
func (s Stats) String() string {
	keys := make([]string, 0, len(s.Rejected))
	for r := range s.Rejected {
		keys = append(keys, string(r))
	}
	sort.Strings(keys)
	out := fmt.Sprintf("accepted %d", s.Accepted)
	for _, k := range keys {
		out += fmt.Sprintf(", %s %d", k, s.Rejected[Reason(k)])
	}
	return out
}
