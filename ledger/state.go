package ledger

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// ErrBadHeader wraps every header that does not follow the state.
var ErrBadHeader = errors.New("ledger: bad block header")

// Account is what the ledger holds for one peer ID.
type Account struct {
	Balance uint64 // spendable
	Escrow  uint64 // deposited: pays servers for the account's registered content
	Nonce   uint64 // of the last account transaction; the next one carries Nonce+1
	// EpochCap is the most the escrow pays for receipts of any one epoch
	// (RulesV3; 0: no cap). A publisher bounds its spend per epoch with
	// it, whatever demand arrives.
	EpochCap uint64
	// Reserved (RulesV4) is escrow set aside by the account's pre-warms
	// for the replication they order (see orders.go): it pays only that,
	// and returns to Escrow when a pre-warm ends.
	Reserved uint64
}

// Withdrawal is escrow on its way back to the balance: Amount (at most
// what is then in escrow) moves when the first block of epoch At or later
// is applied. Until then the escrow pays receipts as before.
type Withdrawal struct {
	Amount uint64
	At     uint64
}

// WithdrawDelay is how many epochs after the block that takes it a
// withdrawal moves escrow back: a block takes receipts of its epoch and
// the MaxSkew before it, so by then no receipt of an epoch before the
// withdrawal can still be paid, and every delivery made while the escrow
// stood is paid from it.
func WithdrawDelay(p pod.Params) uint64 { return p.MaxSkew + 1 }

// Registration is a content root a publisher pays delivery of.
type Registration struct {
	Root        cid.Cid
	Publisher   peer.ID
	PricePerGiB uint64
	// RulesV4: the size of the root's DAG (read from its block), what the
	// publisher pays per epoch for receipts under no ticket (0: tickets
	// only), and the height of the block that first registered it.
	Size, Open, Since uint64
	// Replicate (RulesV4) is what the publisher pays per epoch for the
	// replication of the root the committee orders when it is hot (0:
	// none).
	Replicate uint64
}

// Prewarm is a publisher's standing request that Replicas boxes hold its
// registered Root up to and including epoch Until. The coordinators'
// scheduler reads the active ones (State.Prewarms) and assigns boxes.
type Prewarm struct {
	Root      cid.Cid
	Publisher peer.ID
	Replicas  uint32
	Until     uint64 // the last epoch of the pre-warm
	// Reserved (RulesV4) is what is left of the escrow the pre-warm set
	// aside for its replication.
	Reserved uint64
}

// State is the ledger after some block: balances, escrows, nonces,
// registrations, active pre-warms and what receipts were already paid. A
// State is immutable: Apply and Build return a new one, so any State may
// be read from many goroutines and kept as a snapshot.
type State struct {
	g        *Genesis
	gh       [32]byte
	params   pod.Params
	supply   uint64
	height   uint64
	lastHash [32]byte
	epoch    uint64
	accounts map[peer.ID]Account     // no zero Account is stored
	regs     map[string]Registration // by CID bytes
	prewarms map[string]Prewarm      // by CID bytes; none with Until before epoch
	// withdrawals pending (RulesV3); none with At at or before epoch.
	withdrawals map[peer.ID]Withdrawal
	// RulesV4: the tickets learned, by the first byte of their ID, and
	// the registrations of each root (CID bytes) open to unticketed
	// receipts (regKeys, sorted; a slice is never written in place).
	tickets   [256]*ticketShard
	openRoots map[string][]string
	// RulesV4: every registration key of each root (sorted), and the
	// replication orders recorded, by root (see orders.go); ordersOwned
	// is set once this state copied orders to write them.
	rootRegs    map[string][]string
	orders      map[string]*orderEntry
	ordersOwned bool
	ordersHash  [32]byte
	// RulesV4: the keys each publisher delegated to sign its tickets, with
	// the last epoch each may (tickets.go); a publisher's map is copied
	// before a block writes it.
	delegates map[peer.ID]map[peer.ID]uint64
	// paid holds the bytes accounted per (S, C, R, E), one section per
	// epoch E: dropping an epoch that fell out of the skew drops its
	// section, and a block copies only the sections it adds to.
	paid map[uint64]*paidEpoch
	jobs *jobLedger // RulesV4's functions and paid jobs (jobs.go); nil: none yet
	// excluded are the members evidence excluded (evidence.go), sorted;
	// a slice is never written in place.
	excluded []peer.ID
	// storage is RulesV5's storage offers, proof records and open round
	// (storage.go); nil: none yet.
	storage *storageBook
	hash    [32]byte // Hash, computed once the state is complete
}

// paidEpoch is one epoch's section of the paid entries. A State shares the
// sections its block did not touch with the state before it; the first
// write of a block to a section copies it (owner is the State that may
// write it).
type paidEpoch struct {
	owner *State
	bytes map[pod.Key]uint64
	// keys are bytes' keys in hash order, but for added, the ones this
	// section's owner added, which seal merges in: a block sorts its own
	// keys, not the whole section.
	keys, added []pod.Key
	// spent is what each publisher's escrow paid for receipts of this
	// epoch, kept under RulesV3 for publishers with an EpochCap.
	spent map[peer.ID]uint64
	// RulesV4: the bytes claimed per (client, root) over every server, and
	// the open budget each registration (regKey) spent.
	claimed map[clientRoot]uint64
	open    map[string]uint64
	// RulesV4: what each registration (regKey) paid for heat replication.
	replicated map[string]uint64
	hash       [32]byte // RulesV2's section hash, set by seal
}

// NewState is the state at height 0: the genesis balances.
func NewState(g *Genesis) (*State, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	s := &State{g: g, gh: g.Hash(), params: g.Params(), supply: g.Supply(),
		accounts: make(map[peer.ID]Account, len(g.Balances)),
		regs:     make(map[string]Registration), prewarms: make(map[string]Prewarm),
		withdrawals: make(map[peer.ID]Withdrawal), paid: make(map[uint64]*paidEpoch), openRoots: make(map[string][]string)}
	s.lastHash = s.gh
	for _, a := range g.Balances {
		s.accounts[a.Account] = Account{Balance: a.Amount}
	}
	s.hash = s.computeHash()
	return s, nil
}

// Genesis returns the network's genesis.
func (s *State) Genesis() *Genesis { return s.g }

// Height is the height of the last applied block (0 at genesis).
func (s *State) Height() uint64 { return s.height }

// LastHash is the hash of the last applied block (the genesis hash at 0).
func (s *State) LastHash() [32]byte { return s.lastHash }

// Epoch is the epoch of the last applied block.
func (s *State) Epoch() uint64 { return s.epoch }

// Supply is the fixed total supply: the sum of every balance and escrow.
func (s *State) Supply() uint64 { return s.supply }

// Account returns id's account (zero if the ledger does not know it).
func (s *State) Account(id peer.ID) Account { return s.accounts[id] }

// Balance is id's spendable balance.
func (s *State) Balance(id peer.ID) uint64 { return s.accounts[id].Balance }

// Escrow is id's deposit that pays for its content.
func (s *State) Escrow(id peer.ID) uint64 { return s.accounts[id].Escrow }

// Nonce is id's last used nonce; its next transaction carries Nonce+1.
func (s *State) Nonce(id peer.ID) uint64 { return s.accounts[id].Nonce }

// Accounts lists the known accounts, sorted.
func (s *State) Accounts() []peer.ID { return slices.Sorted(maps.Keys(s.accounts)) }

// Registration returns the registration of a content root: under RulesV4,
// where each publisher registers on its own, the first one (see
// RegistrationOf).
func (s *State) Registration(root cid.Cid) (Registration, bool) {
	if !root.Defined() {
		return Registration{}, false
	}
	if s.g.Rules < RulesV4 {
		r, ok := s.regs[string(root.Bytes())]
		return r, ok
	}
	var first Registration
	found := false
	for _, r := range s.regs {
		if r.Root.Equals(root) && (!found || r.Since < first.Since || r.Since == first.Since && r.Publisher < first.Publisher) {
			first, found = r, true
		}
	}
	return first, found
}

// RegistrationOf returns publisher's registration of root.
func (s *State) RegistrationOf(publisher peer.ID, root cid.Cid) (Registration, bool) {
	if !root.Defined() {
		return Registration{}, false
	}
	r, ok := s.regs[s.regKey(publisher, root.KeyString())]
	if ok && r.Publisher != publisher {
		return Registration{}, false
	}
	return r, ok
}

// regKey is the key of publisher's registration of root: under RulesV4
// one per (publisher, root), before it one per root.
func (s *State) regKey(publisher peer.ID, root string) string {
	if s.g.Rules >= RulesV4 {
		return regKey(publisher, root)
	}
	return root
}

// Prewarm returns the active pre-warm of a content root.
func (s *State) Prewarm(root cid.Cid) (Prewarm, bool) {
	if !root.Defined() {
		return Prewarm{}, false
	}
	if s.g.Rules < RulesV4 {
		p, ok := s.prewarms[string(root.Bytes())]
		return p, ok
	}
	for _, k := range s.rootRegs[root.KeyString()] {
		if p, ok := s.prewarms[k]; ok && p.Until >= s.epoch {
			return p, true
		}
	}
	return Prewarm{}, false
}

// Prewarms lists the active pre-warms (Until at or after the state's
// epoch), sorted by root (its CID bytes). Under RulesV4 the ledger keeps
// a pre-warm MaxSkew epochs longer, for the receipts it may still pay.
func (s *State) Prewarms() []Prewarm {
	out := make([]Prewarm, 0, len(s.prewarms))
	for _, k := range slices.Sorted(maps.Keys(s.prewarms)) {
		if p := s.prewarms[k]; p.Until >= s.epoch {
			out = append(out, p)
		}
	}
	return out
}

// Withdrawal returns id's pending withdrawal, if any.
func (s *State) Withdrawal(id peer.ID) (Withdrawal, bool) {
	w, ok := s.withdrawals[id]
	return w, ok
}

// Spent is what publisher's escrow paid for receipts of epoch, as counted
// against its EpochCap (kept while the epoch's receipts can still be paid,
// and only for publishers with a cap).
func (s *State) Spent(publisher peer.ID, epoch uint64) uint64 {
	if p := s.paid[epoch]; p != nil {
		return p.spent[publisher]
	}
	return 0
}

// Paid is how many bytes of (S, C, R, E) were already accounted for: a
// receipt pays only for bytes beyond it. Keys of epochs more than MaxSkew
// before the state's epoch are forgotten (their receipts are refused).
func (s *State) Paid(k pod.Key) uint64 {
	if p := s.paid[k.Epoch]; p != nil {
		return p.bytes[k]
	}
	return 0
}

// paidEntries counts the paid entries the state holds.
func (s *State) paidEntries() int {
	n := 0
	for _, p := range s.paid {
		n += len(p.bytes)
	}
	return n
}

const (
	stateDomain   = "ore/ledger/v1/state\x00"
	stateDomainV2 = "ore/ledger/v2/state\x00"
	stateDomainV3 = "ore/ledger/v3/state\x00"
	stateDomainV4 = "ore/ledger/v4/state\x00"
	paidDomain    = "ore/ledger/v2/paid\x00"
	paidDomainV3  = "ore/ledger/v3/paid\x00"
	paidDomainV4  = "ore/ledger/v4/paid\x00"
)

// Hash is SHA-256 over the canonical encoding of the state: genesis hash,
// height, epoch, then accounts, registrations and paid entries sorted by
// key, then, only if there are any, the active pre-warms sorted by root
// (so a state without pre-warms hashes as it did before pre-warms
// existed, and chains written then still verify). It leaves out the last
// block hash (which covers this hash).
func (s *State) Hash() [32]byte { return s.hash }

func (s *State) computeHash() [32]byte {
	h := sha256.New()
	b := make([]byte, 0, 64<<10)
	flush := func() {
		if len(b) > 60<<10 {
			h.Write(b)
			b = b[:0]
		}
	}
	v3, v4 := s.g.Rules >= RulesV3, s.g.Rules >= RulesV4
	switch {
	case v4:
		b = append(b, stateDomainV4...)
	case v3:
		b = append(b, stateDomainV3...)
	case s.g.Rules >= RulesV2:
		b = append(b, stateDomainV2...)
	default:
		b = append(b, stateDomain...)
	}
	b = append(b, s.gh[:]...)
	b = binary.AppendUvarint(b, s.height)
	b = binary.AppendUvarint(b, s.epoch)
	b = binary.AppendUvarint(b, uint64(len(s.accounts)))
	for _, id := range slices.Sorted(maps.Keys(s.accounts)) {
		a := s.accounts[id]
		b = wire.AppendPeer(b, id)
		b = binary.AppendUvarint(b, a.Balance)
		b = binary.AppendUvarint(b, a.Escrow)
		b = binary.AppendUvarint(b, a.Nonce)
		if v3 {
			b = binary.AppendUvarint(b, a.EpochCap)
		}
		if v4 {
			b = binary.AppendUvarint(b, a.Reserved)
		}
		flush()
	}
	b = binary.AppendUvarint(b, uint64(len(s.regs)))
	for _, root := range slices.Sorted(maps.Keys(s.regs)) {
		r := s.regs[root]
		b = wire.AppendBytes(b, []byte(root))
		b = wire.AppendPeer(b, r.Publisher)
		b = binary.AppendUvarint(b, r.PricePerGiB)
		if v4 {
			b = binary.AppendUvarint(b, r.Size)
			b = binary.AppendUvarint(b, r.Open)
			b = binary.AppendUvarint(b, r.Since)
			b = binary.AppendUvarint(b, r.Replicate)
		}
		flush()
	}
	epochs := s.sealPaid()
	if s.g.Rules >= RulesV2 {
		// Each epoch's section is hashed on its own (seal), once per
		// block that adds to it.
		b = binary.AppendUvarint(b, uint64(len(epochs)))
		for _, e := range epochs {
			b = binary.AppendUvarint(b, e)
			b = append(b, s.paid[e].hash[:]...)
		}
	} else {
		// RulesV1: one list of every entry, in key order across epochs.
		b = binary.AppendUvarint(b, uint64(s.paidEntries()))
		mergePaid(s.paid, epochs, func(k pod.Key, n uint64) {
			b = appendPaid(b, k, n)
			flush()
		})
	}
	// The paid entries are counted, so a section after them is unambiguous:
	// before RulesV3 it is absent or starts with a count of at least 1;
	// from RulesV3 every section is counted, empty or not.
	if len(s.prewarms) > 0 || v3 {
		b = binary.AppendUvarint(b, uint64(len(s.prewarms)))
		for _, root := range slices.Sorted(maps.Keys(s.prewarms)) {
			p := s.prewarms[root]
			b = wire.AppendBytes(b, []byte(root))
			b = wire.AppendPeer(b, p.Publisher)
			b = binary.AppendUvarint(b, uint64(p.Replicas))
			b = binary.AppendUvarint(b, p.Until)
			if v4 {
				b = binary.AppendUvarint(b, p.Reserved)
			}
			flush()
		}
	}
	if v3 {
		b = binary.AppendUvarint(b, uint64(len(s.withdrawals)))
		for _, id := range slices.Sorted(maps.Keys(s.withdrawals)) {
			w := s.withdrawals[id]
			b = wire.AppendPeer(b, id)
			b = binary.AppendUvarint(b, w.Amount)
			b = binary.AppendUvarint(b, w.At)
			flush()
		}
	}
	if v4 {
		b = s.sealTickets(b)
		oh := s.sealOrders()
		b = append(b, oh[:]...)
		b = s.appendDelegates(b)
		b = s.appendJobsHash(b)
	}
	if s.g.Rules >= RulesV5 {
		b = s.appendStorageHash(b)
	}
	b = s.appendExcluded(b)
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func comparePaid(x, y pod.Key) int {
	return cmp.Or(cmp.Compare(x.Server, y.Server), cmp.Compare(x.Client, y.Client),
		cmp.Compare(x.Root, y.Root), cmp.Compare(x.Epoch, y.Epoch))
}

func appendPaid(b []byte, k pod.Key, n uint64) []byte {
	b = wire.AppendPeer(b, k.Server)
	b = wire.AppendPeer(b, k.Client)
	b = wire.AppendBytes(b, []byte(k.Root))
	b = binary.AppendUvarint(b, k.Epoch)
	return binary.AppendUvarint(b, n)
}

// sealPaid merges every section's added keys into its sorted keys and, by
// RulesV2, hashes the sections this state changed. It returns the epochs
// in order.
func (s *State) sealPaid() []uint64 {
	epochs := slices.Sorted(maps.Keys(s.paid))
	for _, e := range epochs {
		p := s.paid[e]
		if p.owner != s || (len(p.added) == 0 && p.hash != [32]byte{}) {
			continue
		}
		p.merge()
		if s.g.Rules >= RulesV2 {
			h := sha256.New()
			b := make([]byte, 0, 64<<10)
			switch {
			case s.g.Rules >= RulesV4:
				b = append(b, paidDomainV4...)
			case s.g.Rules >= RulesV3:
				b = append(b, paidDomainV3...)
			default:
				b = append(b, paidDomain...)
			}
			b = binary.AppendUvarint(b, e)
			b = binary.AppendUvarint(b, uint64(len(p.keys)))
			for _, k := range p.keys {
				b = appendPaid(b, k, p.bytes[k])
				if len(b) > 60<<10 {
					h.Write(b)
					b = b[:0]
				}
			}
			if s.g.Rules >= RulesV3 {
				b = binary.AppendUvarint(b, uint64(len(p.spent)))
				for _, pub := range slices.Sorted(maps.Keys(p.spent)) {
					b = wire.AppendPeer(b, pub)
					b = binary.AppendUvarint(b, p.spent[pub])
				}
			}
			if s.g.Rules >= RulesV4 {
				b = appendSectionV4(b, p)
			}
			h.Write(b)
			h.Sum(p.hash[:0])
		}
	}
	return epochs
}

// merge sorts the keys added to the section into its keys.
func (p *paidEpoch) merge() {
	if len(p.added) == 0 {
		return
	}
	slices.SortFunc(p.added, comparePaid)
	merged := make([]pod.Key, 0, len(p.keys)+len(p.added))
	i, j := 0, 0
	for i < len(p.keys) && j < len(p.added) {
		if comparePaid(p.keys[i], p.added[j]) < 0 {
			merged = append(merged, p.keys[i])
			i++
		} else {
			merged = append(merged, p.added[j])
			j++
		}
	}
	p.keys, p.added = append(append(merged, p.keys[i:]...), p.added[j:]...), nil
}

// mergePaid calls f for every paid entry of the (sealed) sections, in key
// order across epochs.
func mergePaid(paid map[uint64]*paidEpoch, epochs []uint64, f func(pod.Key, uint64)) {
	at := make([]int, len(epochs))
	for {
		best := -1
		for i, e := range epochs {
			if at[i] < len(paid[e].keys) && (best < 0 || comparePaid(paid[e].keys[at[i]], paid[epochs[best]].keys[at[best]]) < 0) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		p := paid[epochs[best]]
		k := p.keys[at[best]]
		at[best]++
		f(k, p.bytes[k])
	}
}

// section returns the paid section of epoch e for n to write, copying the
// one n shares with the state before it.
func (n *State) section(e uint64) *paidEpoch {
	p := n.paid[e]
	switch {
	case p == nil:
		p = &paidEpoch{owner: n, bytes: make(map[pod.Key]uint64)}
	case p.owner != n:
		p = &paidEpoch{owner: n, bytes: maps.Clone(p.bytes), keys: p.keys, added: slices.Clone(p.added), spent: maps.Clone(p.spent),
			claimed: maps.Clone(p.claimed), open: maps.Clone(p.open), replicated: maps.Clone(p.replicated)}
	default:
		return p
	}
	n.paid[e] = p
	return p
}

// next copies the state for a block of the given epoch, dropping the paid
// entries no receipt of that epoch can match any more and the pre-warms
// that ended before it, and moving the withdrawals that fell due.
func (s *State) next(epoch uint64) *State {
	n := *s
	n.epoch = epoch
	n.accounts = maps.Clone(s.accounts)
	n.withdrawals = make(map[peer.ID]Withdrawal, len(s.withdrawals))
	for id, w := range s.withdrawals {
		if w.At > epoch {
			n.withdrawals[id] = w
			continue
		}
		// At most what is left: receipts paid from the escrow meanwhile.
		a := n.accounts[id]
		amount := min(w.Amount, a.Escrow)
		a.Escrow -= amount
		a.Balance += amount
		n.put(id, a)
	}
	n.regs = maps.Clone(s.regs)
	n.prewarms = make(map[string]Prewarm, len(s.prewarms))
	for k, p := range s.prewarms {
		switch {
		case p.Until >= epoch:
			n.prewarms[k] = p
		case s.g.Rules >= RulesV4 && !tooOld(p.Until, epoch, s.params.MaxSkew):
			// Kept for the receipts of its epochs a block may still pay
			// from its reservation.
			n.prewarms[k] = p
		default:
			n.release(p)
		}
	}
	n.ordersOwned = false
	n.pruneOrders()
	n.jobs = s.jobs.advance(epoch, s.params.MaxSkew)
	n.advanceStorage(epoch)
	n.settleJobs(s)
	n.paid = make(map[uint64]*paidEpoch, len(s.paid))
	for e, p := range s.paid {
		if !tooOld(e, epoch, s.params.MaxSkew) {
			n.paid[e] = p // shared until n writes to it (section)
		}
	}
	return &n
}

func tooOld(e, now, skew uint64) bool { return e < now && now-e > skew }

func (s *State) put(id peer.ID, a Account) {
	if a == (Account{}) {
		delete(s.accounts, id)
		return
	}
	s.accounts[id] = a
}

// checkHeader checks what a header must follow from the state, before
// its transactions.
func (s *State) checkHeader(h *Header) error {
	switch {
	case h.Version != Version:
		return fmt.Errorf("%w: version %d, this build reads %d", ErrBadHeader, h.Version, Version)
	case h.Height != s.height+1:
		return fmt.Errorf("%w: height %d after %d", ErrBadHeader, h.Height, s.height)
	case h.Prev != s.lastHash:
		return fmt.Errorf("%w: previous hash %x, the last block is %x", ErrBadHeader, h.Prev[:8], s.lastHash[:8])
	case h.Epoch < s.epoch:
		return fmt.Errorf("%w: epoch %d before the previous block's %d", ErrBadHeader, h.Epoch, s.epoch)
	case !s.g.IsMember(h.Proposer):
		return fmt.Errorf("%w: proposer %s is not on the committee", ErrBadHeader, h.Proposer)
	}
	return nil
}

// Apply checks block b against s and returns the state after it. s is not
// modified. It fails, wrapping ErrBadHeader or returning a *TxError, if
// the header does not follow s (height, previous hash, epoch, proposer,
// TxRoot, StateHash) or if any transaction is invalid. It does not check
// the committee signatures (see Block.Final).
func Apply(s *State, b *Block) (*State, error) {
	h := &b.Header
	if err := s.checkHeader(h); err != nil {
		return nil, err
	}
	if len(b.Txs) > MaxBlockTxs {
		return nil, fmt.Errorf("%w: %d transactions, the limit is %d", ErrBadHeader, len(b.Txs), MaxBlockTxs)
	}
	if root := MerkleRoot(b.TxIDs()); root != h.TxRoot {
		return nil, fmt.Errorf("%w: tx root %x, the transactions give %x", ErrBadHeader, h.TxRoot[:8], root[:8])
	}
	sigErrs := verifyReceipts(b.Txs)
	n := s.next(h.Epoch)
	for i := range b.Txs {
		if err := n.applyTx(&b.Txs[i], sigErrs[i]); err != nil {
			return nil, txError(i, &b.Txs[i], err)
		}
	}
	n.height = h.Height
	n.hash = n.computeHash()
	if n.hash != h.StateHash {
		return nil, fmt.Errorf("%w: state hash %x, applying gives %x", ErrBadHeader, h.StateHash[:8], n.hash[:8])
	}
	n.lastHash = b.Hash()
	return n, nil
}

// Build is the leader's Apply: it applies txs to s one at a time in order,
// leaves out the invalid ones (reporting each with its reason) and the
// ones past the block limits, and returns the block (TxRoot and StateHash
// filled, unsigned) with the state after it. s is not modified. It fails
// only if the proposer is not on the committee or epoch is before s's.
func Build(s *State, epoch uint64, proposer peer.ID, timeUnixNano int64, txs []Tx) (*Block, *State, []Rejected, error) {
	b := &Block{Header: Header{Version: Version, Height: s.height + 1, Prev: s.lastHash, Epoch: epoch,
		Proposer: proposer, Time: timeUnixNano}}
	if err := s.checkHeader(&b.Header); err != nil {
		return nil, nil, nil, err
	}
	sigErrs := verifyReceipts(txs)
	n := s.next(epoch)
	var rejected []Rejected
	// Sized once: growing a block of 50,000 transactions copies it again
	// and again.
	b.Txs = make([]Tx, 0, min(len(txs), MaxBlockTxs))
	ids := make([][32]byte, 0, cap(b.Txs))
	size := 256
	var scratch []byte // txIDDomain, then the transaction's encoding
	for i := range txs {
		t := &txs[i]
		scratch = t.appendTo(append(scratch[:0], txIDDomain...))
		enc := scratch[len(txIDDomain):]
		if len(b.Txs) >= MaxBlockTxs || size+len(enc)+binary.MaxVarintLen16 > MaxBlockSize {
			rejected = append(rejected, Rejected{Index: i, Reason: ReasonBlockFull, Err: errors.New("ledger: block full")})
			continue
		}
		var err error
		if len(enc) > maxTxSize(t.Kind) {
			err = refuse(ReasonMalformed, "transaction of %d bytes, the limit is %d", len(enc), maxTxSize(t.Kind))
		} else {
			err = n.applyTx(t, sigErrs[i])
		}
		if err != nil {
			te := txError(i, t, err)
			rejected = append(rejected, Rejected{Index: i, Reason: te.Reason, Err: te})
			continue
		}
		size += len(enc) + binary.MaxVarintLen16
		b.Txs = append(b.Txs, *t)
		ids = append(ids, sha256.Sum256(scratch))
	}
	b.Header.TxRoot = MerkleRoot(ids)
	n.height = b.Header.Height
	n.hash = n.computeHash()
	b.Header.StateHash = n.hash
	n.lastHash = b.Hash()
	return b, n, rejected, nil
}

// sinceRules is the rules version that brought each kind of transaction
// (a kind not listed is in every version): a chain whose genesis has
// older rules refuses it, so chains made before a kind existed replay as
// they were made.
var sinceRules = map[Kind]uint8{
	KindWithdraw: RulesV3, KindSpendCap: RulesV3,
	KindOrder: RulesV4, KindDelegate: RulesV4, KindTicket: RulesV4, KindRegisterRoot: RulesV4, KindFunction: RulesV4, KindJob: RulesV4,
	KindStorage: RulesV5, KindBeacon: RulesV5, KindProof: RulesV5,
	KindBond: RulesV5, KindUnbond: RulesV5, KindJobMismatch: RulesV5,
}

// needRules refuses a kind of transaction the chain's rules do not have.
func (n *State) needRules(k Kind) error {
	if v := sinceRules[k]; n.g.Rules < v {
		return refuse(ReasonNotInRules, "%s needs rules version %d, this chain's genesis has %d", k, v, n.g.Rules)
	}
	return nil
}

// applyTx checks one transaction against n and applies it, or leaves n
// unchanged and says why not. sigErr is the receipt's signature check.
func (n *State) applyTx(t *Tx, sigErr error) error {
	if err := n.needRules(t.Kind); err != nil {
		return err
	}
	switch t.Kind {
	case KindReceipt:
		return n.applyReceipt(t.Receipt, sigErr)
	case KindRegister:
		if n.g.Rules >= RulesV4 {
			return refuse(ReasonNotInRules, "a registration under rules version %d carries the root's block: use %s", n.g.Rules, KindRegisterRoot)
		}
	case KindDeposit, KindTransfer, KindPrewarm:
	case KindOrder:
		return n.applyOrder(t)
	case KindDelegate:
	case KindWithdraw, KindSpendCap:
	case KindTicket:
		return n.applyTicket(t)
	case KindRegisterRoot, KindFunction:
	case KindJob:
		return n.applyJob(t.Job)
	case KindEvidence:
		return n.applyEvidence(t)
	case KindBeacon:
		return n.applyBeacon(t)
	case KindProof:
		return n.applyProof(t)
	case KindStorage:
	case KindBond, KindUnbond:
	case KindJobMismatch:
		return n.applyJobMismatch(t.Mismatch)
	default:
		return refuse(ReasonMalformed, "unknown transaction kind %d", t.Kind)
	}
	if err := checkAccount(t.From); err != nil {
		return refuse(ReasonBadAccount, "from: %w", err)
	}
	if err := t.VerifySig(n.params.Network); err != nil {
		return refuse(ReasonBadSignature, "%w", err)
	}
	a := n.accounts[t.From]
	if a.Nonce == math.MaxUint64 || t.Nonce != a.Nonce+1 {
		return refuse(ReasonBadNonce, "nonce %d, %s's next is %d", t.Nonce, t.From, a.Nonce+1)
	}
	switch t.Kind {
	case KindDeposit:
		if err := debit(&a, t.Amount); err != nil {
			return err
		}
		a.Escrow += t.Amount
	case KindTransfer:
		if err := checkAccount(t.To); err != nil {
			return refuse(ReasonBadAccount, "to: %w", err)
		}
		if t.To == t.From {
			return refuse(ReasonSelfTransfer, "transfer from %s to itself", t.From)
		}
		if err := debit(&a, t.Amount); err != nil {
			return err
		}
		to := n.accounts[t.To]
		to.Balance += t.Amount // cannot overflow: the supply fits in a uint64
		n.put(t.To, to)
	case KindRegister:
		if !t.Root.Defined() || len(t.Root.Bytes()) > maxCIDLen {
			return refuse(ReasonMalformed, "registration without a valid root CID")
		}
		key := string(t.Root.Bytes())
		if r, ok := n.regs[key]; ok && r.Publisher != t.From {
			return refuse(ReasonNotOwner, "%s is registered by %s", t.Root, r.Publisher)
		}
		price := t.Price
		if price == 0 {
			price = n.g.PricePerGiB
		}
		n.regs[key] = Registration{Root: t.Root, Publisher: t.From, PricePerGiB: price}
	case KindPrewarm:
		if err := n.checkPrewarm(t); err != nil {
			return err
		}
		// Before RulesV4 no money moves: the boxes that pre-store the root
		// fetch it like any client, and that traffic is paid by receipts,
		// from the escrow, at the registered price. From RulesV4 the
		// pre-warm sets aside what its replication may cost (orders.go).
		key := n.regKey(t.From, t.Root.KeyString())
		pw := Prewarm{Root: t.Root, Publisher: t.From, Replicas: t.Replicas, Until: t.Until}
		if n.g.Rules >= RulesV4 {
			// A pre-warm that replaces one gives back what is left of the
			// old reservation first.
			freed := n.prewarms[key].Reserved
			pw.Reserved = Reservation(n.regs[key], t.Replicas)
			if pw.Reserved > a.Escrow+freed {
				return refuse(ReasonInsufficientEscrow, "a pre-warm of %d replicas reserves %d, escrow %d", t.Replicas, pw.Reserved, a.Escrow+freed)
			}
			a.Escrow = a.Escrow + freed - pw.Reserved
			a.Reserved = a.Reserved - freed + pw.Reserved
		}
		n.prewarms[key] = pw
	case KindWithdraw:
		if t.Amount == 0 {
			return refuse(ReasonZeroAmount, "amount is zero")
		}
		if t.Amount > a.Escrow {
			return refuse(ReasonInsufficientEscrow, "withdrawal of %d, escrow %d", t.Amount, a.Escrow)
		}
		// A new withdrawal replaces a pending one and restarts the notice:
		// the escrow must stand for every receipt the publisher's content
		// may have earned before it.
		n.withdrawals[t.From] = Withdrawal{Amount: t.Amount, At: n.epoch + WithdrawDelay(n.params)}
	case KindSpendCap:
		a.EpochCap = t.Amount
	case KindRegisterRoot:
		if err := n.applyRegisterRoot(t); err != nil {
			return err
		}
	case KindDelegate:
		if err := n.applyDelegate(t); err != nil {
			return err
		}
	case KindFunction:
		if err := n.applyRegisterFunction(t); err != nil {
			return err
		}
	case KindStorage:
		if err := n.applyStorage(t, &a); err != nil {
			return err
		}
	case KindBond, KindUnbond:
		if err := n.applyBond(t, &a); err != nil {
			return err
		}
	}
	a.Nonce++
	n.put(t.From, a)
	return nil
}

// checkPrewarm applies the rules of a pre-warm at the block's epoch: a root
// From registered, 1 to MaxPrewarmReplicas replicas, and an Until after
// the block's epoch and at most MaxPrewarmEpochs after it.
func (n *State) checkPrewarm(t *Tx) error {
	if !t.Root.Defined() || len(t.Root.Bytes()) > maxCIDLen {
		return refuse(ReasonMalformed, "pre-warm without a valid root CID")
	}
	r, ok := n.regs[n.regKey(t.From, t.Root.KeyString())]
	switch {
	case !ok:
		return refuse(ReasonNotRegistered, "%s is not registered: register it before pre-warming it", t.Root)
	case r.Publisher != t.From:
		return refuse(ReasonNotOwner, "%s is registered by %s", t.Root, r.Publisher)
	case t.Replicas == 0 || t.Replicas > MaxPrewarmReplicas:
		return refuse(ReasonReplicasOutOfRange, "%d replicas, 1 to %d allowed", t.Replicas, MaxPrewarmReplicas)
	case t.Until <= n.epoch || t.Until-n.epoch > MaxPrewarmEpochs:
		return refuse(ReasonUntilOutOfRange, "until epoch %d in a block of epoch %d (after it, at most %d epochs)",
			t.Until, n.epoch, MaxPrewarmEpochs)
	}
	return nil
}

func debit(a *Account, amount uint64) error {
	if amount == 0 {
		return refuse(ReasonZeroAmount, "amount is zero")
	}
	if amount > a.Balance {
		return refuse(ReasonInsufficientFunds, "amount %d, balance %d", amount, a.Balance)
	}
	a.Balance -= amount
	return nil
}

// applyReceipt pays a receipt's server for the bytes not paid yet, at the
// registered price, from the publisher's escrow (at most all of it).
func (n *State) applyReceipt(r *pod.Receipt, sigErr error) error {
	if r == nil {
		return refuse(ReasonMalformed, "receipt transaction without a receipt")
	}
	if err := n.params.CheckIn(r, n.params.InBlock(n.epoch)); err != nil {
		return err
	}
	if sigErr != nil {
		return sigErr
	}
	// A receipt under a ticket names one the ledger learned and that
	// covers it; refused otherwise, before anything is accounted.
	var tk *ticketEntry
	if r.Ticket != ([32]byte{}) {
		e, ok := n.ticket(r.Ticket)
		if !ok {
			return refuse(ReasonUnknownTicket, "ticket %x is not on the ledger: hand it over (a ticket transaction) before receipts under it", r.Ticket[:8])
		}
		if !e.covers(r) {
			return refuse(ReasonTicketMismatch, "ticket %x does not cover the receipt (its root, client or expiry at epoch %d)", r.Ticket[:8], e.Expires)
		}
		tk = &e
	}
	k := r.Key()
	prev, seen := uint64(0), false
	if p := n.paid[k.Epoch]; p != nil {
		prev, seen = p.bytes[k]
	}
	if r.Bytes <= prev {
		return nil // a duplicate or an older receipt: nothing more to pay
	}
	p := n.section(k.Epoch)
	if !seen {
		p.added = append(p.added, k)
	}
	p.bytes[k] = r.Bytes
	if n.g.Rules >= RulesV4 {
		n.payV4(r, p, prev, tk)
		if tk != nil {
			n.ticketShard(r.Ticket[0]).m[r.Ticket] = *tk
		}
		return nil
	}
	reg, ok := n.regs[k.Root]
	if !ok {
		return nil // unregistered content earns nothing
	}
	n.pay(reg.Publisher, r.Server, owed(r.Bytes, reg.PricePerGiB)-owed(prev, reg.PricePerGiB), p)
	return nil
}

// pay moves due from publisher's escrow to server's balance for a receipt
// of p's epoch: at most what the escrow holds and, by RulesV3, what is
// left of the publisher's EpochCap for that epoch.
func (n *State) pay(publisher, server peer.ID, due uint64, p *paidEpoch) {
	if due = n.take(publisher, due, p); due == 0 {
		return
	}
	srv := n.accounts[server]
	srv.Balance += due
	n.put(server, srv)
}

// take moves at most due out of publisher's escrow, within what it holds
// and its EpochCap for p's epoch, and returns what it moved.
func (n *State) take(publisher peer.ID, due uint64, p *paidEpoch) uint64 {
	pub := n.accounts[publisher]
	due = min(due, pub.Escrow)
	if pub.EpochCap > 0 && n.g.Rules >= RulesV3 {
		// The cap counts by the receipt's epoch, the epoch the bytes were
		// delivered in, whichever block pays them.
		spent := p.spent[publisher]
		due = min(due, pub.EpochCap-min(spent, pub.EpochCap))
		if due > 0 {
			if p.spent == nil {
				p.spent = make(map[peer.ID]uint64)
			}
			p.spent[publisher] = spent + due
		}
	}
	if due == 0 {
		return 0
	}
	pub.Escrow -= due
	n.put(publisher, pub)
	return due
}

// Owed is what bytes of content cost at price per GiB, in base units: the
// ledger's one rule of price (see owed).
func Owed(bytes, price uint64) uint64 { return owed(bytes, price) }

// owed is floor(bytes*price / 2^30) with a 128-bit product, saturating at
// MaxUint64 (more than any escrow can hold). Paying owed(new)-owed(old)
// makes cumulative payments exact: rounding never drifts.
func owed(bytes, price uint64) uint64 {
	hi, lo := bits.Mul64(bytes, price)
	if hi >= 1<<30 {
		return math.MaxUint64
	}
	return hi<<34 | lo>>30
}
