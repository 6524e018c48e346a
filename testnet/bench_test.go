package testnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/orecdn/ore/testnet"
)

// BenchmarkTransfer is `ore bench transfer` as a Go benchmark: one box
// fetches a file from another over loopback. It reports ore's MB/s, the raw
// libp2p stream's MB/s in the same run, and their ratio.
//
//	go test -run XXX -bench Transfer -benchtime 1x ./testnet/
func BenchmarkTransfer(b *testing.B) {
	const size = 256 << 20
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		res, err := testnet.BenchTransfer(ctx, size, testnet.WithDir(b.TempDir()))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.OreMBps, "ore-MB/s")
		b.ReportMetric(res.RawMBps, "raw-MB/s")
		b.ReportMetric(res.Ratio, "ore/raw")
	}
}
