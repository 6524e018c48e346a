package testnet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orecdn/ore/gateway"
)

func TestGatewayAbuseGoal(t *testing.T) {
	ok := AbuseFigures{HonestRequests: 1000, HonestAnswered: 990, HonestFraction: 0.99, HonestP99Ms: 99.9, PeakRSSMB: 511, Alive: true}
	for _, c := range []struct {
		name string
		f    func(*AbuseFigures)
		met  bool
		says string
	}{
		{"all within", func(*AbuseFigures) {}, true, "met: honest 99.00% answered"},
		{"too few answered", func(f *AbuseFigures) { f.HonestFraction = 0.989 }, false, "honest answered 98.90%"},
		{"slow", func(f *AbuseFigures) { f.HonestP99Ms = 100 }, false, "honest p99 100.0 ms"},
		{"memory", func(f *AbuseFigures) { f.PeakRSSMB = 512 }, false, "peak RSS 512 MiB"},
		{"crashed", func(f *AbuseFigures) { f.Alive = false }, false, "no longer answers"},
	} {
		f := ok
		c.f(&f)
		met, why := f.Goal()
		if met != c.met || !strings.Contains(why, c.says) {
			t.Errorf("%s: Goal() = %v, %q; want %v, %q…", c.name, met, why, c.met, c.says)
		}
	}
}

// The abuse bench runs each of its parts against a real gateway: slow
// readers beyond the per-client cap are refused and those held are cut at
// the (short) write deadline, the flood, heavy and honest requests are
// answered, and the gateway is alive after. Counts only, no speeds.
func TestGatewayAbuseBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := BenchGatewayAbuse(ctx, AbuseConfig{
		Duration: 5 * time.Second, HonestRate: 10, FloodRate: 20, SlowClients: 1, SlowConns: 20,
		HeavyClients: 1, HeavyConns: 1, DirEntries: 300, ChainDepth: 50, BigObject: 16 << 20,
		Gateway: gateway.Config{WriteTimeout: 300 * time.Millisecond, MaxPerClient: 16},
	}, WithDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Alive || f.HonestRequests == 0 || f.FloodSent == 0 || len(f.Heavy) == 0 {
		t.Errorf("a part did not run: %+v", f)
	}
	if f.SlowRefused == 0 || f.RefusedCap == 0 {
		t.Errorf("20 slow connections from one address, none refused for the cap of 16: %+v", f)
	}
	if f.SlowHeld == 0 || f.WriteTimeouts == 0 {
		t.Errorf("no slow reader held and cut at the write deadline: %+v", f)
	}
}
