package committee

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/orecdn/ore/ledger"
)

// guardFile is where a member keeps what it last signed under
// FinalityBFT, as CometBFT's privval keeps its last sign state.
const guardFile = "sign-guard.json"

// ErrDoubleSign is a vote the guard refuses: this member signed another
// block for the same (height, round, step), or already signed a later
// (height, round, step). Signing it would be equivocation.
var ErrDoubleSign = errors.New("committee: refusing to sign: it would contradict a vote this member signed")

// guardState is the last vote signed and the lock held at its height.
type guardState struct {
	Height uint64   `json:"height"`
	Round  uint32   `json:"round"`
	Step   uint8    `json:"step"` // ledger.VoteType; 0: nothing signed yet
	Hash   [32]byte `json:"hash"`
	// The lock at Height (see bft.go): LockRound -1 is none.
	LockRound int64    `json:"lock_round"`
	LockHash  [32]byte `json:"lock_hash"`
}

// guard makes sure an honest member never signs two different blocks for
// one (height, round, step), across crashes and restarts: it writes what
// it is about to sign to its file and syncs it before the signature
// exists, and refuses any vote that goes back (an earlier height, round
// or step) or names another block at the same one. A member that crashed
// after the write but before sending only signed what it remembers.
type guard struct {
	path string
	key  crypto.PrivKey
	mu   sync.Mutex
	st   guardState
}

func openGuard(dir string, key crypto.PrivKey) (*guard, error) {
	g := &guard{path: filepath.Join(dir, guardFile), key: key, st: guardState{LockRound: -1}}
	data, err := os.ReadFile(g.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("committee: read %s: %w", g.path, err)
	}
	if err := json.Unmarshal(data, &g.st); err != nil {
		// Signing without knowing what was signed could equivocate: stop.
		return nil, fmt.Errorf("committee: %s is damaged (%v): restore it, or remove it only if this member never signed under FinalityBFT", g.path, err)
	}
	return g, nil
}

func (g *guard) state() guardState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

// sign signs a vote if it contradicts nothing signed before. lock, when
// not nil, is the lock to remember with it (a precommit locks).
func (g *guard) sign(t ledger.VoteType, height uint64, round uint32, hash [32]byte, lock *[32]byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.st
	if c := compareVote(height, round, uint8(t), st.Height, st.Round, st.Step); c < 0 || (c == 0 && hash != st.Hash) {
		return nil, fmt.Errorf("%w: %s at height %d round %d for %x; signed %s at height %d round %d for %x",
			ErrDoubleSign, t, height, round, hash[:6], ledger.VoteType(st.Step), st.Height, st.Round, st.Hash[:6])
	}
	if height != st.Height {
		st.LockRound, st.LockHash = -1, [32]byte{}
	}
	st.Height, st.Round, st.Step, st.Hash = height, round, uint8(t), hash
	if lock != nil {
		st.LockRound, st.LockHash = int64(round), *lock
	}
	if st != g.st {
		if err := g.write(st); err != nil {
			return nil, err
		}
		g.st = st
	}
	return ledger.SignVote(g.key, t, height, round, hash)
}

// compareVote orders votes by (height, round, step).
func compareVote(h1 uint64, r1 uint32, s1 uint8, h2 uint64, r2 uint32, s2 uint8) int {
	switch {
	case h1 != h2:
		return cmpU(h1, h2)
	case r1 != r2:
		return cmpU(uint64(r1), uint64(r2))
	}
	return cmpU(uint64(s1), uint64(s2))
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// write replaces the file durably: a temporary file, synced, renamed
// over it, and the directory synced.
func (g *guard) write(st guardState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := g.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("committee: sign guard: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, g.path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(g.path)); err == nil {
			err = d.Sync()
			_ = d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("committee: sign guard %s: %w", g.path, err)
	}
	return nil
}
