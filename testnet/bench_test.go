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
		res, err := testnet.BenchTransfer(ctx, testnet.TransferConfig{Size: size}, testnet.WithDir(b.TempDir()))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.OreMBps, "ore-MB/s")
		b.ReportMetric(res.RawMBps, "raw-MB/s")
		b.ReportMetric(res.Ratio, "ore/raw")
	}
}

// BenchmarkGateway is `ore bench gateway`: TTFB and throughput of cached
// objects through the gateway next to http.FileServer in the same run.
//
//	go test -run XXX -bench Gateway -benchtime 1x ./testnet/
func BenchmarkGateway(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		figs, err := testnet.BenchGateway(ctx, []int64{1 << 20, 256 << 20}, []int{200, 10}, testnet.WithDir(b.TempDir()))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(figs[0].TTFBRatio, "ttfb-1MiB-ore/file")
		b.ReportMetric(figs[1].ThroughputRat, "thru-256MiB-ore/file")
	}
}

// BenchmarkGatewayCold is `ore bench gateway --cold`: cache misses, the
// body's first byte next to a fetch's first leaf.
//
//	go test -run XXX -bench GatewayCold -benchtime 1x ./testnet/
func BenchmarkGatewayCold(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		figs, err := testnet.BenchGatewayCold(ctx, []int64{1 << 20, 256 << 20}, 5, nil, testnet.WithDir(b.TempDir()))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(figs[1].TTFBp50, "ttfb-256MiB-ms")
		b.ReportMetric(figs[1].LeafRatio, "ttfb/first-leaf")
	}
}

// TestBenchGatewayColdMeasures runs the cold bench small: every request
// is a cache miss answered in full, and each figure was measured.
func TestBenchGatewayColdMeasures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	figs, err := testnet.BenchGatewayCold(ctx, []int64{300 << 10, 3 << 20}, 2, nil, testnet.WithDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 2 {
		t.Fatalf("%d figures for 2 sizes", len(figs))
	}
	for _, f := range figs {
		if f.Rounds != 2 || f.TTFBp50 <= 0 || f.FirstLeafp50 <= 0 || f.TotalP50 < f.TTFBp50 || f.RangeP50 <= 0 || f.MBps <= 0 {
			t.Errorf("%d B: figures not all measured: %+v", f.Bytes, f)
		}
	}
}

// BenchmarkGatewayAbuse is a short `ore bench gateway --abuse`.
//
//	go test -run XXX -bench GatewayAbuse -benchtime 1x ./testnet/
func BenchmarkGatewayAbuse(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		f, err := testnet.BenchGatewayAbuse(ctx, testnet.AbuseConfig{Duration: 20 * time.Second}, testnet.WithDir(b.TempDir()))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(f.HonestFraction, "honest-answered")
		b.ReportMetric(f.HonestP99Ms, "honest-p99-ms")
		b.ReportMetric(f.PeakRSSMB, "peak-rss-MiB")
	}
}

// BenchmarkLedger is a short `ore bench ledger` (TCP, as its default).
//
//	go test -run XXX -bench Ledger -benchtime 1x ./testnet/
func BenchmarkLedger(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		f, err := testnet.BenchLedger(ctx, testnet.LedgerConfig{Rate: 5000, Duration: 5 * time.Second, Epoch: 2 * time.Second}, testnet.WithDir(b.TempDir()), testnet.WithTCPOnly())
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(f.FinalizedPerSec, "receipts/s")
		b.ReportMetric(f.SteadyPerSec, "steady-receipts/s")
		b.ReportMetric(f.P99Epochs, "p99-epochs")
		b.ReportMetric(f.CPUPerReceipt, "cpu-µs/receipt")
	}
}

// BenchmarkSwarm is a small `ore bench swarm`: a crowd of 20 boxes fetches
// a 16 MiB file, with heat scheduling off and on. It reports the origin's
// upload over the content size and the crowd's time over one box's.
//
//	go test -run XXX -bench Swarm -benchtime 1x ./testnet/
func BenchmarkSwarm(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, on := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			res, err := testnet.BenchSwarm(ctx, testnet.SwarmConfig{Boxes: 20, Size: 16 << 20, Scheduling: on})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			mode := "off"
			if on {
				mode = "on"
			}
			b.ReportMetric(res.OriginRatio, "origin/size-"+mode)
			b.ReportMetric(res.CrowdOverOne, "crowd/one-"+mode)
		}
	}
}
