// Command ore runs and drives an ore box: a peer of a shared CDN.
//
//	ore demo                  the whole mission on one machine, no set-up
//	ore init                  create a repo (identity, config)
//	ore daemon                run the box
//	ore add PATH              publish a file or directory
//	ore get CID [-o OUT]      fetch content and write it out
//	ore peers | ore status    look at a running box
//	ore bench transfer        measure ore against a raw libp2p stream
//	ore testnet up|status|down   a multi-node network in docker containers
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of ore.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command reads and writes, so tests run commands in-process.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

func commands() map[string]command {
	return map[string]command{
		"init":      {"create a repo: identity key and config", cmdInit},
		"daemon":    {"run the box (serves the network and the local control API)", cmdDaemon},
		"add":       {"publish a file or directory through the running box", cmdAdd},
		"get":       {"fetch content by CID and write it out", cmdGet},
		"peers":     {"list the peers the box is connected to", cmdPeers},
		"status":    {"show the box's identity, storage and network", cmdStatus},
		"demo":      {"run an ore network on this machine and show it working", cmdDemo},
		"bench":     {"measure ore (bench transfer)", cmdBench},
		"gateway":   {"run the box with its HTTP gateway (GET /ipfs/{cid}[/path])", cmdGateway},
		"dag":       {"import a CAR file, or export content as one", cmdDag},
		"ledger":    {"balances, blocks and verification of the ledger; deposit, register, transfer", cmdLedger},
		"fn":        {"functions over content: publish a WASI module as a function (fn register), run a job (fn run FN INPUT [-- ARGS])", cmdFn},
		"pin":       {"keep content whatever eviction says (add fetches it), or let it go: add, rm, ls", cmdPin},
		"name":      {"IPNS names: publish a CID under the box's peer ID, resolve a name", cmdName},
		"ticket":    {"authorize paid delivery of this box's content: a signed ticket for a client or any holder", cmdTicket},
		"dashboard": {"print a one-time login link to the box's web dashboard (and open it when there is a display)", cmdDashboard},
		"config":    {"show or change a setting of the running box: data-cap", cmdConfig},
		"testnet":   {"a multi-node network in docker containers: up, status, down, kill, partition, heal", cmdTestnet},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// errUsage marks an error the user fixes by changing the command line.
var errUsage = errors.New("usage")

func run(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "ore: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return 2
	}
	if err := c.run(ctx, e, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(e.stderr, "ore %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "ore: a shared CDN box\n\nusage: ore COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun `ore COMMAND -h` for a command's flags. Start with `ore demo`.")
}

// newFlags makes a flag set that prints to the env and returns errors.
func newFlags(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("ore "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: ore %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags anywhere on the line (`ore get CID -o x` and
// `ore get -o x CID` both work) and returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// repoFlag adds --repo with the default from $ORE_PATH or ~/.ore.
func repoFlag(e *env, fs *flag.FlagSet) *string {
	def := e.getenv("ORE_PATH")
	if def == "" {
		if home, err := os.UserHomeDir(); err == nil {
			def = filepath.Join(home, ".ore")
		} else {
			def = ".ore"
		}
	}
	return fs.String("repo", def, "repo directory (env ORE_PATH)")
}

// daemonArgs finishes the parsing of a command that talks to the running
// daemon: flags anywhere on the line, exactly n positional arguments, and
// a client for the daemon of --repo.
func daemonArgs(fs *flag.FlagSet, repo *string, args []string, n int, what string) ([]string, *client, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if err := wantArgs(pos, n, what); err != nil {
		return nil, nil, err
	}
	c, err := newClient(*repo)
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

// subcommand splits a command group's line (`ore ledger balance ...`) into
// the subcommand and its arguments. With no subcommand, or -h, it prints
// usage and done is true: the caller returns err (a usage error when the
// subcommand is missing, nil for -h).
func subcommand(e *env, usage, what string, args []string) (sub string, rest []string, done bool, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, usage)
		if len(args) == 0 {
			return "", nil, true, fmt.Errorf("%w: name %s", errUsage, what)
		}
		return "", nil, true, nil
	}
	return args[0], args[1:], false, nil
}

func wantArgs(pos []string, n int, what string) error {
	if len(pos) != n {
		return fmt.Errorf("%w: expected %s, got %q", errUsage, what, strings.Join(pos, " "))
	}
	return nil
}
