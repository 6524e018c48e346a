package committee

import (
	"context"
	"testing"
	"time"
)

// TestChaosShortSchedule runs a short fault schedule (the bench runs
// minutes: ore bench chaos) and fails if an invariant broke.
func TestChaosShortSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("a network schedule of 20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Chaos(ctx, ChaosConfig{Duration: 20 * time.Second, Seed: 7, Epoch: 3 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range rep.Invariants {
		t.Logf("%s: %v (%s)", inv.Name, inv.Held, inv.Detail)
	}
	if len(rep.Events) == 0 || rep.Receipts == 0 {
		t.Fatalf("%d faults, %d receipts: nothing was tried", len(rep.Events), rep.Receipts)
	}
	if !rep.AllHeld {
		t.Fatal("an invariant broke")
	}
}
