package testnet

import (
	"context"
	"testing"
)

// A small run of the storage bench: every goal row but the bytes one
// (small roots) must hold, and the cheater's pay must match its proofs.
func TestBenchStorageSmall(t *testing.T) {
	f, err := BenchStorage(context.Background(), StorageConfig{Boxes: 4, Roots: 2, Size: 1 << 20, Rounds: 30, Trials: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Rows {
		if !r.Holds {
			t.Errorf("goal %q: %s (target %s)", r.Goal, r.Value, r.Target)
		}
	}
	if f.PaidCheater >= f.PaidHonest/3 || f.ProofsPerRound == 0 || f.ProofBytes == 0 {
		t.Fatalf("figures %+v", f)
	}
}
