package node

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestTrafficTableIsBounded: traffic counts at most maxTrafficPeers peers;
// a new one past it pushes out the peer that exchanged the fewest bytes,
// not one that exchanged many. It used to keep every peer that ever asked
// for a block.
func TestTrafficTableIsBounded(t *testing.T) {
	tr := newTraffic()
	big := peer.ID("a peer that took a lot")
	for range 10 {
		tr.sent(big, rawBlock(t, make([]byte, 1<<10)))
	}
	b := rawBlock(t, []byte("one small block"))
	for i := 1; i <= maxTrafficPeers; i++ {
		tr.sent(peer.ID(fmt.Sprint("peer ", i)), b)
	}
	if n := tr.len(); n != maxTrafficPeers {
		t.Fatalf("traffic counts %d peers, want the bound %d", n, maxTrafficPeers)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.peers[big] == nil {
		t.Fatal("the peer that exchanged the most bytes was pushed out")
	}
}

// gauges returns the names of the metrics in n's registry.
func gauges(t *testing.T, n *Node) map[string]bool {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	return have
}

// TestTableGaugesAreRegistered: every bounded table a remote peer feeds
// has its size in the box's registry, the gateway's on a gateway.
func TestTableGaugesAreRegistered(t *testing.T) {
	have := gauges(t, newTestBox(t))
	for _, name := range []string{
		"ore_pod_debtors", "ore_pod_wanted_blocks", "ore_pod_deliveries", "ore_pod_senders", "ore_pod_final_roots",
		"ore_heat_reports_kept", "ore_orders_kept", "ore_heat_demand_roots", "ore_heat_served_roots",
		"ore_traffic_peers", "ore_recent_blocks", "ore_complete_roots", "ore_fetches_running", "ore_fetch_sources",
		"ore_bitswap_held_peers", "ore_bitswap_held_blocks", "ore_bitswap_spread_held_wants", "ore_bitswap_spread_sends",
		"ore_bitswap_late_cancels", "ore_dht_store_records", "ore_dht_store_bytes", "ore_dht_store_refused_total",
	} {
		if !have[name] {
			t.Errorf("no %s in the box's metrics", name)
		}
	}
	have = gauges(t, newTestBox(t, WithRole(RoleGateway), WithGatewayListen("127.0.0.1:0")))
	for _, name := range []string{"ore_gateway_heat_roots", "ore_gateway_client_limiters", "ore_gateway_block_cache_bytes", "ore_gateway_index_leaves"} {
		if !have[name] {
			t.Errorf("no %s in a gateway's metrics", name)
		}
	}
}
