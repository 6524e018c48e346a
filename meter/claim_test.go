package meter

import (
	"fmt"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/pod"
)

// claimRig is a server that holds roots A (a node over three leaves) and
// B (a node over two leaves of its own and A's first leaf, shared), and a
// client whose receipts a test crafts.
type claimRig struct {
	*rig
	s       *Server
	cli     testkit.Party
	a, b    blocks.Block   // the roots
	aLeaves []blocks.Block // a's
	bOwn    []blocks.Block // b's, not a's
	seq     map[cid.Cid]uint64
}

func newClaimRig(t *testing.T) *claimRig {
	rg := newRig(t)
	cr := &claimRig{rig: rg, s: rg.server(), cli: testkit.NewParty(t), seq: map[cid.Cid]uint64{}}
	for i := range 3 {
		cr.aLeaves = append(cr.aLeaves, rawBlock(t, fmt.Appendf(nil, "leaf %d of A %0*d", i, 1000+i, 0)))
	}
	for i := range 2 {
		cr.bOwn = append(cr.bOwn, rawBlock(t, fmt.Appendf(nil, "leaf %d of B %0*d", i, 2000+i, 0)))
	}
	cr.a = putDAG(t, cr.s, cr.aLeaves...)
	cr.b = putDAG(t, cr.s, append([]blocks.Block{cr.aLeaves[0]}, cr.bOwn...)...)
	return cr
}

// send lets blocks through the gate to the client.
func (cr *claimRig) send(bs ...blocks.Block) uint64 {
	cr.t.Helper()
	var n uint64
	for _, b := range bs {
		if !cr.s.Allow(cr.cli.ID, b.Cid(), len(b.RawData())) {
			cr.t.Fatal("the gate held back a block under the window")
		}
		n += uint64(len(b.RawData()))
	}
	return n
}

// claim sends the client's next receipt for root, of total bytes in
// epoch e, and returns the server's answer.
func (cr *claimRig) claim(root cid.Cid, e, bytes uint64) error {
	cr.t.Helper()
	cr.seq[root]++
	r := &pod.Receipt{Version: pod.Version, Network: testParams.Network, Epoch: e, Server: cr.s.self, Client: cr.cli.ID,
		Root: root, Seq: cr.seq[root], Bytes: bytes, Blocks: bytes/1000 + 1}
	if err := r.SignClient(cr.cli.Key); err != nil {
		cr.t.Fatal(err)
	}
	got, err := cr.net.RoundTrip(cr.ctx, r)
	if err == nil {
		if err := got.VerifyServer(); err != nil {
			cr.t.Fatal(err)
		}
	}
	return err
}

func sizeOf(bs ...blocks.Block) uint64 {
	var n uint64
	for _, b := range bs {
		n += uint64(len(b.RawData()))
	}
	return n
}

func wantReason(t *testing.T, what string, err error, want pod.Reason) {
	t.Helper()
	if got := pod.ReasonOf(err); got != want {
		t.Fatalf("%s: %v (reason %q), want a refusal for %s", what, err, got, want)
	}
}

// TestServerSignsOnlyWhatItSentOfTheRoot: a client that received root A's
// blocks cannot claim them under root B, nor under a root the server does
// not hold, nor more than it was sent of A, nor in an epoch far from the
// one they were sent in; the honest receipt is countersigned, and the
// blocks it claimed cannot be claimed again.
func TestServerSignsOnlyWhatItSentOfTheRoot(t *testing.T) {
	cr := newClaimRig(t)
	e := cr.epoch()
	sentA := cr.send(append([]blocks.Block{cr.a}, cr.aLeaves[1:]...)...) // A without the leaf it shares with B

	wantReason(t, "A's bytes claimed under B", cr.claim(cr.b.Cid(), e, sentA), pod.ReasonNotServed)
	nowhere := rawBlock(t, []byte("a root this server does not hold")).Cid()
	wantReason(t, "A's bytes claimed under a root the server does not hold", cr.claim(nowhere, e, sentA), pod.ReasonNotServed)
	wantReason(t, "A claimed with one byte more than sent", cr.claim(cr.a.Cid(), e, sentA+1), pod.ReasonUnsent)
	far := e + 2*testParams.MaxSkew
	cr.clock.Advance(testParams.EpochLength * 3)
	wantReason(t, "A claimed in an epoch far from the one it was sent in", cr.claim(cr.a.Cid(), far, sentA), pod.ReasonNotServed)

	if err := cr.claim(cr.a.Cid(), e, sentA); err != nil {
		t.Fatalf("the honest receipt for A was refused: %v", err)
	}
	wantReason(t, "A claimed again with more bytes", cr.claim(cr.a.Cid(), e, sentA+sizeOf(cr.aLeaves[0])), pod.ReasonNotServed)
}

// TestSharedBlockCountsOnce: a block in the DAGs of two roots, sent once,
// is claimed by the first receipt that names either root, and by no other.
func TestSharedBlockCountsOnce(t *testing.T) {
	cr := newClaimRig(t)
	e := cr.epoch()
	shared := cr.aLeaves[0]
	cr.send(shared, cr.bOwn[0])

	if err := cr.claim(cr.b.Cid(), e, sizeOf(shared)); err != nil {
		t.Fatalf("the shared block claimed under B: %v", err)
	}
	wantReason(t, "the shared block claimed again under A", cr.claim(cr.a.Cid(), e, sizeOf(shared)), pod.ReasonNotServed)
	wantReason(t, "B claims the shared block and its own leaf once more", cr.claim(cr.b.Cid(), e, 2*sizeOf(shared)+sizeOf(cr.bOwn[0])), pod.ReasonUnsent)
	if err := cr.claim(cr.b.Cid(), e, sizeOf(shared, cr.bOwn[0])); err != nil {
		t.Fatalf("B's own leaf claimed under B: %v", err)
	}
}

// TestRefundedBlockCannotBeClaimed: a block the gate counted but that did
// not leave (Refund) is not in the meter.
func TestRefundedBlockCannotBeClaimed(t *testing.T) {
	cr := newClaimRig(t)
	e := cr.epoch()
	n := cr.send(cr.a, cr.aLeaves[0])
	cr.s.Refund(cr.cli.ID, cr.aLeaves[0].Cid(), len(cr.aLeaves[0].RawData()))
	wantReason(t, "a refunded block claimed", cr.claim(cr.a.Cid(), e, n), pod.ReasonUnsent)
	if err := cr.claim(cr.a.Cid(), e, sizeOf(cr.a)); err != nil {
		t.Fatalf("the block that left, claimed: %v", err)
	}
}

// TestPartialDAGIsWalkedAgain: a server that gets more of a root's DAG
// after a receipt made it walk the DAG (it fetches the root while it
// serves it) countersigns claims for the blocks it got later.
func TestPartialDAGIsWalkedAgain(t *testing.T) {
	rg := newRig(t)
	s := rg.server()
	cli := testkit.NewParty(t)
	leaf := rawBlock(t, []byte("a leaf under an inner node the server gets later"))
	inner := putDAG(t, s, leaf)
	root := putDAG(t, s, inner)
	cr := &claimRig{rig: rg, s: s, cli: cli, seq: map[cid.Cid]uint64{}}
	// The server holds only the root at first.
	if err := s.dag.blocks.(blockstore.Blockstore).DeleteBlock(rg.ctx, inner.Cid()); err != nil {
		t.Fatal(err)
	}
	e := cr.epoch()
	cr.send(root)
	if err := cr.claim(root.Cid(), e, sizeOf(root)); err != nil {
		t.Fatalf("the root's block claimed: %v", err)
	}
	// Now it has the rest and sends the leaf.
	if err := s.dag.blocks.(blockstore.Blockstore).Put(rg.ctx, inner); err != nil {
		t.Fatal(err)
	}
	cr.send(leaf)
	if err := cr.claim(root.Cid(), e, sizeOf(root, leaf)); err != nil {
		t.Fatalf("a block the server got after the first walk: %v", err)
	}
}
