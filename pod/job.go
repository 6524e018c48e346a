package pod

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
)

// A job is a function (the CID of its descriptor) run over an input (a
// UnixFS file's CID) with arguments. Its ID names it everywhere: the same
// job asked anywhere has one ID, so its output is found, not recomputed.
//
// A JobReceipt says "in epoch E, runner R ran job J for requester Q: the
// output is the DAG O, the run cost W work units". The runner signs it
// first (its claim: it alone knows the output until it hands it over);
// the requester countersigns once it holds the output, as a delivery's
// client signs what arrived. Until a final block records it, the runner's
// signature is all that vouches for the job -> output mapping; a second
// box re-running the job checks it (the output and the work are functions
// of the job: see package compute).
type JobReceipt struct {
	Version   uint8
	Network   string
	Epoch     uint64
	Runner    peer.ID
	Requester peer.ID
	Fn        cid.Cid
	Input     cid.Cid
	Args      []string
	Output    cid.Cid
	Work      uint64   // the meter's count
	Ticket    [32]byte // the ID of the ticket that pays (zero: none)

	RunnerSig    []byte
	RequesterSig []byte
}

// JobReceiptVersion is the job receipt format this package writes and reads.
const JobReceiptVersion = 1

// MaxJobWork bounds the work units of one job, whatever a function asks.
const MaxJobWork = 1 << 40

// Bounds of a job's arguments, so a receipt stays small.
const (
	MaxJobArgs      = 16
	MaxJobArgsBytes = 1024
	MaxJobEncoded   = 2048
)

// ErrBadJob wraps every job or job receipt that does not decode, verify
// or pass the stateless rules.
var ErrBadJob = errors.New("pod: bad job")

const (
	jobIDDomain        = "ore/pod/v1/job-id\x00"
	jobRunnerDomain    = "ore/pod/v1/job-runner\x00"
	jobRequesterDomain = "ore/pod/v1/job-requester\x00"
)

// CheckJobArgs applies the rules of a job's arguments: at most
// MaxJobArgs, MaxJobArgsBytes in all, valid UTF-8 without NUL (they
// become a command line).
func CheckJobArgs(args []string) error {
	if len(args) > MaxJobArgs {
		return fmt.Errorf("%w: %d arguments, the limit is %d", ErrBadJob, len(args), MaxJobArgs)
	}
	n := 0
	for i, a := range args {
		n += len(a)
		if !utf8.ValidString(a) || bytes.IndexByte([]byte(a), 0) >= 0 {
			return fmt.Errorf("%w: argument %d is not UTF-8 text without NUL", ErrBadJob, i)
		}
	}
	if n > MaxJobArgsBytes {
		return fmt.Errorf("%w: %d bytes of arguments, the limit is %d", ErrBadJob, n, MaxJobArgsBytes)
	}
	return nil
}

func appendJob(b []byte, fn, input cid.Cid, args []string) []byte {
	b = wire.AppendCID(b, fn)
	b = wire.AppendCID(b, input)
	b = binary.AppendUvarint(b, uint64(len(args)))
	for _, a := range args {
		b = wire.AppendBytes(b, []byte(a))
	}
	return b
}

// JobID names the job (fn, input, args): SHA-256 over a domain prefix and
// their encoding.
func JobID(fn, input cid.Cid, args []string) [32]byte {
	return sha256.Sum256(appendJob([]byte(jobIDDomain), fn, input, args))
}

// JobID is the ID of the receipt's job.
func (r *JobReceipt) JobID() [32]byte { return JobID(r.Fn, r.Input, r.Args) }

func (r *JobReceipt) appendBody(b []byte) []byte {
	b = append(b, r.Version)
	b = wire.AppendBytes(b, []byte(r.Network))
	b = binary.AppendUvarint(b, r.Epoch)
	b = wire.AppendPeer(b, r.Runner)
	b = wire.AppendPeer(b, r.Requester)
	b = appendJob(b, r.Fn, r.Input, r.Args)
	b = wire.AppendCID(b, r.Output)
	b = binary.AppendUvarint(b, r.Work)
	return append(b, r.Ticket[:]...)
}

func (r *JobReceipt) runnerPayload() []byte {
	return r.appendBody([]byte(jobRunnerDomain))
}

func (r *JobReceipt) requesterPayload() []byte {
	return wire.AppendBytes(r.appendBody([]byte(jobRequesterDomain)), r.RunnerSig)
}

// Marshal encodes the receipt with both signatures (empty when absent).
func (r *JobReceipt) Marshal() []byte {
	b := r.appendBody(make([]byte, 0, 512))
	b = wire.AppendBytes(b, r.RunnerSig)
	return wire.AppendBytes(b, r.RequesterSig)
}

// UnmarshalJobReceipt decodes a job receipt: only the canonical encoding
// of a known version within MaxJobEncoded. It checks the form and the
// arguments' rules, not the signatures (Verify).
func UnmarshalJobReceipt(data []byte) (*JobReceipt, error) {
	if len(data) > MaxJobEncoded {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadJob, len(data), MaxJobEncoded)
	}
	d := wire.NewDecoder(data, ErrBadJob)
	r := &JobReceipt{Version: d.Byte("version")}
	if d.Err() == nil && r.Version != JobReceiptVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrBadJob, r.Version, JobReceiptVersion)
	}
	r.Network = d.String(MaxNetworkLen, "network")
	r.Epoch = d.Uvarint("epoch")
	r.Runner = d.Peer(MaxPeerIDLen, "runner")
	r.Requester = d.Peer(MaxPeerIDLen, "requester")
	r.Fn = d.CID(MaxCIDLen, "function")
	r.Input = d.CID(MaxCIDLen, "input")
	n := d.Count(MaxJobArgs, "arguments")
	for i := 0; i < n; i++ {
		r.Args = append(r.Args, d.String(MaxJobArgsBytes, "argument"))
	}
	r.Output = d.CID(MaxCIDLen, "output")
	r.Work = d.Uvarint("work")
	r.Ticket = d.Hash("ticket")
	r.RunnerSig = d.Bytes(MaxSigLen, "runner signature")
	r.RequesterSig = d.Bytes(MaxSigLen, "requester signature")
	if err := d.End(); err != nil {
		return nil, err
	}
	if err := CheckJobArgs(r.Args); err != nil {
		return nil, err
	}
	if !bytes.Equal(r.Marshal(), data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrBadJob)
	}
	return r, nil
}

// SignRunner signs the receipt as its runner (the claim).
func (r *JobReceipt) SignRunner(k crypto.PrivKey) error {
	if err := checkKey(k, r.Runner, "runner"); err != nil {
		return err
	}
	sig, err := k.Sign(r.runnerPayload())
	if err != nil {
		return fmt.Errorf("pod: runner sign: %w", err)
	}
	r.RunnerSig = sig
	return nil
}

// SignRequester countersigns the runner's claim as its requester.
func (r *JobReceipt) SignRequester(k crypto.PrivKey) error {
	if err := checkKey(k, r.Requester, "requester"); err != nil {
		return err
	}
	if len(r.RunnerSig) == 0 {
		return fmt.Errorf("%w: the requester countersigns a runner's claim, and this one is unsigned", ErrMissingSignature)
	}
	sig, err := k.Sign(r.requesterPayload())
	if err != nil {
		return fmt.Errorf("pod: requester sign: %w", err)
	}
	r.RequesterSig = sig
	return nil
}

// VerifyRunner checks the runner's signature: the receipt is the
// runner's claim.
func (r *JobReceipt) VerifyRunner() error {
	return verifySig(r.Runner, r.runnerPayload(), r.RunnerSig, "runner")
}

// Verify checks both signatures: the receipt is a countersigned job, the
// kind a block pays.
func (r *JobReceipt) Verify() error {
	if err := r.VerifyRunner(); err != nil {
		return err
	}
	return verifySig(r.Requester, r.requesterPayload(), r.RequesterSig, "requester")
}

// CheckJob applies the stateless rules of a job receipt on a network.
func (p Params) CheckJob(r *JobReceipt) error {
	switch {
	case r.Version != JobReceiptVersion:
		return fmt.Errorf("%w: version %d", ErrBadJob, r.Version)
	case r.Network != p.Network:
		return fmt.Errorf("%w: network %q, this is %q", ErrBadJob, r.Network, p.Network)
	case r.Runner == r.Requester:
		return fmt.Errorf("%w: runner %s is its own requester", ErrBadJob, r.Runner)
	case !r.Fn.Defined() || !r.Input.Defined() || !r.Output.Defined():
		return fmt.Errorf("%w: a job names its function, input and output", ErrBadJob)
	}
	return CheckJobArgs(r.Args)
}
