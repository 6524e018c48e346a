package committee

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

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

// TestVotesOutOfWindowAreNotForwarded: a member's valid votes for a round
// far beyond this member's, or a height far ahead or long decided, are
// ignored by the topic validator (not forwarded); a forged one is
// rejected; one in the window is accepted.
func TestVotesOutOfWindowAreNotForwarded(t *testing.T) {
	var keys []crypto.PrivKey
	var members []ledger.Member
	for range 4 {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		keys = append(keys, k)
		members = append(members, ledger.Member{ID: id, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}})
	}
	g, err := ledger.NewGenesis("ore-test", time.Now().Add(-time.Hour).Truncate(time.Second), members, nil, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	c := &Committee{cfg: Config{Genesis: g}, txpool: newTxPool(), bft: newBFT(10, guardState{LockRound: -1}, time.Now())}
	c.initMetrics()
	vote := func(height uint64, round uint32, k crypto.PrivKey) []byte {
		id, _ := peer.IDFromPrivateKey(k)
		sig, err := ledger.SignVote(k, ledger.Prevote, height, round, [32]byte{7})
		if err != nil {
			t.Fatal(err)
		}
		return (&voteMsg{typ: ledger.Prevote, height: height, round: round, hash: [32]byte{7}, signer: id, sig: sig}).marshal()
	}
	outsider, _, _ := crypto.GenerateEd25519Key(nil)
	forged := vote(10, 0, keys[0])
	forged[len(forged)-1] ^= 1
	for name, c2 := range map[string]struct {
		data []byte
		want pubsub.ValidationResult
	}{
		"in the window":     {vote(10, 3, keys[1]), pubsub.ValidationAccept},
		"the next height":   {vote(11, 0, keys[1]), pubsub.ValidationAccept},
		"a far round":       {vote(10, maxRoundsAhead+1, keys[1]), pubsub.ValidationIgnore},
		"a far height":      {vote(10+maxEarlyHeights+1, 0, keys[2]), pubsub.ValidationIgnore},
		"long decided":      {vote(3, 0, keys[2]), pubsub.ValidationIgnore},
		"forged":            {forged, pubsub.ValidationReject},
		"outside committee": {vote(10, 0, outsider), pubsub.ValidationReject},
	} {
		if got := c.validateSig(context.Background(), "", gossipMsg(c2.data)); got != c2.want {
			t.Errorf("%s: %v, want %v", name, got, c2.want)
		}
	}
}
