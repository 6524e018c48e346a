package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/testnet"
)

const testnetUsage = `usage: ore testnet COMMAND [flags]

A multi-node ore network in docker containers (4 coordinators, a publisher,
a gateway and N boxes on a private network), for trying ore the way it is
deployed. Needs a Docker engine; ` + "`ore demo`" + ` runs the same in one process.

  up [--boxes N]        build the image, lay out keys and genesis, start, wait until ready
  status [--json]       each node's role, peer ID, state, ledger height, balance, storage
  down                  remove the containers, network, image and the testnet directory
  kill NODE             SIGKILL a node's container (power loss)
  stop NODE             stop a node gracefully (SIGTERM)
  start NODE            start a killed or stopped node again on its repo
  partition NODE        cut a node off the network (its process keeps running)
  heal NODE             reconnect a partitioned node
  leader                print the node that leads the committee
  url                   print the gateway's HTTP address on this machine
  exec NODE ARGS...     run ` + "`ore ARGS`" + ` inside a node (e.g. exec pub add /data/file)
  verify                run ` + "`ore ledger verify`" + ` on every running node and compare state hashes
  logs NODE [--tail N]  the last lines of a node's log

Every command takes --dir (default $ORE_TESTNET or ./ore-testnet).`

func cmdTestnet(ctx context.Context, e *env, args []string) error {
	sub, args, done, err := subcommand(e, testnetUsage, "a testnet command", args)
	if done {
		return err
	}
	fs := newFlags(e, "testnet "+sub, "[flags]")
	defDir := e.getenv("ORE_TESTNET")
	if defDir == "" {
		defDir = "ore-testnet"
	}
	dir := fs.String("dir", defDir, "the testnet's directory (env ORE_TESTNET)")
	t := &testnetCmd{e: e}
	switch sub {
	case "up":
		return t.up(ctx, fs, dir, args)
	case "exec":
		// Everything after NODE belongs to the command run inside.
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() < 2 {
			return fmt.Errorf("%w: exec NODE ARGS...", errUsage)
		}
		if err := t.open(ctx, *dir); err != nil {
			return err
		}
		return t.exec(ctx, fs.Arg(0), fs.Args()[1:])
	}
	asJSON := fs.Bool("json", false, "print JSON (status)")
	tail := fs.Int("tail", 50, "lines (logs)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "status", "down", "kill", "stop", "start", "partition", "heal", "leader", "url", "verify", "logs":
	default:
		fmt.Fprintln(e.stderr, testnetUsage)
		return fmt.Errorf("%w: unknown testnet command %q", errUsage, sub)
	}
	if err := t.open(ctx, *dir); err != nil {
		return err
	}
	node := func() (string, error) {
		if err := wantArgs(pos, 1, "NODE"); err != nil {
			return "", err
		}
		_, err := t.c.Node(pos[0])
		return pos[0], err
	}
	one := func(what string, f func(context.Context, *testnet.Compose, string) error, done string) error {
		name, err := node()
		if err != nil {
			return err
		}
		if err := f(ctx, t.c, name); err != nil {
			return fmt.Errorf("%s %s: %w", what, name, err)
		}
		fmt.Fprintf(e.stdout, "%s %s\n", name, done)
		return nil
	}
	switch sub {
	case "status":
		return t.status(ctx, *asJSON)
	case "down":
		return t.down(ctx)
	case "kill":
		return one("kill", t.d.Kill, "killed (SIGKILL); `ore testnet start` brings it back on its repo")
	case "stop":
		return one("stop", t.d.Stop, "stopped")
	case "start":
		return one("start", t.d.Start, "started")
	case "partition":
		return one("partition", t.d.Partition, "is cut off the network; `ore testnet heal` reconnects it")
	case "heal":
		return one("heal", t.d.Heal, "is back on the network")
	case "leader":
		name, err := t.leader(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, name)
		return nil
	case "url":
		u, err := t.d.GatewayURL(ctx, t.c)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, u)
		return nil
	case "verify":
		return t.verify(ctx)
	default: // logs
		name, err := node()
		if err != nil {
			return err
		}
		out, err := t.d.Logs(ctx, t.c, name, *tail)
		e.stdout.Write(out)
		return err
	}
}

type testnetCmd struct {
	e *env
	d *testnet.Docker
	c *testnet.Compose
}

// docker finds the engine, or says what to do without one.
func (t *testnetCmd) docker(ctx context.Context) error {
	d, err := testnet.FindDocker(ctx)
	if err != nil {
		return fmt.Errorf("%w\n`ore testnet` runs each node in its own container and needs a Docker engine with compose;\n`ore demo` runs the same network (coordinators, publisher, gateway, boxes) in one process", err)
	}
	t.d = d
	return nil
}

func (t *testnetCmd) open(ctx context.Context, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if t.c, err = testnet.LoadCompose(abs); err != nil {
		return err
	}
	return t.docker(ctx)
}

func (t *testnetCmd) up(ctx context.Context, fs *flag.FlagSet, dir *string, args []string) error {
	boxes := fs.Int("boxes", 6, "boxes besides the coordinators, publisher and gateway")
	epoch := fs.Duration("epoch", 5*time.Second, "ledger epoch length")
	subnet := fs.String("subnet", "10.213.7.0/24", "the testnet's private IPv4 network")
	port := fs.Int("gateway-port", 0, "the gateway's port on 127.0.0.1 (0: any free port)")
	binary := fs.String("binary", "", "a static linux ore binary to put in the image (default: build it from this source tree, else this executable)")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the network to be ready")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	w := t.e.stdout
	if err := t.docker(ctx); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	steps := 5
	step := func(i int, s string) { fmt.Fprintf(w, "[%d/%d] %s\n", i, steps, s) }
	step(1, fmt.Sprintf("lay out %d nodes in %s: keys, configs, genesis, compose file", *boxes+5, abs))
	c, err := testnet.PrepareCompose(testnet.ComposeSpec{Dir: abs, Boxes: *boxes, Subnet: *subnet,
		EpochLength: *epoch, GatewayPort: *port})
	if err != nil {
		return err
	}
	t.c = c
	step(2, "build a static ore binary (CGO_ENABLED=0) for the image")
	how, err := testnetBinary(ctx, *binary, c.BinaryPath())
	if err != nil {
		return fmt.Errorf("%w\n(`ore testnet down --dir %s` removes the half-made testnet)", err, *dir)
	}
	fmt.Fprintf(w, "      %s\n", how)
	step(3, fmt.Sprintf("build image %s FROM scratch (docker %s)", c.Image, t.d.Version))
	if err := t.d.Build(ctx, c); err != nil {
		return err
	}
	step(4, fmt.Sprintf("start the containers on network %s (%s)", c.Subnet, t.d.ComposeTool()))
	if err := t.d.Up(ctx, c); err != nil {
		return fmt.Errorf("%w\n(`ore testnet down --dir %s` removes what was started)", err, *dir)
	}
	step(5, "wait for a committee leader and every box in the DHT")
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := t.waitReady(wctx); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := t.status(ctx, false); err != nil {
		return err
	}
	u, err := t.d.GatewayURL(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\ntestnet ready: gateway %s/ipfs/{cid}\n", u)
	fmt.Fprintf(w, "next: ore testnet exec pub add /data/FILE (put FILE in %s), ore testnet status, ore testnet down\n", c.Repo("pub"))
	return nil
}

// testnetBinary puts a static linux ore binary at dst: the one given, a
// fresh build of this source tree, or this executable when it is static.
func testnetBinary(ctx context.Context, given, dst string) (string, error) {
	if given != "" {
		if err := checkStatic(given); err != nil {
			return "", err
		}
		return "copied " + given, copyExecutable(given, dst)
	}
	if root := moduleRoot(); root != "" {
		if _, err := exec.LookPath("go"); err == nil {
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dst, "./cmd/ore")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
			if out, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("testnet: go build ./cmd/ore in %s: %w\n%s", root, err, out)
			}
			return "built from " + root, nil
		}
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("testnet: no source tree and no executable path: pass --binary")
	}
	if err := checkStatic(self); err != nil {
		return "", fmt.Errorf("%w: run from the ore source tree (it builds one), or pass --binary", err)
	}
	return "copied this executable (" + self + ")", copyExecutable(self, dst)
}

// moduleRoot finds the ore source tree from the working directory up.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/orecdn/ore\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// checkStatic refuses a binary that needs a dynamic loader (an image
// FROM scratch has none) or is for another machine.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("testnet: %s is not a linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("testnet: %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386}[runtime.GOARCH]
	if want != 0 && f.Machine != want {
		return fmt.Errorf("testnet: %s is for %s, this machine's docker runs %s", path, f.Machine, runtime.GOARCH)
	}
	return nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// nodeStatus is one node as `ore testnet status` shows it.
type nodeStatus struct {
	testnet.ComposeNode
	State     string      `json:"state"` // docker's: running, exited, ...
	Connected bool        `json:"connected"`
	Status    *statusInfo `json:"status,omitempty"` // the node's own `ore status`, when it answers
	Error     string      `json:"error,omitempty"`
}

// statuses asks every node (or only the given ones) for its status, in
// parallel.
func (t *testnetCmd) statuses(ctx context.Context, only ...string) []nodeStatus {
	nodes := t.c.Nodes
	if len(only) > 0 {
		nodes = nil
		for _, n := range t.c.Nodes {
			if slices.Contains(only, n.Name) {
				nodes = append(nodes, n)
			}
		}
	}
	out := make([]nodeStatus, len(nodes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ns := nodeStatus{ComposeNode: n}
			defer func() { out[i] = ns }()
			var err error
			if ns.State, ns.Connected, err = t.d.State(ctx, t.c, n.Name); err != nil {
				ns.Error = err.Error()
				return
			}
			if ns.State != "running" {
				return
			}
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			b, err := t.d.Exec(sctx, t.c, n.Name, "status", "--json")
			if err != nil {
				ns.Error = err.Error()
				return
			}
			st := new(statusInfo)
			if err := json.Unmarshal(b, st); err != nil {
				ns.Error = fmt.Sprintf("bad status: %v", err)
				return
			}
			ns.Status = st
		}()
	}
	wg.Wait()
	return out
}

func (t *testnetCmd) status(ctx context.Context, asJSON bool) error {
	sts := t.statuses(ctx)
	if asJSON {
		return json.NewEncoder(t.e.stdout).Encode(sts)
	}
	tw := tabwriter.NewWriter(t.e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tPEER\tIP\tHEIGHT\tBALANCE\tSTORED\tPINS\tPEERS\tNOTE")
	for _, s := range sts {
		state := s.State
		if state == "running" && !s.Connected {
			state = "partitioned"
		}
		row := []string{s.Name, s.Role, state, shortPeer(s.Peer), s.IP, "-", "-", "-", "-", "-", ""}
		if st := s.Status; st != nil {
			row[7] = humanize.IBytes(uint64(st.StoreUsed))
			row[8] = fmt.Sprint(len(st.Pins))
			row[9] = fmt.Sprintf("%d (DHT %d)", st.Peers, st.DHTPeers)
			if l := st.Ledger; l != nil {
				if l.Error == "" {
					row[5], row[6] = fmt.Sprint(l.Height), formatOre(l.Balance)
				} else {
					row[10] = "ledger: " + l.Error
				}
				if l.IsLeader {
					row[10] = "committee leader"
				}
			}
		}
		if s.Error != "" {
			row[10] = s.Error
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func shortPeer(p string) string {
	if len(p) > 16 {
		return p[:6] + "…" + p[len(p)-6:]
	}
	return p
}

// waitReady waits until every node answers, a coordinator leads the
// committee and every other node has DHT peers, printing progress.
func (t *testnetCmd) waitReady(ctx context.Context) error {
	last := ""
	for {
		sts := t.statuses(ctx)
		answer, inDHT, leader, down := 0, 0, "", []string{}
		var notReady []string
		for _, s := range sts {
			if s.State != "running" {
				down = append(down, s.Name)
				continue
			}
			if s.Status == nil {
				notReady = append(notReady, s.Name)
				continue
			}
			answer++
			if s.Status.DHTPeers > 0 {
				inDHT++
			} else {
				notReady = append(notReady, s.Name)
			}
			if l := s.Status.Ledger; l != nil && l.IsLeader {
				leader = s.Name
			}
		}
		line := fmt.Sprintf("%d/%d nodes answer, %d in the DHT, leader %s", answer, len(sts), inDHT, orNone(leader))
		if line != last {
			fmt.Fprintf(t.e.stdout, "      %s\n", line)
			last = line
		}
		if len(down) > 0 {
			return t.failWith(ctx, fmt.Errorf("testnet: %v stopped while starting", down), down)
		}
		if inDHT == len(sts) && leader != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if leader == "" {
				for _, n := range t.c.Nodes {
					if n.Role == testnet.ComposeCoordinator {
						notReady = append(notReady, n.Name)
					}
				}
			}
			return t.failWith(ctx, fmt.Errorf("testnet: not ready in time (%s)", line), notReady)
		case <-time.After(time.Second):
		}
	}
}

// failWith adds the logs of the named nodes to err.
func (t *testnetCmd) failWith(ctx context.Context, err error, names []string) error {
	sort.Strings(names)
	names = compactStrings(names)
	var b strings.Builder
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	for _, n := range names {
		out, _ := t.d.Logs(lctx, t.c, n, 30)
		fmt.Fprintf(&b, "\n--- last lines of %s's log ---\n%s", n, out)
	}
	return fmt.Errorf("%w%s", err, b.String())
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none yet"
	}
	return s
}

func (t *testnetCmd) leader(ctx context.Context) (string, error) {
	var coords []string
	for _, n := range t.c.Nodes {
		if n.Role == testnet.ComposeCoordinator {
			coords = append(coords, n.Name)
		}
	}
	for _, s := range t.statuses(ctx, coords...) {
		if s.Status != nil && s.Status.Ledger != nil && s.Status.Ledger.IsLeader {
			return s.Name, nil
		}
	}
	return "", fmt.Errorf("testnet: no coordinator leads the committee now (an election may be under way; try again)")
}

func (t *testnetCmd) exec(ctx context.Context, name string, args []string) error {
	if _, err := t.c.Node(name); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", t.c.Container(name), "/ore"}, args...)...)
	cmd.Stdout, cmd.Stderr = t.e.stdout, t.e.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`ore %s` on %s: %w", strings.Join(args, " "), name, err)
	}
	return nil
}

// verify replays the chain on every running node and compares: every node
// at the same height must have the same state hash. Nodes that differ in
// height (a block arrived between two calls) are asked again.
func (t *testnetCmd) verify(ctx context.Context) error {
	type result struct {
		v   verifyInfo
		err error
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := map[string]result{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range t.statuses(ctx) {
			if s.State != "running" {
				fmt.Fprintf(t.e.stdout, "%-8s %s: not verified\n", s.Name, s.State)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				vctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				var r result
				b, err := t.d.Exec(vctx, t.c, s.Name, "ledger", "verify", "--json")
				if err == nil {
					err = json.Unmarshal(b, &r.v)
				}
				r.err = err
				mu.Lock()
				res[s.Name] = r
				mu.Unlock()
			}()
		}
		wg.Wait()
		heights := map[uint64]string{}
		var failed error
		same := true
		for _, n := range t.c.Nodes {
			r, ok := res[n.Name]
			if !ok {
				continue
			}
			if r.err != nil {
				failed = errors.Join(failed, fmt.Errorf("%s: %w", n.Name, r.err))
				continue
			}
			if h, ok := heights[r.v.Height]; ok && h != r.v.StateHash {
				return fmt.Errorf("testnet: state hashes differ at height %d: %s has %s, another node %s", r.v.Height, n.Name, r.v.StateHash, h)
			}
			heights[r.v.Height] = r.v.StateHash
		}
		if len(heights) > 1 {
			same = false
		}
		if failed == nil && (same || time.Now().After(deadline)) {
			for _, n := range t.c.Nodes {
				if r, ok := res[n.Name]; ok {
					fmt.Fprintf(t.e.stdout, "%-8s verified %d final blocks, height %d, state %s\n", n.Name, r.v.Blocks, r.v.Height, r.v.StateHash)
				}
			}
			if !same {
				return fmt.Errorf("testnet: nodes stayed at different heights for 30 s: %v", heights)
			}
			fmt.Fprintf(t.e.stdout, "every running node verified the chain from genesis: one state hash\n")
			return nil
		}
		if failed != nil && time.Now().After(deadline) {
			return fmt.Errorf("testnet: verify failed: %w", failed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (t *testnetCmd) down(ctx context.Context) error {
	fmt.Fprintf(t.e.stdout, "removing the containers, network %s and image %s\n", t.c.Project, t.c.Image)
	if err := t.d.Down(ctx, t.c); err != nil {
		return err
	}
	if err := os.RemoveAll(t.c.Dir); err != nil {
		return fmt.Errorf("testnet: remove %s: %w", t.c.Dir, err)
	}
	fmt.Fprintf(t.e.stdout, "removed %s\n", t.c.Dir)
	return nil
}
