package node

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/bitswap"
)

// metrics are the box's own Prometheus series; libp2p registers its own
// into the same registry.
type metrics struct {
	addBytes     prometheus.Counter
	fetchBytes   prometheus.Counter
	fetchBlocks  prometheus.Counter
	fetchErrors  *prometheus.CounterVec
	fetchRewants prometheus.Counter
	fetchSeconds prometheus.Histogram
	evicted      prometheus.Counter
	evictedBytes prometheus.Counter
}

func newMetrics(n *Node) (*metrics, error) {
	m := &metrics{
		addBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_add_bytes_total", Help: "File bytes added by this box."}),
		fetchBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_fetch_bytes_total", Help: "Block bytes fetched from other boxes."}),
		fetchBlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_fetch_blocks_total", Help: "Blocks fetched from other boxes."}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_fetch_errors_total", Help: "Fetches that failed, by reason."}, []string{"reason"}),
		fetchRewants: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_fetch_rewants_total", Help: "Times a fetch asked again for blocks that did not come (see rewantAfter)."}),
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ore_fetch_seconds", Help: "Duration of successful fetches.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_evicted_roots_total", Help: "Cold roots evicted under the quota."}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_evicted_bytes_total", Help: "Block bytes freed by eviction."}),
	}
	stat := func(f func(s bitswap.Stats) float64) func() float64 {
		return func() float64 {
			s, err := n.ex.Stats()
			if err != nil {
				return 0
			}
			return f(s)
		}
	}
	cs := []prometheus.Collector{
		m.addBytes, m.fetchBytes, m.fetchBlocks, m.fetchErrors, m.fetchRewants, m.fetchSeconds, m.evicted, m.evictedBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_store_used_bytes", Help: "Bytes of blocks stored."},
			func() float64 { return float64(n.store.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_store_disk_bytes", Help: "Bytes the store takes on disk (packs, dead blocks not yet collected, badger)."},
			func() float64 { return float64(n.store.DiskUsage()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_store_quota_bytes", Help: "Storage quota."},
			func() float64 { return float64(n.store.Quota()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_peers", Help: "Connected peers."},
			func() float64 { return float64(len(n.host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_dht_routing_table_peers", Help: "Peers in the DHT routing table."},
			func() float64 { return float64(n.router.RoutingTableSize()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ore_bitswap_sent_bytes_total", Help: "Block bytes served by bitswap."},
			stat(func(s bitswap.Stats) float64 { return float64(s.DataSent) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ore_bitswap_sent_blocks_total", Help: "Blocks served by bitswap."},
			stat(func(s bitswap.Stats) float64 { return float64(s.BlocksSent) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ore_bitswap_received_bytes_total", Help: "Block bytes received by bitswap."},
			stat(func(s bitswap.Stats) float64 { return float64(s.DataReceived) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ore_bitswap_duplicate_blocks_total", Help: "Blocks received more than once."},
			stat(func(s bitswap.Stats) float64 { return float64(s.DupBlocks) })),
	}
	for _, c := range cs {
		if err := n.reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: register metrics: %w", err)
		}
	}
	return m, nil
}
