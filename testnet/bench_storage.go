package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/storeproof"
)

// StorageConfig tunes BenchStorage.
type StorageConfig struct {
	Boxes  int     // boxes holding every root (default 8, at most ledger.MaxPrewarmReplicas)
	Roots  int     // roots, each offered and pre-warmed on every box (default 4)
	Size   int     // bytes of each root (default 64 MiB)
	Rounds int     // challenge rounds to run (default 24: two days of 10 s epochs)
	Drop   float64 // the fraction of each root the cheating box deleted (default 0.05)
	// Trials is how many simulated days the catch rate is measured over,
	// with the ledger's challenge function and the cheater's real holes
	// (default 20,000).
	Trials int
	// Log, when set, hears what the bench does as it goes.
	Log func(format string, args ...any)
}

// StorageFigures are BenchStorage's measurements and goal rows.
type StorageFigures struct {
	Boxes, Roots, Rounds int
	Size                 int     `json:"root_bytes"`
	Drop                 float64 `json:"drop"`
	Cores                int     `json:"cores"`
	K                    int     `json:"challenges_per_round"`
	RoundEpochs          int     `json:"round_epochs"`
	RoundsPerDay         float64 `json:"rounds_per_day"` // at 10 s epochs
	// Per round: challenges (K per held replica) and proofs taken.
	ChallengesPerRound float64 `json:"challenges_per_round_all"`
	ProofsPerRound     float64 `json:"proofs_per_round"`
	ProofBytes         float64 `json:"proof_tx_bytes"`        // mean encoded proof transaction
	BytesPerDayShare   float64 `json:"proof_bytes_day_share"` // proof bytes per replica per day / root size
	VerifyNs           float64 `json:"verify_ns"`             // storeproof.Verify per proof, one core
	BlockNsPerProof    float64 `json:"block_ns_per_proof"`    // ledger.Build of the proofs' blocks, per proof
	ProveNsPerRoot     float64 `json:"prove_ns_per_root"`     // a box building a proof from a root's bytes (tree and segments)
	CapacityPerSec     float64 `json:"capacity_proofs_per_s"` // one core, at the Build figure
	NeededPerSec       float64 `json:"needed_proofs_per_s"`   // 100,000 replicas at the chosen rate
	CoreShare          float64 `json:"core_share"`            // of one core, for 100,000 replicas
	SigChecksPerProof  int     `json:"sig_checks_per_proof"`
	BeaconSigChecks    int     `json:"beacon_sig_checks_per_round"`
	// The cheater: the epochs until the ledger saw its first miss, per
	// root, next to the formula's expectation; and the simulated catch
	// rate within a day next to 1-(1-drop)^(K*rounds a day).
	CaughtEpochs       []int   `json:"caught_epochs"`
	ExpectedEpochs     float64 `json:"expected_epochs"`
	CaughtDayFormula   float64 `json:"caught_day_formula"`
	CaughtDaySimulated float64 `json:"caught_day_simulated"`
	Revoked            int     `json:"cheater_revoked_roots"`
	RevokedAfterEpochs []int   `json:"revoked_after_epochs"`
	// Money: what the ledger paid the boxes, against the rounds each
	// proved times RoundPay; what the cheater got, against what it proved.
	PaidHonest, ProvenHonest uint64
	PaidCheater, ProvenCheat uint64
	Conserved                bool `json:"supply_conserved"`
	Rows                     []StorageRow
	Holds                    bool
}

// StorageRow is one goal and whether it holds.
type StorageRow struct {
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Holds  bool   `json:"holds"`
}

type benchKey struct {
	k  crypto.PrivKey
	id peer.ID
}

func newBenchKeys(n int) ([]benchKey, error) {
	out := make([]benchKey, n)
	for i := range out {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return nil, err
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			return nil, err
		}
		out[i] = benchKey{k, id}
	}
	return out, nil
}

// BenchStorage runs proofs of storage through the ledger's state machine
// in this process: a committee of 4 (byzantine-safe finality) signs every
// block with precommits, so each round's beacon is a real quorum's; a
// publisher registers, pre-warms and offers storage of Roots roots of Size
// random bytes; a pre-warm order names Boxes boxes for each; every round
// each box answers its challenges from the bytes it holds (box 0 deleted
// a fraction Drop of every root, and answers only when no challenge falls
// in a hole), and the leader's blocks take the proofs. It measures what a
// proof costs (bytes, a box's CPU, the committee's CPU), how soon the
// cheater is caught against the formula, and what the ledger paid.
func BenchStorage(ctx context.Context, cfg StorageConfig) (StorageFigures, error) {
	if cfg.Boxes <= 0 {
		cfg.Boxes = 8
	}
	if cfg.Roots <= 0 {
		cfg.Roots = 4
	}
	if cfg.Size <= 0 {
		cfg.Size = 64 << 20
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 24
	}
	if cfg.Drop <= 0 {
		cfg.Drop = 0.05
	}
	if cfg.Trials <= 0 {
		cfg.Trials = 20_000
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Boxes < 2 || cfg.Boxes > ledger.MaxPrewarmReplicas {
		return StorageFigures{}, fmt.Errorf("testnet: bench storage: %d boxes, want 2 to %d", cfg.Boxes, ledger.MaxPrewarmReplicas)
	}
	// The pre-warm orders run at most heat.MaxPrewarmOrderEpochs.
	if maxRounds := int(heat.MaxPrewarmOrderEpochs/storeproof.RoundEpochs) - 2; cfg.Rounds > maxRounds {
		return StorageFigures{}, fmt.Errorf("testnet: bench storage: %d rounds, at most %d fit one pre-warm order", cfg.Rounds, maxRounds)
	}
	f := StorageFigures{Boxes: cfg.Boxes, Roots: cfg.Roots, Rounds: cfg.Rounds, Size: cfg.Size, Drop: cfg.Drop,
		Cores: runtime.GOMAXPROCS(0), K: storeproof.ChallengesPerRound, RoundEpochs: storeproof.RoundEpochs,
		RoundsPerDay: storeproof.RoundsPerDay(10)}

	com, err := newBenchKeys(4)
	if err != nil {
		return f, err
	}
	pubs, err := newBenchKeys(1)
	if err != nil {
		return f, err
	}
	boxes, err := newBenchKeys(cfg.Boxes)
	if err != nil {
		return f, err
	}
	pub := pubs[0]
	var members []ledger.Member
	for i, m := range com {
		members = append(members, ledger.Member{ID: m.id, Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4900+i)}})
	}
	g, err := ledger.NewGenesis("ore-bench-storage", time.Unix(1_700_000_000, 0), members, map[peer.ID]uint64{pub.id: 1 << 62}, 1_000_000_000)
	if err != nil {
		return f, err
	}
	g.Rules, g.Finality = ledger.RulesV5, ledger.FinalityBFT
	s, err := ledger.NewState(g)
	if err != nil {
		return f, err
	}
	var last *ledger.Block
	blockNs, blockProofs := int64(0), 0
	step := func(epoch uint64, txs []ledger.Tx) error {
		start := time.Now()
		b, next, rej, err := ledger.Build(s, epoch, com[0].id, int64(epoch), txs)
		if err != nil {
			return err
		}
		proofs := 0
		for _, t := range b.Txs {
			if t.Kind == ledger.KindProof {
				proofs++
			}
		}
		if proofs > 0 {
			blockNs += time.Since(start).Nanoseconds()
			blockProofs += proofs
		}
		if len(rej) > 0 {
			return fmt.Errorf("testnet: bench storage: block of epoch %d left out %d transactions, the first (%s): %v", epoch, len(rej), rej[0].Reason, rej[0].Err)
		}
		for _, m := range com {
			if err := b.SignPrecommit(m.k, 0); err != nil {
				return err
			}
		}
		s, last = next, b
		return ctx.Err()
	}
	signed := func(t ledger.Tx) ledger.Tx {
		t.From, t.Nonce = pub.id, s.Nonce(pub.id)+1
		_ = t.Sign(g.Network, pub.k)
		return t
	}

	// The roots: random bytes, their trees and the cheater's holes.
	logf("%d roots of %d bytes, %d boxes (box 0 deleted %.1f %% of each)", cfg.Roots, cfg.Size, cfg.Boxes, 100*cfg.Drop)
	type rootData struct {
		c     cid.Cid
		data  []byte
		tree  *storeproof.Tree
		com   storeproof.Commitment
		holes map[uint64]bool
	}
	roots := make([]rootData, cfg.Roots)
	var treeNs, proveNs int64
	proveCount := 0
	for i := range roots {
		r := &roots[i]
		r.data = make([]byte, cfg.Size)
		if _, err := rand.Read(r.data); err != nil {
			return f, err
		}
		h, err := mh.Sum([]byte(fmt.Sprintf("bench-storage-%d-%x", i, r.data[:16])), mh.SHA2_256, -1)
		if err != nil {
			return f, err
		}
		r.c = cid.NewCidV1(cid.Raw, h)
		start := time.Now()
		if r.tree, err = storeproof.NewTree(bytes.NewReader(r.data)); err != nil {
			return f, err
		}
		treeNs += time.Since(start).Nanoseconds()
		r.com = r.tree.Commitment()
		n := storeproof.Segments(r.com.Length)
		r.holes = make(map[uint64]bool)
		for _, i := range mrand.Perm(int(n))[:int(math.Round(cfg.Drop*float64(n)))] {
			r.holes[uint64(i)] = true
		}
	}
	treeNs /= int64(len(roots)) // a box reads and hashes a root to answer for it

	// Setup: escrow, registrations, pre-warms, offers, orders.
	until := uint64(cfg.Rounds+1)*storeproof.RoundEpochs - 1
	price := uint64(1_000_000) // per GiB per epoch
	if err := step(1, []ledger.Tx{signed(ledger.NewDeposit("", 0, 1<<60))}); err != nil {
		return f, err
	}
	for _, r := range roots {
		txs := []ledger.Tx{signed(ledger.NewRegisterRoot("", 0, r.c, nil, 0, 0))}
		if err := step(2, txs); err != nil {
			return f, err
		}
		if err := step(2, []ledger.Tx{signed(ledger.NewPrewarm("", 0, r.c, uint32(cfg.Boxes), until))}); err != nil {
			return f, err
		}
		if err := step(2, []ledger.Tx{signed(ledger.NewStorage("", 0, r.c, r.com, price, uint32(cfg.Boxes), until))}); err != nil {
			return f, err
		}
		o := &heat.Order{Epoch: 2, Root: r.c, Until: until, Reason: heat.ReasonPrewarm}
		for _, b := range boxes {
			o.Boxes = append(o.Boxes, b.id)
		}
		slices.Sort(o.Boxes)
		if err := o.Sign(g.Network, com[0].k); err != nil {
			return f, err
		}
		if err := step(2, []ledger.Tx{ledger.NewOrderTx(o)}); err != nil {
			return f, err
		}
	}
	pay := g.RoundPay(uint64(cfg.Size), price)
	cheater := boxes[0].id

	// The rounds.
	var verifyNs int64
	var proofBytes, proofs, challenges int
	caught := make([]int, len(roots))    // round of the cheater's first miss, +1
	revokedAt := make([]int, len(roots)) // round its revocation was seen, +1
	provenBy := make(map[peer.ID]uint64) // rounds proven
	for r := 0; r < cfg.Rounds; r++ {
		e := uint64(r)*storeproof.RoundEpochs + 3
		bt, ok := ledger.NewBeaconTx(g, last)
		if !ok {
			return f, fmt.Errorf("testnet: bench storage: no quorum on block %d", last.Header.Height)
		}
		if err := step(e, []ledger.Tx{bt}); err != nil {
			return f, err
		}
		var txs []ledger.Tx
		for _, b := range boxes {
			for _, ch := range s.Challenges(b.id) {
				challenges += len(ch.Indices)
				ri := slices.IndexFunc(roots, func(x rootData) bool { return x.c.Equals(ch.Root) })
				rd := roots[ri]
				if b.id == cheater && slices.ContainsFunc(ch.Indices, func(i uint64) bool { return rd.holes[i] }) {
					if caught[ri] == 0 {
						caught[ri] = r + 1
					}
					continue // a challenged segment is gone: no proof
				}
				start := time.Now()
				p, err := storeproof.Prove(rd.tree, bytes.NewReader(rd.data), ch.Indices)
				if err != nil {
					return f, err
				}
				proveNs += time.Since(start).Nanoseconds()
				proveCount++
				start = time.Now()
				if err := storeproof.Verify(ch.Commitment, ch.Indices, p); err != nil {
					return f, fmt.Errorf("testnet: bench storage: an honest proof does not verify: %w", err)
				}
				verifyNs += time.Since(start).Nanoseconds()
				tx := ledger.NewProofTx(b.id, ch.Root, ch.Round, p)
				proofBytes += len(tx.Marshal())
				proofs++
				provenBy[b.id]++
				txs = append(txs, tx)
			}
		}
		if err := step(e+1, txs); err != nil {
			return f, err
		}
		for ri, rd := range roots {
			for _, rec := range s.ReplicaRecords(cheater) {
				if rec.Root.Equals(rd.c) && rec.Revoked && revokedAt[ri] == 0 {
					revokedAt[ri] = r + 1
				}
			}
		}
		if r%6 == 5 {
			logf("round %d of %d: %d proofs so far", r+1, cfg.Rounds, proofs)
		}
	}
	// Close the last round.
	bt, _ := ledger.NewBeaconTx(g, last)
	if err := step(uint64(cfg.Rounds)*storeproof.RoundEpochs+3, []ledger.Tx{bt}); err != nil {
		return f, err
	}

	f.ChallengesPerRound = float64(challenges) / float64(cfg.Rounds)
	f.ProofsPerRound = float64(proofs) / float64(cfg.Rounds)
	f.ProofBytes = float64(proofBytes) / float64(proofs)
	f.BytesPerDayShare = f.ProofBytes * f.RoundsPerDay / float64(cfg.Size)
	f.VerifyNs = float64(verifyNs) / float64(proofs)
	f.BlockNsPerProof = float64(blockNs) / float64(blockProofs)
	f.ProveNsPerRoot = float64(treeNs) + float64(proveNs)/float64(max(1, proveCount))
	f.CapacityPerSec = 1e9 / f.BlockNsPerProof
	f.NeededPerSec = 100_000 * f.RoundsPerDay / 86400
	f.CoreShare = f.NeededPerSec / f.CapacityPerSec
	f.SigChecksPerProof = 0
	f.BeaconSigChecks = g.Quorum()
	for ri := range roots {
		if caught[ri] > 0 {
			f.CaughtEpochs = append(f.CaughtEpochs, caught[ri]*storeproof.RoundEpochs)
		}
		if revokedAt[ri] > 0 {
			f.Revoked++
			f.RevokedAfterEpochs = append(f.RevokedAfterEpochs, revokedAt[ri]*storeproof.RoundEpochs)
		}
	}
	missRound := 1 - math.Pow(1-cfg.Drop, storeproof.ChallengesPerRound)
	f.ExpectedEpochs = storeproof.RoundEpochs / missRound
	perDay := int(f.RoundsPerDay)
	f.CaughtDayFormula = storeproof.CatchProbability(cfg.Drop, perDay)
	// Simulated days: the ledger's challenge function under fresh seeds
	// against the cheater's holes in root 0.
	caughtDays := 0
	for trial := 0; trial < cfg.Trials; trial++ {
	day:
		for r := 0; r < perDay; r++ {
			seed := sha256.Sum256(fmt.Appendf(nil, "trial %d round %d", trial, r))
			for _, i := range storeproof.Challenge(seed, []byte(cheater), roots[0].c.Bytes(), roots[0].com.Length) {
				if roots[0].holes[i] {
					caughtDays++
					break day
				}
			}
		}
	}
	f.CaughtDaySimulated = float64(caughtDays) / float64(cfg.Trials)

	// Money.
	for _, b := range boxes {
		var earned uint64
		for _, rec := range s.ReplicaRecords(b.id) {
			earned += rec.Earned
		}
		if b.id == cheater {
			f.PaidCheater, f.ProvenCheat = earned, provenBy[b.id]*pay
		} else {
			f.PaidHonest += earned
			f.ProvenHonest += provenBy[b.id] * pay
		}
	}
	var sum uint64
	for _, id := range s.Accounts() {
		a := s.Account(id)
		sum += a.Balance + a.Escrow + a.Reserved
	}
	f.Conserved = sum == s.Supply()

	// The goals.
	sigma := math.Sqrt(f.CaughtDayFormula * (1 - f.CaughtDayFormula) / float64(cfg.Trials))
	f.Rows = []StorageRow{
		{Goal: fmt.Sprintf("a box that dropped %.0f %% is caught within a day", 100*cfg.Drop),
			Value:  fmt.Sprintf("%.2f %% (formula), %.2f %% (%d simulated days)", 100*f.CaughtDayFormula, 100*f.CaughtDaySimulated, cfg.Trials),
			Target: "≥ 99 %, simulation within 4σ of the formula",
			Holds:  f.CaughtDayFormula >= 0.99 && math.Abs(f.CaughtDaySimulated-f.CaughtDayFormula) <= 4*sigma+1e-9},
		{Goal: "proof bytes a day per replica, share of the root", Value: fmt.Sprintf("%.3f %% of %d MiB", 100*f.BytesPerDayShare, cfg.Size>>20),
			Target: "< 1 % (roots of 64 MiB and more)", Holds: f.BytesPerDayShare < 0.01 || cfg.Size < 64<<20},
		{Goal: "one committee core keeps up with 100,000 replicas", Value: fmt.Sprintf("%.0f proofs/s capacity, %.1f/s needed (%.2f %% of a core)", f.CapacityPerSec, f.NeededPerSec, 100*f.CoreShare),
			Target: "capacity ≥ needed", Holds: f.CapacityPerSec >= f.NeededPerSec},
		{Goal: "storage paid equals rounds proven × round pay", Value: fmt.Sprintf("honest %d of %d, cheater %d of %d", f.PaidHonest, f.ProvenHonest, f.PaidCheater, f.ProvenCheat),
			Target: "equal, supply conserved", Holds: f.PaidHonest == f.ProvenHonest && f.PaidCheater == f.ProvenCheat && f.Conserved},
		{Goal: "the cheater is revoked on every root", Value: fmt.Sprintf("%d of %d roots", f.Revoked, cfg.Roots),
			Target: fmt.Sprintf("all, within %d rounds", cfg.Rounds), Holds: f.Revoked == cfg.Roots},
	}
	f.Holds = true
	for _, r := range f.Rows {
		f.Holds = f.Holds && r.Holds
	}
	return f, nil
}
