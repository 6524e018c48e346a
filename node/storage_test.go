package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/storeproof"
	"github.com/orecdn/ore/testnet"
)

// On a network of rules 5, a publisher offers storage of a root it
// pre-warmed; the boxes the committee orders to hold it answer the
// round's challenges from their stores and are paid for the round, and
// their status shows the proof record.
func TestOrderedBoxesProveStorage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The chain starts 40 epochs before round 1 begins: round 0's window
	// may pass while the root is placed, round 1's comes soon after.
	start := time.Now().Add(-(storeproof.RoundEpochs - 40) * time.Second)
	nw, err := testnet.New(ctx, 6, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(10*time.Second)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 50},
			EpochLength: time.Second, Network: "ore-storage-test", Rules: ledger.RulesV5, GenesisTime: start}))
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
	until := pub.Network().EpochAt(time.Now()) + 2*storeproof.RoundEpochs
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

	var proven []node.StorageView
	var box int
	testkit.WaitFor(t, 150*time.Second, "an ordered box paid for a proven round", func() bool {
		st, err := pub.LedgerState(ctx)
		if err != nil {
			return false
		}
		for i, n := range nw.Nodes {
			for _, v := range node.StorageViews(st, n.ID()) {
				if v.Proofs > 0 && v.Earned > 0 {
					proven, box = []node.StorageView{v}, i
					return true
				}
			}
		}
		return false
	})
	v := proven[0]
	if v.Root != res.Root.String() || v.Bytes == 0 || v.PerEpoch == 0 || v.Revoked {
		t.Fatalf("proof record %+v", v)
	}
	st, err := nw.Nodes[box].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ledger == nil || len(st.Ledger.Storage) == 0 || st.Ledger.Storage[0].Proofs == 0 {
		t.Fatalf("box %d's status shows no proof record: %+v", box, st.Ledger)
	}
}
