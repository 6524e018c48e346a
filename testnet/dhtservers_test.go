package testnet

import (
	"testing"

	"github.com/orecdn/ore/dht"
)

// TestDHTServers: with WithDHTServers(n) boxes below n serve the DHT and
// every later box is a client that bootstraps from a server; without it
// every box serves and joins through the bootstrap tree.
func TestDHTServers(t *testing.T) {
	for i := 0; i < 300; i++ {
		if m := dhtMode(i, 0); m != dht.ModeServer {
			t.Fatalf("box %d without servers: mode %v, want server", i, m)
		}
		if b := bootstrapOf(i, 0); i > 0 && (b >= i || b < 0) {
			t.Fatalf("box %d without servers bootstraps from box %d, not an earlier one", i, b)
		}
		want := dht.ModeServer
		if i >= 4 {
			want = dht.ModeClient
		}
		if m := dhtMode(i, 4); m != want {
			t.Fatalf("box %d of 4 servers: mode %v, want %v", i, m, want)
		}
		if b := bootstrapOf(i, 4); i >= 4 && dhtMode(b, 4) != dht.ModeServer {
			t.Fatalf("client box %d bootstraps from box %d, a client", i, b)
		}
	}
}
