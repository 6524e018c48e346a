package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

func cmdBench(ctx context.Context, e *env, args []string) error {
	sub, rest, done, err := subcommand(e, "usage: ore bench transfer|memory|gateway|ledger|swarm|fraud|chaos|storage|compute [flags] [--json]\n\n  transfer  one box fetches a file from another over loopback, against a raw libp2p stream\n  memory    RSS of a box (its own process): idle, serving and fetching a file\n  gateway   TTFB and throughput of cached objects through the gateway, next to http.FileServer;\n            --abuse: an honest client beside slow readers, a flood and heavy requests\n  ledger    receipts/s finalized by a committee (--members 3|4), and their latency\n  swarm     a flash crowd of boxes fetches one file: origin upload, completion time, replicas; scheduling off and on\n  fraud     attacks on paid delivery against a real committee: ore moved against what the rules allow\n  chaos     a committee of 4 under a random fault schedule (--seed): the ledger's invariants at the end\n  storage   proofs of storage: bytes and CPU per proof, capacity, a cheater caught against the formula\n  compute   a function job: the runtime against native Go, the meter's cost, jobs/s, cache hits, checks' share", "a benchmark", args)
	if done {
		return err
	}
	switch sub {
	case "transfer":
		return benchTransfer(ctx, e, rest)
	case "memory":
		return benchMemory(ctx, e, rest)
	case "gateway":
		return benchGateway(ctx, e, rest)
	case "ledger":
		return benchLedger(ctx, e, rest)
	case "swarm":
		return benchSwarm(ctx, e, rest)
	case "fraud":
		return benchFraud(ctx, e, rest)
	case "chaos":
		return benchChaos(ctx, e, rest)
	case "storage":
		return benchStorage(ctx, e, rest)
	case "compute":
		return benchCompute(ctx, e, rest)
	}
	return fmt.Errorf("%w: unknown benchmark %q (there are: transfer, memory, gateway, ledger, swarm, fraud, chaos, storage, compute)", errUsage, sub)
}

func benchTransfer(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench transfer", "[flags]")
	sizeFlag := fs.String("size", "256MiB", "bytes to transfer")
	transport := fs.String("transport", "quic", "what the two boxes listen on: tcp or quic")
	bulk := fs.Bool("bulk", true, "fetch over the bulk DAG path (false: bitswap alone)")
	cpuProfile := fs.String("cpuprofile", "", "write the CPU profile of the fetch with receipts on to this file (samples labelled box=0 serving, box=1 fetching)")
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
	if *transport != "tcp" && *transport != "quic" {
		return fmt.Errorf("%w: --transport %q: want tcp or quic", errUsage, *transport)
	}
	cfg := testnet.TransferConfig{Size: int64(size), Transport: *transport}
	var prof *os.File
	if *cpuProfile != "" {
		if prof, err = os.Create(*cpuProfile); err != nil {
			return fmt.Errorf("bench transfer: CPU profile: %w", err)
		}
		defer prof.Close()
	}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "bench transfer: two boxes on loopback (%s), %s of random bytes...\n", *transport, humanize.IBytes(size))
	}
	common := []node.Option{node.WithBulk(*bulk)}
	// Receipts off first, then on (the real configuration), each against a
	// raw stream copy between its own two hosts.
	off, err := testnet.BenchTransfer(ctx, cfg, testnet.WithNodeOptions(append(common, node.WithReceipts(false))...))
	if err != nil {
		return err
	}
	if prof != nil {
		cfg.Profile = prof
	}
	on, err := testnet.BenchTransfer(ctx, cfg, testnet.WithNodeOptions(common...))
	if err != nil {
		return err
	}
	out := transferReport{TransferResult: on, OffMBps: off.OreMBps, OffRatio: off.Ratio,
		ReceiptCost: 1 - on.OreMBps/off.OreMBps, Bulk: *bulk}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(out)
	}
	path := "bulk DAG path"
	if !*bulk {
		path = "bitswap"
	}
	fmt.Fprintf(e.stdout, "transfer of %s over %s, %s (%d blocks)\n", humanize.IBytes(size), on.Transport, path, on.Blocks)
	fmt.Fprintf(e.stdout, "  ore fetch       %8.1f MB/s  (%.2fs, receipts on)\n", on.OreMBps, on.OreSeconds)
	fmt.Fprintf(e.stdout, "  raw stream      %8.1f MB/s  (same hosts, same run)\n", on.RawMBps)
	fmt.Fprintf(e.stdout, "  ratio ore/raw   %8.2f\n", on.Ratio)
	fmt.Fprintf(e.stdout, "  receipts off    %8.1f MB/s  ratio %.2f against its own raw copy\n", off.OreMBps, off.Ratio)
	fmt.Fprintf(e.stdout, "  receipt cost    %8.1f%%  (1 - MB/s with receipts / without)\n", out.ReceiptCost*100)
	fmt.Fprintf(e.stdout, "  CPU s/GiB       serving  fetching  runtime (GC)  process   (receipts on)\n")
	fmt.Fprintf(e.stdout, "    ore           %7.2f  %8.2f  %12.2f  %7.2f\n", on.OreCPU.Serve, on.OreCPU.Fetch, on.OreCPU.Runtime, on.OreCPU.Total)
	fmt.Fprintf(e.stdout, "    raw stream    %7.2f  %8.2f  %12.2f  %7.2f\n", on.RawCPU.Serve, on.RawCPU.Fetch, on.RawCPU.Runtime, on.RawCPU.Total)
	fmt.Fprintf(e.stdout, "    ore / raw     %7.2f  %8.2f  (each side with its share of the runtime's; 0: too short for the profile to see)\n", on.ServeCPURatio, on.FetchCPURatio)
	fmt.Fprintf(e.stdout, "  add (publish)   %8.1f MB/s\n", on.AddMBps)
	fmt.Fprintf(e.stdout, "  duplicate blocks %d\n", on.DupBlocks)
	return nil
}

// transferReport is `ore bench transfer --json`: the figures with receipts
// on, and the same run with receipts off.
type transferReport struct {
	testnet.TransferResult
	OffMBps     float64 `json:"ore_mb_per_s_receipts_off"`
	OffRatio    float64 `json:"ratio_receipts_off"`
	ReceiptCost float64 `json:"receipt_cost"` // 1 - ore MB/s with receipts / without, same run
	Bulk        bool    `json:"bulk"`         // the fetch could use the bulk DAG path
}

// sizeArg reads a --flag value in bytes, like "256MiB": positive, at most
// 1 TiB.
func sizeArg(flag, v, like string) (uint64, error) {
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<40 {
		return 0, fmt.Errorf("%w: --%s %q is not a size like %s", errUsage, flag, v, like)
	}
	return n, nil
}
