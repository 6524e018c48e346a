package pod

import "testing"

// Receipts per second per core: sign (client), countersign (server), verify
// both signatures one by one, and batch verification on all cores.
//
//	go test -run XXX -bench . ./pod/

func benchReceipts(b *testing.B, n int) []*Receipt {
	srv, cli := newParty(b), newParty(b)
	rs := make([]*Receipt, n)
	for i := range rs {
		rs[i] = signed(b, srv, cli, func(r *Receipt) { r.Seq = uint64(i + 1) })
	}
	return rs
}

func BenchmarkSignClient(b *testing.B) {
	cli := newParty(b)
	r := benchReceipts(b, 1)[0]
	r.Client = cli.id
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Seq = uint64(i)
		if err := r.SignClient(cli.key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "receipts/s")
}

func BenchmarkVerify(b *testing.B) {
	r := benchReceipts(b, 1)[0]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := testParams.Check(r, 100, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "receipts/s")
}

// BenchmarkVerifyReceipts verifies fresh receipts (none remembered) in
// batches on all cores, as a coordinator's gossip validator does.
func BenchmarkVerifyReceipts(b *testing.B) {
	srv, cli := newParty(b), newParty(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		rs := make([]*Receipt, 2*verifyChunk)
		for i := range rs {
			n++
			rs[i] = signed(b, srv, cli, func(r *Receipt) { r.Seq = uint64(n) })
		}
		b.StartTimer()
		for _, err := range VerifyReceipts(rs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "receipts/s")
}

func BenchmarkUnmarshal(b *testing.B) {
	enc := benchReceipts(b, 1)[0].Marshal()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}
