package pod

import "testing"

// Receipts per second per core: sign (client), countersign (server), verify
// both signatures one by one, and batch verification of 64 receipts.
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

func BenchmarkBatchVerify(b *testing.B) {
	rs := benchReceipts(b, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ok, err := BatchVerify(rs)
		if err != nil || !ok {
			b.Fatal("batch failed", err)
		}
	}
	b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "receipts/s")
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
