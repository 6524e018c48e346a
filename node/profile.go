package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/orecdn/ore/bitswap"
)

// Profile sizes a box for the machine it runs on.
type Profile string

// Profiles, as written in config.json's "profile".
const (
	// ProfileAuto picks ProfileSmall on machines with less than
	// SmallMemoryThreshold of RAM and ProfileDefault otherwise.
	ProfileAuto Profile = "auto"
	// ProfileDefault is sized for a machine with a few GiB of RAM.
	ProfileDefault Profile = "default"
	// ProfileSmall is sized for the 512 MiB–2 GiB ARM boxes people own.
	ProfileSmall Profile = "small"
)

// SmallMemoryThreshold is the RAM under which ProfileAuto means small.
const SmallMemoryThreshold = 2 << 30

// Small-profile sizing. The libp2p resource manager gets a slice of RAM
// (between the two bounds), bitswap's server queues little per peer, and
// connections are capped lower than on a big machine.
const (
	smallResourceShare  = 8 // 1/8 of RAM for all streams and connections
	smallResourceMin    = 64 << 20
	smallResourceMax    = 192 << 20
	smallOutstandingMax = 2 << 20 // bitswap server: bytes queued per peer
)

// ParseProfile reads a profile as written in a config file ("" is auto).
func ParseProfile(s string) (Profile, error) {
	switch Profile(s) {
	case "", ProfileAuto:
		return ProfileAuto, nil
	case ProfileDefault, ProfileSmall:
		return Profile(s), nil
	}
	return "", fmt.Errorf("node: unknown profile %q: use auto, default or small", s)
}

// Resolve turns ProfileAuto into small or default from the machine's RAM.
// When the RAM cannot be read, auto means default.
func (p Profile) Resolve() Profile {
	if p != ProfileAuto && p != "" {
		return p
	}
	if total, err := SystemMemory(); err == nil && total < SmallMemoryThreshold {
		return ProfileSmall
	}
	return ProfileDefault
}

// SystemMemory returns the machine's total RAM in bytes: MemTotal from
// /proc/meminfo, or sysinfo(2) where /proc is not mounted.
func SystemMemory() (int64, error) {
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if n, ok := parseMemTotal(b); ok {
			return n, nil
		}
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0, fmt.Errorf("node: read the machine's RAM: %w (set \"profile\" in config.json by hand)", err)
	}
	return int64(si.Totalram) * int64(si.Unit), nil
}

// parseMemTotal reads "MemTotal:  1234 kB" from /proc/meminfo.
func parseMemTotal(b []byte) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemTotal:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil || kb <= 0 {
				return 0, false
			}
			return kb << 10, true
		}
	}
	return 0, false
}

// WithProfile sizes the box for a profile; ProfileAuto is resolved from the
// machine's RAM. ProfileSmall is WithSmallMemory with the resource manager
// scaled to the RAM (an eighth of it, 64–192 MiB).
func WithProfile(p Profile) Option {
	return func(c *Config) error {
		if _, err := ParseProfile(string(p)); err != nil {
			return err
		}
		if p.Resolve() != ProfileSmall {
			return nil
		}
		if err := WithSmallMemory(true)(c); err != nil {
			return err
		}
		total, err := SystemMemory()
		if err != nil {
			return nil // WithSmallMemory's fixed limits stand
		}
		c.ResourceMemory = smallResourceMemory(total)
		return nil
	}
}

func smallResourceMemory(total int64) int64 {
	return min(max(total/smallResourceShare, smallResourceMin), smallResourceMax)
}

// profileBitswapOptions are the bitswap settings of the box's profile:
// bounded server queues on a small box.
func (c *Config) profileBitswapOptions() []bitswap.Option {
	if !c.SmallMemory {
		return nil
	}
	return []bitswap.Option{bitswap.WithMaxOutstandingBytesPerPeer(smallOutstandingMax)}
}
