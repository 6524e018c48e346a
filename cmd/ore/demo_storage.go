package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/storeproof"
	"github.com/orecdn/ore/testnet"
)

// The demo's storage: rounds of 10 epochs (20 s), a price per GiB per
// epoch, and the boxes the offer pays.
const (
	demoStorageRound    = 10
	demoStoragePrice    = oreUnit
	demoStorageReplicas = 4
)

// submitFinal signs tx as box i, submits it and waits until a final block
// holds it.
func (d *demo) submitFinal(ctx context.Context, i int, tx ledger.Tx) error {
	return testnet.SubmitFinal(ctx, d.net.Nodes[i], tx, 15*demoEpoch)
}

// storage offers storage of the file, waits for a round of paid proofs,
// then deletes the file's blocks on one proven box and waits until the
// ledger revoked its storage and took it off the order.
func (d *demo) storage(ctx context.Context) (string, error) {
	pub := d.net.Nodes[d.publisher]
	root := d.added.Root
	st, err := pub.LedgerState(ctx)
	if err != nil {
		return "", err
	}
	g := st.Genesis()
	until := st.Epoch() + 30*g.ChallengeRound()
	offer, err := pub.StorageTx(ctx, root, demoStoragePrice, demoStorageReplicas, until)
	if err != nil {
		return "", err
	}
	if err := d.submitFinal(ctx, d.publisher, offer); err != nil {
		return "", err
	}
	if err := d.submitFinal(ctx, d.publisher, ledger.NewPrewarm("", 0, root, demoStorageReplicas, until)); err != nil {
		return "", err
	}
	if st, err = pub.LedgerState(ctx); err != nil {
		return "", err
	}
	o, _ := st.StorageOffer(root)
	var b strings.Builder
	fmt.Fprintf(&b, "box %d committed to its %s in %d segments of %d bytes (Merkle root %x…) and offered %s per GiB per epoch to %d boxes until epoch %d, with a pre-warm of %d\n",
		d.publisher, humanize.IBytes(o.Commitment.Length), storeproof.Segments(o.Commitment.Length), storeproof.SegmentSize, o.Commitment.Root[:6],
		formatOre(o.Price), o.Replicas, o.Until, demoStorageReplicas)
	fmt.Fprintf(&b, "reserved %s from its escrow: %s a replica per round of %d epochs, each round opened by a quorum's signatures of the block before\n",
		formatOre(o.Reserved), formatOre(g.RoundPay(o.Commitment.Length, o.Price)), g.ChallengeRound())

	// A round of paid proofs.
	records := func(st *ledger.State) map[int]node.StorageView {
		out := make(map[int]node.StorageView)
		for i, n := range d.net.Nodes {
			for _, v := range node.StorageViews(st, n.ID()) {
				if v.Root == root.String() {
					out[i] = v
				}
			}
		}
		return out
	}
	wait := 6 * time.Duration(g.ChallengeRound()) * demoEpoch
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var proven []int
	var recs map[int]node.StorageView
	for len(proven) == 0 {
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("no box proved the file within %s (boxes ordered: %v)", wait, d.ordered(st, root))
		case <-time.After(200 * time.Millisecond):
		}
		if st, err = pub.LedgerState(wctx); err != nil {
			continue
		}
		recs = records(st)
		for i, v := range recs {
			if v.Proofs > 0 && v.Earned > 0 {
				proven = append(proven, i)
			}
		}
	}
	slices.Sort(proven)
	bk, _ := st.Beacon()
	fmt.Fprintf(&b, "round %d (beacon in epoch %d): boxes %s each answered %d challenged segments with their Merkle paths; paid:", bk.Round, bk.Epoch,
		joinBoxes(proven), storeproof.ChallengesPerRound)
	for _, i := range proven {
		fmt.Fprintf(&b, " box %d %s", i, formatOre(recs[i].Earned))
	}
	b.WriteString("\n")

	// One of them on the order deletes its copy: every block under the
	// root (preferably not the publisher's or a coordinator's box).
	onOrder := d.ordered(st, root)
	victim := -1
	for _, i := range proven {
		if slices.Contains(onOrder, i) && (victim < 0 || i != d.publisher && !slices.Contains(d.coordinators, i)) {
			victim = i
		}
	}
	if victim < 0 {
		return "", fmt.Errorf("no box that proved the file is on its order (boxes %v proved, the order names %v)", proven, onOrder)
	}
	deletedRound := bk.Round
	vn := d.net.Nodes[victim]
	rb, err := vn.Store().Get(ctx, root)
	if err != nil {
		return "", err
	}
	nd, err := merkledag.DecodeProtobuf(rb.RawData())
	if err != nil {
		return "", err
	}
	for _, l := range nd.Links() {
		if err := vn.Store().DeleteBlock(ctx, l.Cid); err != nil {
			return "", err
		}
	}
	before := recs[victim]
	fmt.Fprintf(&b, "box %d deleted the file's %d leaves (it had earned %s for %d proofs)\n", victim, len(nd.Links()), formatOre(before.Earned), before.Proofs)

	wait = time.Duration(storeproof.MaxMisses+3) * time.Duration(g.ChallengeRound()) * demoEpoch
	rctx, rcancel := context.WithTimeout(ctx, wait)
	defer rcancel()
	var after node.StorageView
	for {
		select {
		case <-rctx.Done():
			return "", fmt.Errorf("box %d is not revoked %s after it deleted the file: %+v", victim, wait, after)
		case <-time.After(200 * time.Millisecond):
		}
		if st, err = pub.LedgerState(rctx); err != nil {
			continue
		}
		after = records(st)[victim]
		bk, _ = st.Beacon()
		// Off the order: revoked by the ledger for its misses, or left off
		// by the planner, which believes only recent proofs.
		if !slices.Contains(d.ordered(st, root), victim) && (after.Revoked || bk.Round >= deletedRound+storeproof.MaxMisses+1) {
			break
		}
	}
	how := "the planner, which counts only holdings with recent proofs, left it off the order"
	if after.Revoked {
		how = "the ledger revoked its storage and took it off the order"
	}
	fmt.Fprintf(&b, "by round %d it missed %d rounds and earned %s more (at most the round it deleted in); %s, which now names boxes %s\n",
		bk.Round, after.Misses, formatOre(after.Earned-before.Earned), how, joinBoxes(d.ordered(st, root)))
	status, err := vn.Status(ctx)
	if err != nil {
		return "", err
	}
	if status.Ledger != nil {
		for _, v := range status.Ledger.Storage {
			if v.Root == root.String() {
				fmt.Fprintf(&b, "box %d's status: %d proofs, %d missed, earned %s", victim, v.Proofs, v.Misses, formatOre(v.Earned))
				if v.Revoked {
					fmt.Fprintf(&b, ", revoked: %s", v.Why)
				}
			}
		}
	}
	return b.String(), nil
}

// ordered are the boxes the ledger's order of root names.
func (d *demo) ordered(st *ledger.State, root cid.Cid) []int {
	_, _, _, _, boxes, _ := st.Order(root)
	return d.indexes(boxes)
}
