package committee

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/orecdn/ore/ledger"
)

// TestGuardRemembersAcrossRestarts: a member never signs two blocks for
// one (height, round, step), nor goes back, even after its process
// restarts; its lock survives with it; a damaged file stops it.
func TestGuardRemembersAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	x, y := [32]byte{1}, [32]byte{2}
	g, err := openGuard(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.sign(ledger.Prevote, 5, 0, x, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.sign(ledger.Precommit, 5, 0, x, &x); err != nil {
		t.Fatal(err)
	}
	// "Crash": a new guard on the same directory.
	g, err = openGuard(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		step   ledger.VoteType
		height uint64
		round  uint32
		hash   [32]byte
	}{
		"another block, same step": {ledger.Precommit, 5, 0, y},
		"an earlier step":          {ledger.Prevote, 5, 0, y},
		"an earlier height":        {ledger.Prevote, 4, 3, y},
	} {
		if _, err := g.sign(c.step, c.height, c.round, c.hash, nil); !errors.Is(err, ErrDoubleSign) {
			t.Errorf("%s: %v, want ErrDoubleSign", name, err)
		}
	}
	// The same vote again is the same signature (a replayed log entry).
	if _, err := g.sign(ledger.Precommit, 5, 0, x, &x); err != nil {
		t.Fatal(err)
	}
	if st := g.state(); st.LockRound != 0 || st.LockHash != x {
		t.Fatalf("lock after restart: round %d hash %x", st.LockRound, st.LockHash[:2])
	}
	// A lock restores the consensus's round and lock at that height.
	e := newBFT(5, g.state(), time.Unix(0, 0))
	if e.lockRound != 0 || e.lockHash != x {
		t.Fatal("the consensus did not take the lock back")
	}
	if _, err := g.sign(ledger.Prevote, 5, 1, y, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.sign(ledger.Prevote, 6, 0, y, nil); err != nil {
		t.Fatal(err)
	}
	if st := g.state(); st.LockRound != -1 {
		t.Fatal("a lock outlived its height")
	}
	if err := os.WriteFile(filepath.Join(dir, guardFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openGuard(dir, k); err == nil {
		t.Fatal("a damaged guard file opened")
	}
}
