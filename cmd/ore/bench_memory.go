package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/dht"
	"github.com/orecdn/ore/node"
)

// Goals of the small profile (issue 8): what a 1 GiB ARM box can afford.
const (
	goalIdleMiB     = 80
	goalTransferMiB = 200
	rssSampleEvery  = 20 * time.Millisecond
	childStopWithin = 30 * time.Second
)

// memoryReport is `ore bench memory --json`. RSS figures are MiB of the
// measured box's process (VmRSS; peaks also from VmHWM where the kernel lets
// it be reset). VmRSS counts the pages of badger's memory-mapped files that
// the box touched, which the kernel drops under memory pressure; the anon
// figures (RssAnon) are what the box holds in RAM whatever the pressure.
type memoryReport struct {
	Profile          string  `json:"profile"` // resolved: default or small
	MachineRAMMiB    float64 `json:"machine_ram_mib"`
	SizeBytes        int64   `json:"size_bytes"`
	IdleRSSMiB       float64 `json:"idle_rss_mib"`       // after start-up and --settle
	AddPeakRSSMiB    float64 `json:"add_peak_rss_mib"`   // while adding the file
	ServePeakRSSMiB  float64 `json:"serve_peak_rss_mib"` // while another box fetches it from this one
	FetchPeakRSSMiB  float64 `json:"fetch_peak_rss_mib"` // while this box gets a file from another
	IdleAnonMiB      float64 `json:"idle_anon_mib"`
	AddPeakAnonMiB   float64 `json:"add_peak_anon_mib"`
	ServePeakAnonMiB float64 `json:"serve_peak_anon_mib"`
	FetchPeakAnonMiB float64 `json:"fetch_peak_anon_mib"`
	ServeMBps        float64 `json:"serve_mb_per_s"`
	FetchMBps        float64 `json:"fetch_mb_per_s"`
	StopSeconds      float64 `json:"stop_seconds"` // slowest SIGTERM-to-exit of the box
	GoalIdleMiB      float64 `json:"goal_idle_mib"`
	GoalTransferMiB  float64 `json:"goal_transfer_mib"`
	MeetsGoals       bool    `json:"meets_goals"`      // on VmRSS
	MeetsGoalsAnon   bool    `json:"meets_goals_anon"` // on RssAnon
}

func benchMemory(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench memory", "[flags]")
	sizeFlag := fs.String("size", "256MiB", "bytes of the file served and the file fetched")
	profileFlag := fs.String("profile", "small", "profile of the measured box: small, default or auto")
	settle := fs.Duration("settle", 3*time.Second, "how long the box idles after start-up before its idle RSS is read")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	size, err := sizeArg("size", *sizeFlag, "256MiB")
	if err != nil {
		return err
	}
	profile, err := node.ParseProfile(*profileFlag)
	if err != nil {
		return fmt.Errorf("%w: --profile: %v", errUsage, err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench memory re-runs the ore binary as the measured box, but cannot find it: %w", err)
	}
	logf := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(e.stderr, "bench memory: "+format+"\n", a...)
		}
	}
	newCmd := func(args ...string) *exec.Cmd { return exec.CommandContext(ctx, self, args...) }
	rep, err := runBenchMemory(ctx, newCmd, profile, int64(size), *settle, logf)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	w := e.stdout
	fmt.Fprintf(w, "memory of one box (profile %s, machine RAM %.0f MiB), files of %s\n", rep.Profile, rep.MachineRAMMiB, humanize.IBytes(size))
	fmt.Fprintf(w, "                          VmRSS  RssAnon\n")
	fmt.Fprintf(w, "  idle after start-up   %6.1f   %6.1f MiB       (goal <= %d MiB with the small profile)\n", rep.IdleRSSMiB, rep.IdleAnonMiB, goalIdleMiB)
	fmt.Fprintf(w, "  adding the file       %6.1f   %6.1f MiB peak\n", rep.AddPeakRSSMiB, rep.AddPeakAnonMiB)
	fmt.Fprintf(w, "  serving it            %6.1f   %6.1f MiB peak  (%.1f MB/s; goal <= %d MiB)\n", rep.ServePeakRSSMiB, rep.ServePeakAnonMiB, rep.ServeMBps, goalTransferMiB)
	fmt.Fprintf(w, "  fetching one          %6.1f   %6.1f MiB peak  (%.1f MB/s; goal <= %d MiB)\n", rep.FetchPeakRSSMiB, rep.FetchPeakAnonMiB, rep.FetchMBps, goalTransferMiB)
	fmt.Fprintf(w, "  SIGTERM to exit       %6.2f s (slowest of the restarts)\n", rep.StopSeconds)
	if rep.Profile == string(node.ProfileSmall) {
		fmt.Fprintf(w, "  meets the goals       %v on VmRSS, %v on RssAnon (VmRSS counts mmapped store pages the kernel reclaims)\n", rep.MeetsGoals, rep.MeetsGoalsAnon)
	}
	return nil
}

// runBenchMemory measures a box in its own process (newCmd runs the ore
// binary): idle, adding, serving to an in-process peer and fetching from it.
// The box is restarted before each transfer so every peak is its own.
func runBenchMemory(ctx context.Context, newCmd func(args ...string) *exec.Cmd, profile node.Profile, size int64,
	settle time.Duration, logf func(string, ...any)) (*memoryReport, error) {
	dir, err := os.MkdirTemp("", "ore-bench-memory-*")
	if err != nil {
		return nil, fmt.Errorf("bench memory: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	rep := &memoryReport{Profile: string(profile.Resolve()), SizeBytes: size,
		GoalIdleMiB: goalIdleMiB, GoalTransferMiB: goalTransferMiB}
	if ram, err := node.SystemMemory(); err == nil {
		rep.MachineRAMMiB = mib(ram)
	}

	// The peer: an in-process box with the default profile.
	peerRepo := filepath.Join(dir, "peer")
	pcfg := node.DefaultFileConfig()
	if _, err := node.Init(peerRepo, pcfg); err != nil {
		return nil, err
	}
	peer, err := node.New(ctx, node.WithRepo(peerRepo), node.WithDHTMode(dht.ModeServer), node.WithReprovideInterval(0),
		node.WithListenAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		return nil, fmt.Errorf("bench memory: start the peer box: %w", err)
	}
	defer peer.Close()

	// The measured box: a repo of its own, run by `ore daemon`.
	boxRepo := filepath.Join(dir, "box")
	cfg := node.DefaultFileConfig()
	cfg.Profile = string(profile)
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.API = "127.0.0.1:0"
	cfg.DHTMode = "server"
	for _, a := range peer.P2PAddrs() {
		cfg.Bootstrap = append(cfg.Bootstrap, a.String())
	}
	if _, err := node.Init(boxRepo, cfg); err != nil {
		return nil, err
	}
	var box *childDaemon
	start := func() error {
		d, err := startChildDaemon(ctx, newCmd, boxRepo, "--log-level", "warn")
		if err != nil {
			return fmt.Errorf("bench memory: %w", err)
		}
		box = d
		return nil
	}
	restart := func() error {
		took, err := box.stop(syscall.SIGTERM, childStopWithin)
		if err != nil {
			return fmt.Errorf("bench memory: stop the box: %w\n%s", err, box.stderr.String())
		}
		rep.StopSeconds = max(rep.StopSeconds, took.Seconds())
		return start()
	}
	if err := start(); err != nil {
		return nil, err
	}
	defer func() { box.kill() }()

	// Idle.
	logf("box started (pid %d, profile %s); idling %s", box.pid(), rep.Profile, settle)
	idle := sampleRSS(box.pid(), rssSampleEvery)
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if _, err := idle.finish(); err != nil {
		return nil, err
	}
	m, err := readRSS(box.pid())
	if err != nil {
		return nil, err
	}
	rep.IdleRSSMiB, rep.IdleAnonMiB = mib(m.RSS), mib(m.Anon)

	// Adding a file through the box's control API.
	src := filepath.Join(dir, "served.bin")
	if err := writeRandomFile(src, size, 1); err != nil {
		return nil, err
	}
	logf("adding %s", humanize.IBytes(uint64(size)))
	s := sampleRSS(box.pid(), rssSampleEvery)
	root, err := runQuiet(ctx, "add", "-q", "--repo", boxRepo, src)
	if err != nil {
		return nil, fmt.Errorf("bench memory: add: %w", err)
	}
	peak, err := s.finish()
	if err != nil {
		return nil, err
	}
	rep.AddPeakRSSMiB, rep.AddPeakAnonMiB = mib(peak.RSS), mib(peak.Anon)
	c, err := node.ParseCID(strings.TrimSpace(root))
	if err != nil {
		return nil, err
	}

	// Serving it: the peer fetches it from a freshly started box.
	if err := restart(); err != nil {
		return nil, err
	}
	addrs, err := node.ParsePeerAddrs(box.addrs)
	if err != nil || len(addrs) != 1 {
		return nil, fmt.Errorf("bench memory: box printed bad addresses %q: %v", box.addrs, err)
	}
	if err := peer.Connect(ctx, addrs[0]); err != nil {
		return nil, err
	}
	logf("serving it to another box")
	s = sampleRSS(box.pid(), rssSampleEvery)
	t0 := time.Now()
	if _, err := peer.Fetch(ctx, c, nil); err != nil {
		return nil, fmt.Errorf("bench memory: the peer's fetch from the box: %w", err)
	}
	rep.ServeMBps = float64(size) / 1e6 / time.Since(t0).Seconds()
	if peak, err = s.finish(); err != nil {
		return nil, err
	}
	rep.ServePeakRSSMiB, rep.ServePeakAnonMiB = mib(peak.RSS), mib(peak.Anon)

	// Fetching one: the peer holds another file; the box gets it.
	src2 := filepath.Join(dir, "fetched.bin")
	if err := writeRandomFile(src2, size, 2); err != nil {
		return nil, err
	}
	added, err := peer.AddPath(ctx, src2, node.AddNoProvide())
	if err != nil {
		return nil, err
	}
	if err := os.Remove(src2); err != nil {
		return nil, err
	}
	if err := restart(); err != nil {
		return nil, err
	}
	if err := peer.Connect(ctx, addrs[0]); err != nil {
		return nil, err
	}
	logf("fetching one from another box")
	s = sampleRSS(box.pid(), rssSampleEvery)
	t0 = time.Now()
	if _, err := runQuiet(ctx, "get", "--repo", boxRepo, "-o", src2, added.Root.String()); err != nil {
		return nil, fmt.Errorf("bench memory: get: %w", err)
	}
	rep.FetchMBps = float64(size) / 1e6 / time.Since(t0).Seconds()
	if peak, err = s.finish(); err != nil {
		return nil, err
	}
	rep.FetchPeakRSSMiB, rep.FetchPeakAnonMiB = mib(peak.RSS), mib(peak.Anon)
	if st, err := os.Stat(src2); err != nil || st.Size() != size {
		return nil, fmt.Errorf("bench memory: get wrote %v (%v), want %d bytes", st, err, size)
	}

	took, err := box.stop(syscall.SIGTERM, childStopWithin)
	if err != nil {
		return nil, fmt.Errorf("bench memory: stop the box: %w", err)
	}
	rep.StopSeconds = max(rep.StopSeconds, took.Seconds())
	rep.MeetsGoals = rep.IdleRSSMiB <= goalIdleMiB && rep.ServePeakRSSMiB <= goalTransferMiB && rep.FetchPeakRSSMiB <= goalTransferMiB
	rep.MeetsGoalsAnon = rep.IdleAnonMiB <= goalIdleMiB && rep.ServePeakAnonMiB <= goalTransferMiB && rep.FetchPeakAnonMiB <= goalTransferMiB
	return rep, nil
}

// runQuiet runs an ore command in this process and returns its stdout, or
// an error with its stderr.
func runQuiet(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: os.Getenv}
	if code := run(ctx, e, args); code != 0 {
		return "", fmt.Errorf("ore %s exited %d: %s", args[0], code, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// writeRandomFile writes size pseudo-random bytes (incompressible, no two
// seeds alike) to path.
func writeRandomFile(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench memory: %w", err)
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'o', 'r', 'e'})
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return fmt.Errorf("bench memory: write %s: %w", path, err)
	}
	return f.Close()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
