package ledger

import (
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/pod"
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

// The same shape of block as the bench of the committee (ore bench
// ledger): each client fetches one publisher's root from many servers,
// under rules 3 (every receipt of registered content pays, no ticket) and
// under rules 4 with one ticket per client, on the ledger a block before.
// The difference per receipt is what the ledger's ticket checks cost
// (the ticket's signature is checked once, when its transaction applies).
//
//	go test -run XXX -bench 'Mix' -benchtime 20x ./ledger/
func benchMix(b *testing.B, tickets bool) (*State, *Block) {
	b.Helper()
	f := newFixture(b, 10, 100, 100, 1<<50)
	if tickets {
		f = newFixtureV4(b, 10, 100, 100, 1<<50)
	}
	var setup []Tx
	roots := make([]cid.Cid, len(f.pubs))
	for i, p := range f.pubs {
		var reg Tx
		if tickets {
			var block []byte
			roots[i], block = sizedRoot(b, string(rune('a'+i)), 1<<40, false)
			reg = NewRegisterRoot(p.ID, 2, roots[i], block, testPrice, 0)
		} else {
			roots[i] = testRoot(b, string(rune('a'+i)))
			reg = NewRegister(p.ID, 2, roots[i], 0)
		}
		setup = append(setup, f.signed(b, f.s, NewDeposit(p.ID, 0, 1<<49)), f.signed(b, f.s, reg))
	}
	f.advance(b, 1, setup...)
	ids := make([][32]byte, len(f.clis))
	if tickets {
		var tks []Tx
		for c, cli := range f.clis {
			pub := f.pubs[c%len(f.pubs)]
			tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: pub.ID, Root: roots[c%len(f.pubs)],
				Client: cli.ID, Cap: 1 << 40, Expires: 100, Nonce: uint64(c)}
			if err := tk.Sign(pub.Key); err != nil {
				b.Fatal(err)
			}
			ids[c] = tk.ID()
			tks = append(tks, NewTicketTx(tk))
		}
		f.advance(b, 2, tks...)
	}
	txs := make([]Tx, benchReceipts)
	for i := range txs {
		c := i / 100 % 100
		txs[i] = NewReceiptTx(receipt(b, f.srvs[i%100], f.clis[c], roots[c%len(f.pubs)], 2, uint64(1+i%50)<<20, func(r *pod.Receipt) {
			if tickets {
				r.Version, r.Ticket = pod.VersionTicket, ids[c]
			}
		}))
	}
	blk, _, rej, err := Build(f.s, 2, f.com[0].ID, 0, txs)
	if err != nil || len(rej) != 0 {
		b.Fatal(err, rej)
	}
	return f.s, blk
}

func benchApplyMix(b *testing.B, tickets bool) {
	s, blk := benchMix(b, tickets)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Apply(s, blk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N*len(blk.Txs)), "µs/receipt")
}

func BenchmarkApplyMixPlain(b *testing.B)   { benchApplyMix(b, false) }
func BenchmarkApplyMixTickets(b *testing.B) { benchApplyMix(b, true) }

// BenchmarkApplyMixTicketCost applies the two blocks of the mix by turns
// in each iteration, so that both see the same share of a shared machine,
// and reports each one's time per receipt and the difference: the cost of
// the ticket checks per receipt.
func BenchmarkApplyMixTicketCost(b *testing.B) {
	ps, pb := benchMix(b, false)
	ts, tb := benchMix(b, true)
	var plain, tickets time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := Apply(ps, pb); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := Apply(ts, tb); err != nil {
			b.Fatal(err)
		}
		plain, tickets = plain+t1.Sub(t0), tickets+time.Since(t1)
	}
	per := func(d time.Duration, n int) float64 { return d.Seconds() * 1e6 / float64(b.N*n) }
	b.ReportMetric(per(plain, len(pb.Txs)), "plain-µs/receipt")
	b.ReportMetric(per(tickets, len(tb.Txs)), "tickets-µs/receipt")
	b.ReportMetric(per(tickets, len(tb.Txs))-per(plain, len(pb.Txs)), "ticket-checks-µs/receipt")
}
