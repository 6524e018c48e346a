package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childDaemon is `ore daemon` running as a separate process: what `ore bench
// memory` measures and what the power-loss tests kill.
type childDaemon struct {
	cmd    *exec.Cmd
	repo   string
	addrs  []string // /p2p/ addresses it printed
	stderr *lockedBuffer
	done   chan struct{} // closed when the process exited
	err    error         // its exit status, once done is closed
}

// lockedBuffer collects a child's output for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childReadyTimeout bounds a child's start-up (generous: CI runs it under
// the race detector or qemu).
const childReadyTimeout = 2 * time.Minute

// startChildDaemon runs `BIN daemon --repo REPO` (newCmd makes the command)
// and returns once it printed "ore daemon ready".
func startChildDaemon(ctx context.Context, newCmd func(args ...string) *exec.Cmd, repo string, extra ...string) (*childDaemon, error) {
	cmd := newCmd(append([]string{"daemon", "--repo", repo}, extra...)...)
	d := &childDaemon{cmd: cmd, repo: repo, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s daemon: %w", cmd.Path, err)
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var addrs []string
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "listening "); ok {
				addrs = append(addrs, a)
			}
			if line == "ore daemon ready" {
				ready <- addrs
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t := time.NewTimer(childReadyTimeout)
	defer t.Stop()
	select {
	case d.addrs = <-ready:
		return d, nil
	case <-d.done:
		return nil, fmt.Errorf("daemon on %s exited before it was ready (%v):\n%s", repo, d.err, d.stderr.String())
	case <-t.C:
		err = fmt.Errorf("daemon on %s not ready after %s:\n%s", repo, childReadyTimeout, d.stderr.String())
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Kill()
	<-d.done
	return nil, err
}

// pid is the child's process ID.
func (d *childDaemon) pid() int { return d.cmd.Process.Pid }

// stop sends sig and waits up to timeout for the process to exit; it
// returns how long that took and the exit error. A child still running at
// the timeout is killed.
func (d *childDaemon) stop(sig os.Signal, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("signal daemon: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.done:
		return time.Since(start), d.err
	case <-t.C:
		_ = d.cmd.Process.Kill()
		<-d.done
		return time.Since(start), fmt.Errorf("daemon on %s did not stop within %s of %v:\n%s", d.repo, timeout, sig, d.stderr.String())
	}
}

// kill is a power cut: SIGKILL, then wait for the process to be gone.
func (d *childDaemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// procMem is a process's memory from /proc/PID/status, in bytes.
type procMem struct {
	RSS  int64 // VmRSS: resident pages, anonymous and file-backed (mmap)
	HWM  int64 // VmHWM: peak RSS since start or the last resetPeakRSS
	Anon int64 // RssAnon: the resident heap, stacks and runtime: what only RAM can hold
}

// readRSS reads a process's memory figures from /proc/PID/status.
func readRSS(pid int) (procMem, error) {
	var m procMem
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, fmt.Errorf("read RSS of process %d (Linux /proc needed): %w", pid, err)
	}
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.HWM, "RssAnon": &m.Anon}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("process %d: unexpected %s line %q", pid, k, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("process %d: %s: %w", pid, k, err)
		}
		*dst = kb << 10
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("process %d has no VmRSS (did it exit?)", pid)
	}
	return m, nil
}

// resetPeakRSS resets a process's VmHWM to its current RSS (Linux 4.0+). It
// reports whether that worked; when not, only sampling sees the peak.
func resetPeakRSS(pid int) bool {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}

// rssSampler tracks a process's peak RSS while a phase runs: it samples
// VmRSS every interval and, where the kernel allows, reads VmHWM at the end.
type rssSampler struct {
	pid      int
	hwmReset bool
	stop     chan struct{}
	done     chan struct{}
	peak     procMem // RSS and Anon: the peaks seen
	err      error
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, hwmReset: resetPeakRSS(pid), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m, err := readRSS(pid)
			if err != nil {
				s.err = err
				return
			}
			s.peak.RSS, s.peak.Anon = max(s.peak.RSS, m.RSS), max(s.peak.Anon, m.Anon)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the peaks (RSS also from VmHWM).
func (s *rssSampler) finish() (procMem, error) {
	close(s.stop)
	<-s.done
	if s.err != nil {
		return procMem{}, s.err
	}
	if s.hwmReset {
		if m, err := readRSS(s.pid); err == nil {
			s.peak.RSS = max(s.peak.RSS, m.HWM)
		}
	}
	return s.peak, nil
}
