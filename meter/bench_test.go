package meter

import (
	"fmt"
	"testing"

	blocks "github.com/ipfs/go-block-format"

	"github.com/orecdn/ore/internal/testkit"
)

// BenchmarkServerMeterPerBlock is the server meter's cost per block sent:
// the gate's Allow for a 256 KiB block, and a quarter of the meter's
// check and draw-down for a receipt that claims four of them (1 MiB, the
// default receipt interval). Signatures and the store are left out: the
// receipt exchange costs the same whatever the meter does.
func BenchmarkServerMeterPerBlock(b *testing.B) {
	rg := newRig(b)
	s := rg.server()
	cli := testkit.NewParty(b).ID
	const size = 256 << 10
	leaves := make([]blocks.Block, 1024)
	for i := range leaves {
		leaves[i] = rawBlock(b, fmt.Appendf(nil, "leaf %d", i))
	}
	root := putDAG(b, s, leaves...)
	dag, err := s.dag.get(rg.ctx, root.Cid(), 0, false)
	if err != nil || dag == nil {
		b.Fatal(err)
	}
	e := rg.epoch()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if !s.Allow(cli, leaves[i%len(leaves)].Cid(), size) {
			b.Fatal("held back")
		}
		if i%4 == 3 {
			if have, _, _ := s.claimable(cli, dag, e); have < 4*size {
				b.Fatalf("%d claimable", have)
			}
			s.claim(cli, dag, e, 4*size)
			s.credit(cli, 4*size)
		}
	}
}
