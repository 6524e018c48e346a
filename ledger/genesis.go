package ledger

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// Committee sizes a genesis accepts. What each tolerates depends on the
// finality rule (Genesis.Tolerates): under FinalityBFT 4 and 5 tolerate
// one faulty coordinator, lying or crashed, and 3 none; under
// FinalityMajority 3 and 4 tolerate one crashed, 5 two, and none lying.
var CommitteeSizes = []int{3, 4, 5}

// Genesis limits.
const (
	MaxAddrsPerMember = 16
	MaxGenesisFile    = 16 << 20
)

// ErrBadGenesis wraps every reason a genesis is refused.
var ErrBadGenesis = errors.New("ledger: bad genesis")

// Member is a coordinator of the committee: its peer ID and the multiaddrs
// the other coordinators dial (without the /p2p/ part).
type Member struct {
	ID    peer.ID  `json:"id"`
	Addrs []string `json:"addrs"`
}

// AddrInfo parses the member's addresses.
func (m Member) AddrInfo() (peer.AddrInfo, error) {
	ai := peer.AddrInfo{ID: m.ID}
	for _, s := range m.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return ai, fmt.Errorf("ledger: member %s: address %q: %w", m.ID, s, err)
		}
		ai.Addrs = append(ai.Addrs, a)
	}
	return ai, nil
}

// Allocation is an initial balance.
type Allocation struct {
	Account peer.ID `json:"account"`
	Amount  uint64  `json:"amount"`
}

// Genesis is the file every peer of a network shares. It is immutable once
// validated; a State keeps a pointer to it.
type Genesis struct {
	Network     string        // network ID, as in receipts
	Time        time.Time     // epoch 0 starts here
	EpochLength time.Duration // default pod.DefaultEpochLength
	Committee   []Member      // 3, 4 or 5 coordinators
	Balances    []Allocation  // initial balances, sorted by account
	PricePerGiB uint64        // the network's price, for registrations that name none
	// Rules is the version of the state rules: 0 and RulesV1 are the
	// first (the state hash covers one list of every paid entry); RulesV2
	// hashes the paid entries of each epoch on their own, so a block
	// rehashes the epochs it pays, not the whole window; RulesV3 adds a
	// publisher's controls over its escrow: a per-epoch spending cap and
	// withdrawal after a notice. NewGenesis picks the latest; a genesis
	// file without "rules" keeps RulesV1, so chains written before
	// RulesV2 still verify, and each chain keeps the rules it began with.
	Rules uint8
	// Finality is the finality rule (see finality.go): 0 and
	// FinalityMajority are a majority of the committee's signatures;
	// FinalityBFT is more than two thirds of the committee's precommits
	// of one round. NewGenesis picks FinalityBFT for committees of 4 or 5.
	Finality uint8
	// StorageRound (RulesV5) is the epochs of a storage challenge round;
	// 0 takes storeproof.RoundEpochs (2 h of 10 s epochs). A test or demo
	// network sets a few epochs to see rounds pass.
	StorageRound uint64
	// JobCheckPermille (RulesV5) is the share of paid jobs, per mille,
	// sampled for a check by the committee; 0 takes
	// DefaultJobCheckPermille. A runner's bond must cover
	// JobBondFactor() times its pay under challenge: bond >= pay / rate.
	JobCheckPermille uint16
	// JobChallengeEpochs (RulesV5) is how long a job's pay is held after
	// the block that took it, the time the checkers have to prove a
	// mismatch; 0 takes DefaultJobChallengeEpochs.
	JobChallengeEpochs uint64
}

// The state rules versions (Genesis.Rules).
const (
	RulesV1 = 1
	RulesV2 = 2
	RulesV3 = 3
	// RulesV4 pays only demand a publisher authorized (tickets, roots
	// opened to anyone within a budget, per-client size caps; see
	// tickets.go) and replication a final block ordered (orders.go).
	RulesV4 = 4
	// RulesV5 pays storage a box proves it holds (storage.go, package
	// storeproof).
	// RulesV5 verifies jobs: runner bonds, held pay, sampled checks and
	// proofs of a mismatch, jobs under tickets (jobcheck.go).
	RulesV5     = 5
	RulesLatest = RulesV4
	rulesMax    = RulesV5
)

type genesisJSON struct {
	Network      string       `json:"network"`
	Time         time.Time    `json:"genesis_time"`
	EpochLength  string       `json:"epoch_length,omitempty"`
	Committee    []Member     `json:"committee"`
	Balances     []Allocation `json:"balances"`
	PricePerGiB  uint64       `json:"price_per_gib"`
	Rules        uint8        `json:"rules,omitempty"`
	Finality     uint8        `json:"finality,omitempty"`
	StorageRound uint64       `json:"storage_round_epochs,omitempty"`
	JobCheck     uint16       `json:"job_check_permille,omitempty"`
	JobWindow    uint64       `json:"job_challenge_epochs,omitempty"`
	// Tolerates is written for the reader, from the committee's size and
	// the finality rule; it is not read back.
	Tolerates *tolerance `json:"tolerates,omitempty"`
}

// tolerance is what the committee survives (Genesis.Tolerates).
type tolerance struct {
	Crashed   int    `json:"crashed"`
	Byzantine int    `json:"byzantine"`
	Quorum    string `json:"quorum"`
}

// MarshalJSON writes the human-editable form ("epoch_length": "10s").
func (g *Genesis) MarshalJSON() ([]byte, error) {
	crashed, byz := g.Tolerates()
	return json.Marshal(genesisJSON{Network: g.Network, Time: g.Time.UTC(), EpochLength: g.EpochLength.String(),
		Committee: g.Committee, Balances: g.Balances, PricePerGiB: g.PricePerGiB, Rules: g.Rules, Finality: g.Finality, StorageRound: g.StorageRound,
		JobCheck: g.JobCheckPermille, JobWindow: g.JobChallengeEpochs,
		Tolerates: &tolerance{Crashed: crashed, Byzantine: byz, Quorum: fmt.Sprintf("%d of %d", g.Quorum(), len(g.Committee))}})
}

// UnmarshalJSON reads what MarshalJSON writes; a missing epoch length
// means the default. It does not validate (ParseGenesis does).
func (g *Genesis) UnmarshalJSON(data []byte) error {
	var j genesisJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %w", ErrBadGenesis, err)
	}
	el := pod.DefaultEpochLength
	if j.EpochLength != "" {
		d, err := time.ParseDuration(j.EpochLength)
		if err != nil {
			return fmt.Errorf("%w: epoch_length: %w", ErrBadGenesis, err)
		}
		el = d
	}
	*g = Genesis{Network: j.Network, Time: j.Time, EpochLength: el, Committee: j.Committee,
		Balances: j.Balances, PricePerGiB: j.PricePerGiB, Rules: j.Rules, Finality: j.Finality, StorageRound: j.StorageRound,
		JobCheckPermille: j.JobCheck, JobChallengeEpochs: j.JobWindow}
	return nil
}

// ParseGenesis decodes and validates a genesis file's contents.
func ParseGenesis(data []byte) (*Genesis, error) {
	if len(data) > MaxGenesisFile {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadGenesis, len(data), MaxGenesisFile)
	}
	g := &Genesis{}
	if err := json.Unmarshal(data, g); err != nil {
		if errors.Is(err, ErrBadGenesis) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadGenesis, err)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// LoadGenesis reads and validates a genesis file.
func LoadGenesis(path string) (*Genesis, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: load genesis: %w", err)
	}
	return ParseGenesis(data)
}

// Save writes the genesis as indented JSON.
func (g *Genesis) Save(path string) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	return nil
}

// NewGenesis builds and validates a genesis, as `ore testnet` and `ore demo`
// do. The epoch length is the default; balances are sorted by account;
// the finality rule is FinalityBFT for committees of 4 and 5 and the
// majority rule for 3 (see Tolerates).
func NewGenesis(network string, t time.Time, committee []Member, balances map[peer.ID]uint64, pricePerGiB uint64) (*Genesis, error) {
	g := &Genesis{Network: network, Time: t.UTC(), EpochLength: pod.DefaultEpochLength,
		Committee: slices.Clone(committee), PricePerGiB: pricePerGiB, Rules: RulesLatest, Finality: FinalityLatest}
	// Under FinalityBFT a committee of 3 needs every signature (it
	// tolerates no fault at all); under the majority rule it survives a
	// crashed member. It keeps the majority rule; 4 and 5 get FinalityBFT.
	if len(committee) < 4 {
		g.Finality = FinalityMajority
	}
	for id, n := range balances {
		g.Balances = append(g.Balances, Allocation{Account: id, Amount: n})
	}
	slices.SortFunc(g.Balances, func(a, b Allocation) int { return cmp.Compare(a.Account, b.Account) })
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// Validate checks the genesis: network ID, time, epoch length, a committee
// of 3, 4 or 5 distinct Ed25519 peer IDs with parseable addresses, positive
// balances of distinct Ed25519 accounts whose sum fits in a uint64, and a
// price.
func (g *Genesis) Validate() error {
	if g.Network == "" || len(g.Network) > pod.MaxNetworkLen {
		return fmt.Errorf("%w: network ID must be 1 to %d bytes", ErrBadGenesis, pod.MaxNetworkLen)
	}
	if g.Time.IsZero() || g.Time.Year() < 1970 || g.Time.Year() > 2200 {
		return fmt.Errorf("%w: genesis time %v out of range", ErrBadGenesis, g.Time)
	}
	if g.EpochLength < time.Second || g.EpochLength > 24*time.Hour {
		return fmt.Errorf("%w: epoch length %s is not between 1s and 24h", ErrBadGenesis, g.EpochLength)
	}
	if g.Rules > rulesMax {
		return fmt.Errorf("%w: rules version %d, this build knows up to %d: upgrade ore", ErrBadGenesis, g.Rules, rulesMax)
	}
	if g.StorageRound != 0 && (g.Rules < RulesV5 || g.StorageRound < 2 || g.StorageRound > MaxPrewarmEpochs) {
		return fmt.Errorf("%w: storage round of %d epochs: rules version 5 takes 2 to %d (0: the default)", ErrBadGenesis, g.StorageRound, MaxPrewarmEpochs)
	}
	if g.JobCheckPermille != 0 && (g.Rules < RulesV5 || g.JobCheckPermille > 1000) {
		return fmt.Errorf("%w: jobs checked at %d per mille: rules version 5 takes 1 to 1000 (0: the default, %d)", ErrBadGenesis, g.JobCheckPermille, DefaultJobCheckPermille)
	}
	if g.JobChallengeEpochs != 0 && (g.Rules < RulesV5 || g.JobChallengeEpochs > MaxPrewarmEpochs) {
		return fmt.Errorf("%w: a job challenge window of %d epochs: rules version 5 takes 1 to %d (0: the default, %d)", ErrBadGenesis, g.JobChallengeEpochs, MaxPrewarmEpochs, DefaultJobChallengeEpochs)
	}
	if g.Finality > finalityMax {
		return fmt.Errorf("%w: finality rule %d, this build knows up to %d: upgrade ore", ErrBadGenesis, g.Finality, finalityMax)
	}
	if !slices.Contains(CommitteeSizes, len(g.Committee)) {
		return fmt.Errorf("%w: committee of %d, want 3, 4 or 5", ErrBadGenesis, len(g.Committee))
	}
	seen := make(map[peer.ID]bool)
	for _, m := range g.Committee {
		if err := checkAccount(m.ID); err != nil {
			return fmt.Errorf("%w: committee member: %w", ErrBadGenesis, err)
		}
		if seen[m.ID] {
			return fmt.Errorf("%w: committee member %s twice", ErrBadGenesis, m.ID)
		}
		seen[m.ID] = true
		if len(m.Addrs) == 0 || len(m.Addrs) > MaxAddrsPerMember {
			return fmt.Errorf("%w: committee member %s has %d addresses, want 1 to %d", ErrBadGenesis, m.ID, len(m.Addrs), MaxAddrsPerMember)
		}
		if _, err := m.AddrInfo(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadGenesis, err)
		}
	}
	clear(seen)
	var supply uint64
	for _, a := range g.Balances {
		if err := checkAccount(a.Account); err != nil {
			return fmt.Errorf("%w: balance: %w", ErrBadGenesis, err)
		}
		if seen[a.Account] {
			return fmt.Errorf("%w: account %s has two balances", ErrBadGenesis, a.Account)
		}
		seen[a.Account] = true
		if a.Amount == 0 {
			return fmt.Errorf("%w: account %s has a zero balance", ErrBadGenesis, a.Account)
		}
		if supply+a.Amount < supply {
			return fmt.Errorf("%w: balances overflow a uint64", ErrBadGenesis)
		}
		supply += a.Amount
	}
	if g.PricePerGiB == 0 {
		return fmt.Errorf("%w: no price per GiB", ErrBadGenesis)
	}
	return nil
}

// checkAccount accepts the peer IDs that can be accounts: those that embed
// an Ed25519 key.
func checkAccount(id peer.ID) error {
	if id == "" {
		return errors.New("ledger: empty peer ID")
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("ledger: peer ID %s carries no public key: %w", id, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return fmt.Errorf("ledger: peer ID %s has a %s key, accounts take Ed25519", id, pk.Type())
	}
	return nil
}

// Supply is the sum of the initial balances: the fixed total supply.
func (g *Genesis) Supply() uint64 {
	var s uint64
	for _, a := range g.Balances {
		s += a.Amount
	}
	return s
}

// Params are the receipt parameters of the network.
func (g *Genesis) Params() pod.Params {
	p := pod.Params{Network: g.Network, GenesisTime: g.Time, EpochLength: g.EpochLength, MaxSkew: pod.DefaultMaxSkew}
	if g.Rules >= RulesV4 {
		p.MaxReceiptVersion = pod.VersionTicket
	}
	return p
}

// IsMember reports whether id is on the committee.
func (g *Genesis) IsMember(id peer.ID) bool {
	for _, m := range g.Committee {
		if m.ID == id {
			return true
		}
	}
	return false
}

const genesisDomain = "ore/ledger/v1/genesis\x00"

// Hash is SHA-256 over a canonical binary form of the genesis: committee
// and balances sorted by peer ID, addresses in file order, time in unix
// nanoseconds. It is the previous-block hash of block 1.
func (g *Genesis) Hash() [32]byte {
	b := append([]byte(nil), genesisDomain...)
	b = wire.AppendBytes(b, []byte(g.Network))
	b = binary.BigEndian.AppendUint64(b, uint64(g.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(g.EpochLength))
	b = binary.AppendUvarint(b, g.PricePerGiB)
	com := slices.Clone(g.Committee)
	slices.SortFunc(com, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	b = binary.AppendUvarint(b, uint64(len(com)))
	for _, m := range com {
		b = wire.AppendPeer(b, m.ID)
		b = binary.AppendUvarint(b, uint64(len(m.Addrs)))
		for _, a := range m.Addrs {
			b = wire.AppendBytes(b, []byte(a))
		}
	}
	bal := slices.Clone(g.Balances)
	slices.SortFunc(bal, func(a, b Allocation) int { return cmp.Compare(a.Account, b.Account) })
	b = binary.AppendUvarint(b, uint64(len(bal)))
	for _, a := range bal {
		b = wire.AppendPeer(b, a.Account)
		b = binary.AppendUvarint(b, a.Amount)
	}
	// The balances are counted, so what follows is unambiguous; a genesis
	// of the first rules hashes as it did before Rules existed.
	if g.Rules >= RulesV2 {
		b = binary.AppendUvarint(b, uint64(g.Rules))
	}
	// Likewise a genesis of the first finality rule hashes as before.
	if g.FinalityRule() > FinalityMajority {
		if g.Rules < RulesV2 {
			b = binary.AppendUvarint(b, uint64(g.Rules))
		}
		b = binary.AppendUvarint(b, uint64(g.Finality))
	}
	// A genesis of RulesV5 or later (named above) ends with its storage
	// round.
	if g.Rules >= RulesV5 {
		b = binary.AppendUvarint(b, g.StorageRound)
		// Then, if either is set, its jobs' sampling rate and challenge
		// window: a genesis that sets neither hashes as before they
		// existed (the uvarints are the hash input's last, so presence
		// is unambiguous).
		if g.JobCheckPermille != 0 || g.JobChallengeEpochs != 0 {
			b = binary.AppendUvarint(b, uint64(g.JobCheckPermille))
			b = binary.AppendUvarint(b, g.JobChallengeEpochs)
		}
	}
	return sha256.Sum256(b)
}
