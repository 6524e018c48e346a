package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// storageRound is the test network's challenge round: 10 epochs of 1 s,
// proofs taken for 5 epochs after each beacon.
const storageRound = 10

// On a network of rules 5, a publisher offers storage of a root it
// pre-warmed; the boxes the committee orders to hold it answer each
// round's challenges from their stores and are paid for the round, and
// their status shows the proof record. A box that then deletes part of
// the root misses its rounds, earns nothing more, and after MaxMisses its
// storage is revoked and the ledger's order no longer names it.
func TestOrderedBoxesProveStorage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nw, err := testnet.New(ctx, 6, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(10*time.Second)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 50},
			EpochLength: time.Second, Network: "ore-storage-test", Rules: ledger.RulesV5, StorageRound: storageRound}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	pub := nw.Nodes[3]
	path, _ := randomFile(t, 1<<20)
	res, err := pub.AddPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	until := pub.Network().EpochAt(time.Now()) + 600
	submitFinal(t, ctx, pub, ledger.NewDeposit("", 0, 1<<45))
	reg, err := pub.RegisterTx(ctx, res.Root, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	submitFinal(t, ctx, pub, reg)
	offer, err := pub.StorageTx(ctx, res.Root, 1<<30, 2, until)
	if err != nil {
		t.Fatal(err)
	}
	submitFinal(t, ctx, pub, offer)
	submitFinal(t, ctx, pub, ledger.NewPrewarm("", 0, res.Root, 2, until))

	view := func(st *ledger.State, i int) (node.StorageView, bool) {
		for _, v := range node.StorageViews(st, nw.Nodes[i].ID()) {
			if v.Root == res.Root.String() {
				return v, true
			}
		}
		return node.StorageView{}, false
	}
	box := -1
	testkit.WaitFor(t, 90*time.Second, "an ordered box paid for a proven round", func() bool {
		st, err := pub.LedgerState(ctx)
		if err != nil {
			return false
		}
		for i := range nw.Nodes {
			if v, ok := view(st, i); ok && v.Proofs > 0 && v.Earned > 0 {
				box = i
				return true
			}
		}
		return false
	})
	// The box's own view (a coordinator's state may be a block behind).
	var st node.Status
	testkit.WaitFor(t, 30*time.Second, "the proof record in the box's status", func() bool {
		if st, err = nw.Nodes[box].Status(ctx); err != nil {
			t.Fatal(err)
		}
		return st.Ledger != nil && len(st.Ledger.Storage) > 0 && st.Ledger.Storage[0].Proofs > 0
	})
	if st.Ledger.Storage[0].PerEpoch == 0 || st.Ledger.Storage[0].Earned == 0 {
		t.Fatalf("box %d's status: %+v", box, st.Ledger.Storage[0])
	}

	// The box deletes a leaf of the root: its challenges that fall there
	// (a quarter of the bytes) cannot be answered, and a proof needs them all.
	rb, err := nw.Nodes[box].Store().Get(ctx, res.Root)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := merkledag.DecodeProtobuf(rb.RawData())
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Nodes[box].Store().DeleteBlock(ctx, nd.Links()[1].Cid); err != nil {
		t.Fatal(err)
	}
	ls, err := pub.LedgerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := view(ls, box)
	var after node.StorageView
	testkit.WaitFor(t, 120*time.Second, "the box that deleted part of the root revoked", func() bool {
		st, err := pub.LedgerState(ctx)
		if err != nil {
			return false
		}
		after, _ = view(st, box)
		_, _, _, _, boxes, _ := st.Order(res.Root)
		return after.Revoked && !slices.Contains(boxes, nw.Nodes[box].ID())
	})
	// At most the round it was in when it deleted: a round's pay.
	if perRound := after.PerEpoch * storageRound; after.Earned > before.Earned+perRound+storageRound {
		t.Fatalf("the box earned %d after deleting part of the root (from %d; a round pays about %d)", after.Earned, before.Earned, perRound)
	}
	if after.Why == "" {
		t.Fatal("the revoked record says nothing of why")
	}
}
