package pod

import (
	"encoding/binary"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/internal/wire"
)

// A JobCheck is a checker's signed claim of a job's outcome, from its own
// run of the job: "the job J gives the output O for W work units". A job's
// outcome is a function of the job (package compute), so a check that
// disagrees with a runner's receipt is half of a proof that one of them
// lied; the ledger (RulesV5) takes a quorum of committee members' checks
// that agree with each other and not with the runner as the proof, and
// forfeits the runner's bond.
type JobCheck struct {
	Network string
	Job     [32]byte // JobID(fn, input, args)
	Output  cid.Cid
	Work    uint64
	Checker peer.ID
	Sig     []byte
}

// MaxJobCheckEncoded bounds an encoded check.
const MaxJobCheckEncoded = 384

const jobCheckDomain = "ore/pod/v1/job-check\x00"

// AppendBody appends the signed part of the check.
func (c *JobCheck) AppendBody(b []byte) []byte {
	b = wire.AppendBytes(b, []byte(c.Network))
	b = append(b, c.Job[:]...)
	b = wire.AppendCID(b, c.Output)
	b = binary.AppendUvarint(b, c.Work)
	return wire.AppendPeer(b, c.Checker)
}

// AppendTo appends the check with its signature.
func (c *JobCheck) AppendTo(b []byte) []byte {
	return wire.AppendBytes(c.AppendBody(b), c.Sig)
}

// ReadJobCheck reads what AppendTo wrote; the signature is not checked
// (Verify).
func ReadJobCheck(d *wire.Decoder) JobCheck {
	var c JobCheck
	c.Network = d.String(MaxNetworkLen, "network")
	c.Job = d.Hash("job")
	c.Output = d.CID(MaxCIDLen, "output")
	c.Work = d.Uvarint("work")
	c.Checker = d.Peer(MaxPeerIDLen, "checker")
	c.Sig = d.Bytes(MaxSigLen, "checker signature")
	return c
}

func (c *JobCheck) payload() []byte {
	return c.AppendBody(append(make([]byte, 0, 192), jobCheckDomain...))
}

// Sign signs the check with the checker's key.
func (c *JobCheck) Sign(k crypto.PrivKey) error {
	if err := checkKey(k, c.Checker, "checker"); err != nil {
		return err
	}
	sig, err := k.Sign(c.payload())
	if err != nil {
		return err
	}
	c.Sig = sig
	return nil
}

// Verify checks the checker's signature.
func (c *JobCheck) Verify() error {
	return verifySig(c.Checker, c.payload(), c.Sig, "checker")
}

// Agrees reports whether the check gives the receipt's outcome.
func (c *JobCheck) Agrees(r *JobReceipt) bool {
	return c.Job == r.JobID() && c.Output.Equals(r.Output) && c.Work == r.Work
}
