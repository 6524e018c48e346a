package committee

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// raftStore is a member's durable Raft log and stable store.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openRaftStore opens the Raft log in dir: raft-wal's segment files under
// dir/raft-wal, which append an entry (a whole block, megabytes) to a file
// instead of copying it into bolt's B+tree pages (about 5× less time per
// block on this project's machines). A member created before keeps its
// raft.db (raft-boltdb): its log is not migrated.
func openRaftStore(dir string) (raftStore, error) {
	legacy := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(legacy); err == nil {
		s, err := raftboltdb.New(raftboltdb.Options{Path: legacy})
		if err != nil {
			return nil, fmt.Errorf("committee: raft log %s: %w", legacy, err)
		}
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("committee: raft log: %w", err)
	}
	wdir := filepath.Join(dir, "raft-wal")
	if err := os.MkdirAll(wdir, 0o700); err != nil {
		return nil, fmt.Errorf("committee: raft log: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(wdir, wal.WithMetaStore(meta), wal.WithSegmentSize(walSegmentSize))
	if err != nil {
		_ = meta.Close()
		return nil, fmt.Errorf("committee: raft log %s (another coordinator running on it, or damaged?): %w", wdir, err)
	}
	return walStore{w, meta}, nil
}

// walSegmentSize is the size of raft-wal's segment files (its default,
// 64 MiB). Truncating the log deletes whole segments only, so a test that
// must see entries gone sets small ones.
var walSegmentSize = 64 << 20

// walStore closes the WAL's metadata database with it: WAL.Close leaves
// it open, and its file lock would stop this process from opening the
// log again (a coordinator restarted in the same process).
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s walStore) Close() error { return errors.Join(s.WAL.Close(), s.meta.Close()) }

// StoreLogs appends logs. A follower that installed a snapshot beyond its
// last entry appends next after the snapshot, leaving a gap raft-wal
// refuses ("non-monotonic log entries"), and Raft's own compaction after
// the install keeps the entries below it: the follower would refuse every
// append and get the snapshot again, forever. The entries below the gap
// are covered by the snapshot, so they go first.
func (s walStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) > 0 {
		last, err := s.WAL.LastIndex()
		if err != nil {
			return err
		}
		if next := logs[0].Index; last > 0 && next > last+1 {
			first, err := s.WAL.FirstIndex()
			if err != nil {
				return err
			}
			if err := s.WAL.DeleteRange(first, next-1); err != nil {
				return fmt.Errorf("committee: drop the Raft log below a snapshot at %d: %w", next-1, err)
			}
		}
	}
	return s.WAL.StoreLogs(logs)
}

func (s walStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// preparingStore tells the FSM of every command entry a follower stores,
// before it writes it, so the FSM can apply the last one early
// (fsm.prepare) while the log write and the answer to the leader go on.
type preparingStore struct {
	raft.LogStore
	prepare func(data []byte)
}

func (s preparingStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s preparingStore) StoreLogs(logs []*raft.Log) error {
	// Only the last command: the ones before it in a batch (a follower
	// catching up) would be applied to states that are not theirs.
	for i := len(logs) - 1; i >= 0; i-- {
		if logs[i].Type == raft.LogCommand {
			s.prepare(logs[i].Data)
			break
		}
	}
	return s.LogStore.StoreLogs(logs)
}
