package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/testnet"
)

const benchStorageHelp = `usage: ore bench storage [flags]

Proofs of storage through the ledger's state machine (rules version 5) in
this process: a committee of 4 signs every block with precommits, so each
round's challenges come from a real quorum's signatures; a publisher
offers storage of --roots roots of --size random bytes, pre-warmed on
--boxes boxes; every round each box answers its challenges from the bytes
it holds, and box 0, which deleted --drop of every root, answers only when
no challenge falls in a hole. Prints challenges and proofs per round,
proof bytes, a box's and the committee's CPU per proof, the committee's
capacity, the epochs until the cheater was caught next to the formula,
and storage paid against rounds proven; its last line says whether every
goal row holds.

`

func benchStorage(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench storage", "[flags]")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, benchStorageHelp)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	boxes := fs.Int("boxes", 8, "boxes holding every root (2 to 64)")
	roots := fs.Int("roots", 4, "roots offered and pre-warmed")
	sizeFlag := fs.String("size", "64MiB", "bytes of each root")
	rounds := fs.Int("rounds", 24, "challenge rounds (12 a day at 10 s epochs)")
	drop := fs.Float64("drop", 0.05, "the fraction of each root the cheating box deleted")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	size, err := sizeArg("size", *sizeFlag, "64MiB")
	if err != nil {
		return err
	}
	if *drop <= 0 || *drop >= 1 {
		return fmt.Errorf("%w: --drop %g: give a fraction between 0 and 1", errUsage, *drop)
	}
	cfg := testnet.StorageConfig{Boxes: *boxes, Roots: *roots, Size: int(size), Rounds: *rounds, Drop: *drop}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "bench storage: %d boxes, %d roots of %s, %d rounds, in this process...\n", *boxes, *roots, humanize.IBytes(size), *rounds)
		cfg.Log = func(format string, args ...any) { fmt.Fprintf(e.stderr, "  "+format+"\n", args...) }
	}
	f, err := testnet.BenchStorage(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(f)
	}
	w := e.stdout
	fmt.Fprintf(w, "K = %d challenges per held replica per round of %d epochs (%.0f rounds a day at 10 s), %d cores\n", f.K, f.RoundEpochs, f.RoundsPerDay, f.Cores)
	fmt.Fprintf(w, "per round     %.0f challenges, %.0f proofs taken (%d replicas held)\n", f.ChallengesPerRound, f.ProofsPerRound, f.Boxes*f.Roots)
	fmt.Fprintf(w, "proof         %.0f bytes a transaction; %.3f %% of the root a day per replica\n", f.ProofBytes, 100*f.BytesPerDayShare)
	fmt.Fprintf(w, "box CPU       %s per root per round (read and hash it, then the segments)\n", time.Duration(f.ProveNsPerRoot))
	fmt.Fprintf(w, "committee     %s to verify a proof, %s per proof in Build (state included); %d signature checks a proof, %d a round for the beacon\n",
		time.Duration(f.VerifyNs), time.Duration(f.BlockNsPerProof), f.SigChecksPerProof, f.BeaconSigChecks)
	fmt.Fprintf(w, "capacity      %.0f proofs/s on one core; 100,000 replicas need %.1f/s (%.2f %% of a core, beside receipts' 2 Ed25519 checks each)\n",
		f.CapacityPerSec, f.NeededPerSec, 100*f.CoreShare)
	fmt.Fprintf(w, "cheater       first miss after %v epochs per root (formula: %.0f expected); revoked after %v epochs\n",
		f.CaughtEpochs, f.ExpectedEpochs, f.RevokedAfterEpochs)
	fmt.Fprintf(w, "paid          honest %d of %d proven, cheater %d of %d proven; supply conserved: %v\n",
		f.PaidHonest, f.ProvenHonest, f.PaidCheater, f.ProvenCheat, f.Conserved)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\tvalue\ttarget\tholds")
	for _, r := range f.Rows {
		holds := "yes"
		if !r.Holds {
			holds = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Goal, r.Value, r.Target, holds)
	}
	_ = tw.Flush()
	if f.Holds {
		fmt.Fprintln(w, "every goal row holds")
	} else {
		fmt.Fprintln(w, "NOT every goal row holds: see the rows marked NO")
	}
	return nil
}
