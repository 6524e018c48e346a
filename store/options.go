package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Option configures Open.
type Option func(*config) error

type config struct {
	quota       int64
	logger      *slog.Logger
	syncWrites  bool
	smallMemory bool
	packSize    int64 // tests: a small pack size makes many packs
}

// WithQuota caps the bytes of block data the store may hold (sum of block
// sizes). 0 means unlimited, the default. Negative values are rejected.
func WithQuota(bytes int64) Option {
	return func(c *config) error {
		if bytes < 0 {
			return fmt.Errorf("store: quota must be >= 0, got %d", bytes)
		}
		c.quota = bytes
		return nil
	}
}

// WithLogger routes badger's warnings and errors to l. Badger's info and
// debug chatter is dropped. nil (the default) discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithSyncWrites makes every write fsync before it returns. Off by default:
// a write that returned survives a killed process (the data is in the page
// cache), but not a power loss. Pin always syncs.
func WithSyncWrites(on bool) Option {
	return func(c *config) error {
		c.syncWrites = on
		return nil
	}
}

// WithSmallMemory sizes badger for a 1 GiB ARM box: small memtables, caches
// and value-log files.
func WithSmallMemory(on bool) Option {
	return func(c *config) error {
		c.smallMemory = on
		return nil
	}
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

// badgerOptions builds the badger configuration. Block data (values of
// 1 KiB or more) goes to the value log, so LSM compaction only moves keys and
// 12-byte value pointers, never the 256 KiB blocks themselves.
func badgerOptions(dir string, c *config) badger.Options {
	o := badger.DefaultOptions(dir).
		WithLogger(slogAdapter{l: c.logger}).
		WithSyncWrites(c.syncWrites).
		WithValueThreshold(1 * kib).
		WithMetricsEnabled(false).
		WithDetectConflicts(false). // writes to one key are serialised by Store's stripe locks
		WithNumVersionsToKeep(1).
		WithMemTableSize(32 * mib).
		WithNumMemtables(3).
		WithBlockCacheSize(32 * mib).
		WithIndexCacheSize(16 * mib).
		WithNumCompactors(2).
		WithValueLogFileSize(256 * mib)
	if c.smallMemory {
		o = o.
			WithMemTableSize(8 * mib).
			WithNumMemtables(2).
			WithBlockCacheSize(8 * mib).
			WithIndexCacheSize(4 * mib).
			WithBaseTableSize(1 * mib).
			WithNumLevelZeroTables(3).
			WithNumLevelZeroTablesStall(8).
			WithValueLogFileSize(64 * mib).
			WithNumGoroutines(2)
	}
	return o
}

// slogAdapter implements badger.Logger on top of slog, keeping only
// warnings and errors. A nil logger discards.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args ...any) {
	if a.l == nil || !a.l.Enabled(context.Background(), level) {
		return
	}
	a.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (a slogAdapter) Errorf(format string, args ...any) { a.log(slog.LevelError, format, args...) }

func (a slogAdapter) Warningf(format string, args ...any) { a.log(slog.LevelWarn, format, args...) }

func (slogAdapter) Infof(string, ...any) {}

func (slogAdapter) Debugf(string, ...any) {}
