package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// A crowd fetching from one seed on a mocknet: with spreading the seed
// sends each block about once and the crowd trades the rest; every fetch
// completes (held-back wants are delayed, never refused).
func TestSpreadSeedSendsEachBlockAboutOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hold     time.Duration
		maxRatio float64 // origin bytes / size
		minRatio float64
	}{
		{"spread", 20 * time.Second, 2, 0},
		// Without spreading the seed answers first and sends most of
		// every copy: the figure above is spreading's doing.
		{"off", 0, 100, 2.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const crowd = 5
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			nw, err := testnet.New(ctx, 1+crowd, testnet.WithDir(t.TempDir()),
				testnet.WithMocknet(mocknet.LinkOptions{}),
				// Bitswap with and without spreading: a seed that does
				// not spread serves bulk streams (see node.WithBulk).
				testnet.WithNodeOptions(node.WithSpread(tc.hold), node.WithReceipts(false), node.WithBulk(false)))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := nw.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			const size = 8 << 20
			src, want := randomFile(t, size)
			added, err := nw.Nodes[0].AddPath(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, crowd)
			for i := 1; i <= crowd; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					_, errs[i-1] = nw.Nodes[i].Fetch(ctx, added.Root, nil)
				}(i)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("box %d: %v", i+1, err)
				}
			}
			for i := 1; i <= crowd; i++ {
				out := t.TempDir() + "/out.bin"
				if _, err := nw.Nodes[i].Get(ctx, added.Root, out, nil); err != nil {
					t.Fatal(err)
				}
				if fileHash(t, out) != want {
					t.Fatalf("box %d got different bytes", i)
				}
			}
			st, err := nw.Nodes[0].Exchange().Stats()
			if err != nil {
				t.Fatal(err)
			}
			ratio := float64(st.DataSent) / size
			t.Logf("seed sent %.2f× the size to a crowd of %d", ratio, crowd)
			if ratio > tc.maxRatio || ratio < tc.minRatio {
				t.Fatalf("seed sent %.2f× the size, want within [%.1f, %.1f]", ratio, tc.minRatio, tc.maxRatio)
			}
		})
	}
}
