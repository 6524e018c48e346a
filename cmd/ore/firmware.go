package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/orecdn/ore/node"
)

// smallMemoryLimit is the Go runtime's soft memory limit in a daemon with
// the small profile (unless GOMEMLIMIT is set): the GC works harder as the
// heap nears it, instead of letting it grow to twice the live data.
const smallMemoryLimit = 96 << 20

// applyRuntimeProfile sizes the Go runtime of the daemon process for the
// repo's profile. Process-wide, so it lives here and not in package node.
func applyRuntimeProfile(fc node.FileConfig, log *slog.Logger) {
	p, err := node.ParseProfile(fc.Profile)
	if err != nil {
		return // node.FileConfig.Options reports it
	}
	p = p.Resolve()
	log.Info("profile", "profile", p, "config", fc.Profile)
	if p != node.ProfileSmall || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(smallMemoryLimit)
}

// withHint adds what to do to errors a user can fix on the box: a full
// quota or a full disk. The daemon sends errors as text, so this matches
// the store's messages.
func withHint(repo string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case errors.Is(err, node.ErrQuotaFull) || strings.Contains(msg, node.ErrQuotaFull.Error()):
		return fmt.Errorf("%w\nthe box's storage quota is full: raise \"quota\" in %s and restart `ore daemon`; what it already stores is still served",
			err, filepath.Join(repo, node.ConfigFile))
	case strings.Contains(msg, "disk full") || strings.Contains(msg, "no space left on device"):
		return fmt.Errorf("%w\nthe disk holding %s is full: free space on it, or lower \"quota\" in %s below the free space, and restart `ore daemon`; what the box already stores is still served",
			err, repo, filepath.Join(repo, node.ConfigFile))
	}
	return err
}
