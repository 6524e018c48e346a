package testnet

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// LedgerFigures are what BenchLedger measured.
type LedgerFigures struct {
	Receipts       int     `json:"receipts"`
	Seconds        float64 `json:"seconds"`        // first publish to last receipt in a final block
	ReceiptsPerSec float64 `json:"receipts_per_s"` // finalized
	P50Seconds     float64 `json:"latency_p50_s"`  // publish to final block
	P99Seconds     float64 `json:"latency_p99_s"`
	P99Epochs      float64 `json:"latency_p99_epochs"`
	Blocks         int     `json:"blocks"`
	EpochSeconds   float64 `json:"epoch_s"`
}

type benchParty struct {
	k  crypto.PrivKey
	id peer.ID
}

func newBenchParty() benchParty {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	return benchParty{k, id}
}

// BenchLedger runs a 3-coordinator committee and a publisher box in this
// process on loopback, gossips n signed receipts for registered content from
// the publisher box, and measures how fast they land in final blocks.
func BenchLedger(ctx context.Context, n int, epoch time.Duration, opts ...Option) (LedgerFigures, error) {
	figs := LedgerFigures{Receipts: n, EpochSeconds: epoch.Seconds()}
	nw, err := New(ctx, 4, append(opts, WithLedger(LedgerSpec{
		Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 60}, EpochLength: epoch, Network: "ore-bench"}))...)
	if err != nil {
		return figs, err
	}
	defer nw.Close()
	g, pub := nw.Genesis, nw.Nodes[3]
	h, _ := mh.Sum([]byte(fmt.Sprint("bench", time.Now().UnixNano())), mh.SHA2_256, -1)
	root := cid.NewCidV1(cid.DagProtobuf, h)
	for i, tx := range []ledger.Tx{ledger.NewDeposit("", 0, 1<<59), ledger.NewRegister("", 0, root, 0)} {
		if _, err := pub.SignAndSubmit(ctx, tx); err != nil {
			return figs, err
		}
		// The next nonce comes from the final chain the box syncs: wait
		// until this transaction is final.
		want := uint64(i + 1)
		for {
			st, _, err := pub.LedgerView(ctx)
			if err == nil && st.Nonce(pub.ID()) >= want {
				break
			}
			select {
			case <-ctx.Done():
				return figs, fmt.Errorf("testnet: the publisher's transaction %d is not final: %w", want, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Keys first: 64 servers, a new client every 64 receipts, so every
	// receipt is its own (server, client, root, epoch).
	servers := make([]benchParty, 64)
	for i := range servers {
		servers[i] = newBenchParty()
	}
	clients := make([]benchParty, (n+63)/64)
	for i := range clients {
		clients[i] = newBenchParty()
	}
	params := g.Params()
	rs := make([]*pod.Receipt, n)
	ep := params.EpochAt(time.Now())
	for i := range rs {
		srv, cli := servers[i%64], clients[i/64]
		r := &pod.Receipt{Version: pod.Version, Network: g.Network, Epoch: ep, Server: srv.id, Client: cli.id,
			Root: root, Seq: 1, Bytes: 1 << 20, Blocks: 4}
		if err := r.SignClient(cli.k); err != nil {
			return figs, err
		}
		if err := r.SignServer(srv.k); err != nil {
			return figs, err
		}
		rs[i] = r
	}
	// Gossip them from the publisher box, many at once, noting when each left.
	sent := make(map[pod.Key]time.Time, n)
	var mu sync.Mutex
	start := time.Now()
	work := make(chan *pod.Receipt)
	var wg sync.WaitGroup
	var pubErr error
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				t := time.Now()
				if err := pub.GossipReceipt(ctx, r); err != nil {
					mu.Lock()
					pubErr = err
					mu.Unlock()
					continue
				}
				mu.Lock()
				sent[r.Key()] = t
				mu.Unlock()
			}
		}()
	}
	for _, r := range rs {
		work <- r
	}
	close(work)
	wg.Wait()
	if pubErr != nil {
		return figs, pubErr
	}
	// Watch the committee's final blocks.
	var lat []time.Duration
	seen := 0
	next := uint64(1)
	var last time.Time
	for seen < n {
		li, err := nw.Leader(ctx)
		if err != nil {
			return figs, err
		}
		c := nw.Nodes[li].Committee()
		b, ok := c.Block(next)
		if !ok || !b.Final(g) {
			select {
			case <-ctx.Done():
				return figs, fmt.Errorf("testnet: %d of %d receipts final when the bench ran out of time", seen, n)
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		now := time.Now()
		for _, tx := range b.Txs {
			if tx.Kind != ledger.KindReceipt {
				continue
			}
			if t, ok := sent[tx.Receipt.Key()]; ok {
				lat = append(lat, now.Sub(t))
				seen++
				last = now
			}
		}
		figs.Blocks++
		next++
	}
	figs.Seconds = last.Sub(start).Seconds()
	figs.ReceiptsPerSec = float64(n) / figs.Seconds
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	figs.P50Seconds = lat[len(lat)/2].Seconds()
	figs.P99Seconds = lat[(len(lat)*99)/100].Seconds()
	figs.P99Epochs = figs.P99Seconds / epoch.Seconds()
	return figs, nil
}
