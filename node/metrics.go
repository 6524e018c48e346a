package node

import (
	"fmt"
	"sync"

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
	for _, c := range append(cs, tableGauges(n)...) {
		if err := n.reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: register metrics: %w", err)
		}
	}
	return m, nil
}

// tableGauges are the sizes of the box's tables that remote peers feed
// (the pod service, the scheduler, the intake pool and the gateway
// register their own), each bounded: the help says how.
func tableGauges(n *Node) []prometheus.Collector {
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	locked := func(mu *sync.Mutex, f func() int) func() int {
		return func() int {
			mu.Lock()
			defer mu.Unlock()
			return f()
		}
	}
	tables := func(f func(bitswap.Tables) int) func() int { return func() int { return f(n.ex.Tables()) } }
	return []prometheus.Collector{
		gauge("ore_traffic_peers", fmt.Sprintf("Peers whose bitswap traffic is counted (at most %d).", maxTrafficPeers), n.traffic.len),
		gauge("ore_recent_blocks", fmt.Sprintf("Blocks remembered as received lately (at most %d).", maxRecentBlocks), n.recent.c.Len),
		gauge("ore_complete_roots", fmt.Sprintf("Roots remembered as wholly local (at most %d, then forgotten all at once).", maxComplete),
			locked(&n.completeMu, func() int { return len(n.complete) })),
		gauge("ore_fetches_running", "Roots being fetched now (this box's own fetches, replication orders and gateway fills).",
			locked(&n.completeMu, func() int { return len(n.fetches) })),
		gauge("ore_fetch_sources", fmt.Sprintf("Providers the running fetches hold as sources (at most %d a fetch).", fetchSources),
			locked(&n.sources.mu, func() int { return len(n.sources.n) })),
		gauge("ore_dht_store_records", "Provider records and values the DHT keeps for other peers (at most 262,144 and 64 MiB).",
			func() int { return n.router.StoreStats().Keys }),
		gauge("ore_dht_store_bytes", "Bytes of the DHT's records (at most 64 MiB).",
			func() int { return int(n.router.StoreStats().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ore_dht_store_refused_total", Help: "DHT records refused because the store was full."},
			func() float64 { return float64(n.router.StoreStats().Refused) }),
		gauge("ore_bitswap_held_peers", "Peers the credit gate holds blocks back for (forgotten when they disconnect).",
			tables(func(t bitswap.Tables) int { return t.HeldPeers })),
		gauge("ore_bitswap_held_blocks", "Blocks the credit gate holds back (at most 8,192 a connected peer).",
			tables(func(t bitswap.Tables) int { return t.HeldBlocks })),
		gauge("ore_bitswap_spread_held_wants", "Wants the spreader holds back (a connected peer's wantlist at most).",
			tables(func(t bitswap.Tables) int { return t.SpreadHeld })),
		gauge("ore_bitswap_spread_sends", "Seed sends the spreader remembers (5 minutes; pruned past 65,536).",
			tables(func(t bitswap.Tables) int { return t.SpreadSent })),
		gauge("ore_bitswap_late_cancels", "Cancels remembered so that blocks packed before them are not sent (at most 8,192 a connected peer).",
			tables(func(t bitswap.Tables) int { return t.LateCancels })),
	}
}
