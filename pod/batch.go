package pod

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Receipt signatures follow ZIP-215 (cofactored, non-canonical encodings
// accepted), one by one and in batches alike, so whether a signature is
// valid never depends on the receipts checked with it.
var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

// verifyChunk is how many receipts (twice as many signatures) one batch
// verification covers. Chunks are fixed by position, whatever the number
// of cores. Bigger batches cost less per signature (multi-scalar
// multiplication): on the 2-core development machine, one core verifies
// ~23,600 receipts/s in chunks of 128, ~25,700 in 256 and ~27,500-30,400
// in 512; 1,024 gains nothing more. A gossip message is at most one chunk
// (intake.MaxBatch).
const verifyChunk = 512

// VerifyReceipts checks both signatures of every receipt and returns each
// receipt's error: nil when both verify, a *RejectError with
// ReasonMissingSig or ReasonBadSig otherwise. It checks signatures only,
// not the other rules (see Params.CheckUnsigned).
//
// Work is done once per receipt per process: chunks of receipts are
// verified as Ed25519 batches in parallel on all cores (a bad chunk is
// verified one signature at a time to find the bad ones), public keys are
// kept in their expanded form, and a receipt whose signatures verified is
// remembered, so the gossip validator, the leader's block builder and
// every state machine in the process pay for it once. On the 2-core
// development machine that is about 17-18 µs per signature on one core
// against 84 µs for crypto/ed25519 one by one (BenchmarkVerifyReceipts,
// BenchmarkVerify).
func VerifyReceipts(rs []*Receipt) []error {
	errs := make([]error, len(rs))
	var todo []int
	keys := make([][32]byte, len(rs))
	for i, r := range rs {
		if err := sigsPresent(r); err != nil {
			errs[i] = err
			continue
		}
		keys[i] = verifiedKey(r)
		if !verified.Contains(keys[i]) {
			todo = append(todo, i)
		}
	}
	chunks := (len(todo) + verifyChunk - 1) / verifyChunk
	if chunks == 0 {
		return errs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), chunks) {
		wg.Go(func() {
			for {
				c := int(next.Add(1)) - 1
				if c >= chunks {
					return
				}
				part := todo[c*verifyChunk : min((c+1)*verifyChunk, len(todo))]
				verifyPart(rs, part, errs)
				for _, i := range part {
					if errs[i] == nil {
						verified.Add(keys[i], struct{}{})
					}
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// VerifySigs checks both signatures of r (see VerifyReceipts).
func (r *Receipt) VerifySigs() error { return VerifyReceipts([]*Receipt{r})[0] }

// verifyPart batch-verifies rs[i] for i in part and sets errs[i] for the
// ones that fail.
func verifyPart(rs []*Receipt, part []int, errs []error) {
	bv := voi.NewBatchVerifierWithCapacity(2 * len(part))
	var entries []int // receipt index of each batch entry
	// The messages live in one buffer: the verifier keeps them until
	// Verify. (A reallocation leaves earlier messages where they were.)
	msgs := make([]byte, 0, 800*len(part))
	msg := func(appendTo func([]byte) []byte) []byte {
		at := len(msgs)
		msgs = appendTo(msgs)
		return msgs[at:len(msgs):len(msgs)]
	}
	for _, i := range part {
		r := rs[i]
		cpk, err := expandedKey(r.Client, "client")
		if err != nil {
			errs[i] = err
			continue
		}
		spk, err := expandedKey(r.Server, "server")
		if err != nil {
			errs[i] = err
			continue
		}
		bv.AddExpandedWithOptions(cpk, msg(r.appendClientPayload), r.ClientSig, zip215)
		bv.AddExpandedWithOptions(spk, msg(r.appendServerPayload), r.ServerSig, zip215)
		entries = append(entries, i, i)
	}
	if len(entries) == 0 {
		return
	}
	if ok, valid := bv.Verify(nil); !ok {
		for e, good := range valid {
			if i := entries[e]; !good && errs[i] == nil {
				role := "client"
				if e%2 == 1 {
					role = "server"
				}
				errs[i] = &RejectError{Reason: ReasonBadSig, Err: fmt.Errorf("%w: %s signature does not verify", ErrBadSignature, role)}
			}
		}
	}
}

func sigsPresent(r *Receipt) error {
	for _, s := range []struct {
		role string
		sig  []byte
	}{{"client", r.ClientSig}, {"server", r.ServerSig}} {
		if len(s.sig) == 0 {
			return &RejectError{Reason: ReasonMissingSig, Err: fmt.Errorf("%w: no %s signature", ErrMissingSignature, s.role)}
		}
		if len(s.sig) != voi.SignatureSize {
			return &RejectError{Reason: ReasonBadSig, Err: fmt.Errorf("%w: %s signature of %d bytes", ErrBadSignature, s.role, len(s.sig))}
		}
	}
	return nil
}

// verifiedKey names a receipt with both its signatures: the server's
// payload covers the body and the client's signature.
func verifiedKey(r *Receipt) [32]byte {
	var buf [640]byte // on the stack for any receipt within MaxEncoded
	b := r.appendServerPayload(buf[:0])
	return sha256.Sum256(append(b, r.ServerSig...))
}

// expandedKey returns the precomputed form of id's Ed25519 key.
func expandedKey(id peer.ID, role string) (*voi.ExpandedPublicKey, error) {
	if k, ok := expanded.Get(id); ok {
		return k, nil
	}
	bad := func(why string, args ...any) error {
		return &RejectError{Reason: ReasonBadSig, Err: fmt.Errorf("%w: %s %s", ErrBadSignature, role, fmt.Sprintf(why, args...))}
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, bad("peer ID %s carries no public key: %v", id, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, bad("key is %s, receipts take Ed25519", pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != voi.PublicKeySize {
		return nil, bad("key is malformed")
	}
	k, err := voi.NewExpandedPublicKey(voi.PublicKey(raw))
	if err != nil {
		return nil, bad("key does not decode: %v", err)
	}
	expanded.Add(id, k)
	return k, nil
}

// Process-wide memory of verification work. Both hold facts about bytes
// (this receipt's signatures verify; this is that key's expanded form),
// so sharing them between the nodes of one process is sound.
var (
	// verified holds receipts whose two signatures verified: a receipt
	// lives from its gossip validation to the state machines that apply
	// its block an epoch or two later, and 20,000 receipts/s over two
	// 10 s epochs is 400,000 of them.
	verified = mustLRU[[32]byte, struct{}](1 << 19)
	// expanded holds keys (~1.5 KiB each): servers recur in every batch.
	expanded = mustLRU[peer.ID, *voi.ExpandedPublicKey](1 << 13)
)

func mustLRU[K comparable, V any](size int) *lru.Cache[K, V] {
	c, err := lru.New[K, V](size)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return c
}
