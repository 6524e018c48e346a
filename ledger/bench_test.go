package ledger

import (
	"sync"
	"testing"
)

// A block of 10,000 receipts from 100 servers and 100 clients over 10
// registered roots of 10 publishers.
//
//	go test -run XXX -bench . -benchtime 10x ./ledger/
const benchReceipts = 10_000

var bench struct {
	sync.Mutex
	f   *fixture
	txs []Tx
}

// benchSetup builds the fixture once for all benchmarks.
func benchSetup(b *testing.B) (*fixture, []Tx) {
	bench.Lock()
	defer bench.Unlock()
	if bench.f != nil {
		return bench.f, bench.txs
	}
	f := newFixture(b, 10, 100, 100, 1<<50)
	var setup []Tx
	for i, p := range f.pubs {
		setup = append(setup, f.signed(b, f.s, NewDeposit(p.ID, 0, 1<<49)),
			f.signed(b, f.s, NewRegister(p.ID, 2, testRoot(b, string(rune('a'+i))), 0)))
	}
	f.advance(b, 1, setup...)
	txs := make([]Tx, benchReceipts)
	for i := range txs {
		root := testRoot(b, string(rune('a'+(i/7)%10)))
		txs[i] = NewReceiptTx(receipt(b, f.srvs[i%100], f.clis[i/100%100], root, 2, uint64(1+i%50)<<20, nil))
	}
	bench.f, bench.txs = f, txs
	return f, txs
}

func BenchmarkApplyReceipts(b *testing.B) {
	f, txs := benchSetup(b)
	blk, _, rej, err := Build(f.s, 2, f.com[0].ID, 0, txs)
	if err != nil || len(rej) != 0 {
		b.Fatal(err, rej)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Apply(f.s, blk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(txs))/b.Elapsed().Seconds(), "receipts/s")
}

func BenchmarkBuild(b *testing.B) {
	f, txs := benchSetup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, rej, err := Build(f.s, 2, f.com[0].ID, 0, txs); err != nil || len(rej) != 0 {
			b.Fatal(err, rej)
		}
	}
	b.ReportMetric(float64(b.N*len(txs))/b.Elapsed().Seconds(), "receipts/s")
}

func BenchmarkUnmarshalBlock(b *testing.B) {
	f, txs := benchSetup(b)
	blk, _, _, _ := Build(f.s, 2, f.com[0].ID, 0, txs)
	enc := blk.Marshal()
	b.SetBytes(int64(len(enc)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := UnmarshalBlock(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(txs))/b.Elapsed().Seconds(), "receipts/s")
}
