package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"math/bits"
	"slices"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multicodec"

	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
)

// RulesV4: paid demand is demand a publisher authorized.
//
//   - Registrations are per (publisher, root): a second registrant of a
//     root neither blocks the first nor pays for its traffic. A
//     registration (KindRegisterRoot) carries the root's block, whose CID
//     the ledger checks and from which it reads the size of the DAG
//     (the block plus its links' cumulative sizes); a raw root is at most
//     pod.MaxBlockSize.
//   - A receipt under a ticket (pod.Ticket, learned once from a
//     KindTicket transaction) pays from the ticket's publisher's escrow,
//     at its registered price, for at most the ticket's Cap bytes over
//     every server, client and epoch, and only for receipts the ticket
//     covers (root, client, expiry).
//   - A receipt under no ticket pays only if a publisher opened the root
//     to anyone (Registration.Open, ore per epoch): from the first open
//     registration of the root (by height, then publisher) with budget
//     left in the receipt's epoch, at most that budget.
//   - All receipts of one client for one root in one epoch, over every
//     server, pay for at most RetryFactor times the root's size.
//
// Bytes beyond a limit are accounted (a later receipt does not pay them)
// and not paid, as bytes beyond an empty escrow are.

const (
	// MaxRootBlock bounds the root block a registration carries: a UnixFS
	// file root of ore's chunker (174 links) is about 8 KB, a HAMT shard
	// of 256 links about 14 KB.
	MaxRootBlock = 16 << 10
	// maxRegisterRootTx bounds a KindRegisterRoot transaction: its root
	// block and the fields of an account transaction.
	maxRegisterRootTx = MaxRootBlock + 512
	// RetryFactor is how many times a root's size one client's receipts
	// may be paid for in one epoch, over every server: a client that lost
	// blocks (a server left, a block failed its hash) fetches them again
	// from another server, and both deliveries happened.
	RetryFactor = 2
	// MaxTicketEpochs bounds how far after the block that takes it a
	// ticket may expire (7 days at 10 s epochs), and so how long the
	// ledger keeps it.
	MaxTicketEpochs = MaxPrewarmEpochs
)

// regKey names a registration under RulesV4: the root, then the
// publisher, so a root's registrations sort together.
func regKey(pub peer.ID, root string) string { return root + string(pub) }

// registration looks up pub's registration of root under RulesV4 without
// building the key as a string (a lookup per receipt paid under a ticket).
func (n *State) registration(pub peer.ID, root string) (Registration, bool) {
	var buf [160]byte
	k := append(append(buf[:0], root...), pub...)
	reg, ok := n.regs[string(k)] // the compiler looks up without a copy
	return reg, ok
}

// rootSize is the size of the DAG under root by its block: the block's
// own length plus the cumulative sizes its links declare (dag-pb), or at
// most pod.MaxBlockSize for a raw block, which a registration need not
// carry. The links' sizes are the publisher's word: a publisher that
// declares less than its content only limits what its own escrow pays.
func rootSize(root cid.Cid, block []byte) (uint64, error) {
	switch multicodec.Code(root.Type()) {
	case multicodec.Raw:
		if len(block) == 0 {
			return pod.MaxBlockSize, nil
		}
	case multicodec.DagPb:
		if len(block) == 0 {
			return 0, refuse(ReasonMalformed, "registering dag-pb root %s needs its block (the size of the content is read from it)", root)
		}
	default:
		return 0, refuse(ReasonMalformed, "root %s is neither dag-pb nor raw: ore pays delivery of UnixFS and raw content", root)
	}
	if len(block) > MaxRootBlock {
		return 0, refuse(ReasonMalformed, "root block of %d bytes, the ledger takes at most %d", len(block), MaxRootBlock)
	}
	if root.Prefix().MhType == 0x00 { // identity: the CID holds the content
		return 0, refuse(ReasonMalformed, "root %s is inline (identity): it needs no delivery", root)
	}
	sum, err := root.Prefix().Sum(block)
	if err != nil || !sum.Equals(root) {
		return 0, refuse(ReasonMalformed, "the block given does not hash to root %s", root)
	}
	if multicodec.Code(root.Type()) == multicodec.Raw {
		return uint64(len(block)), nil
	}
	nd, err := merkledag.DecodeProtobuf(block)
	if err != nil {
		return 0, refuse(ReasonMalformed, "root %s is not a dag-pb node: %v", root, err)
	}
	size := uint64(len(block))
	for _, l := range nd.Links() {
		var carry uint64
		if size, carry = bits.Add64(size, l.Size, 0); carry != 0 {
			return 0, refuse(ReasonMalformed, "root %s declares links of more than 2^64 bytes", root)
		}
	}
	return size, nil
}

// ticketEntry is what the ledger keeps of a ticket it learned.
type ticketEntry struct {
	Publisher peer.ID
	Root      string // CID bytes; "": every root of the publisher
	Client    peer.ID
	Cap       uint64
	Expires   uint64
	Spent     uint64 // bytes paid under the ticket so far
}

func (e *ticketEntry) covers(r *pod.Receipt) bool {
	return (e.Root == "" || e.Root == r.Root.KeyString()) && (e.Client == "" || e.Client == r.Client) && r.Epoch <= e.Expires
}

// ticketShard holds the tickets whose ID starts with one byte. A block
// copies only the shards it writes (as paidEpoch does for paid entries),
// and drops a shard's tickets that no receipt can be paid under any more
// when it copies it.
type ticketShard struct {
	owner *State
	m     map[[32]byte]ticketEntry
	hash  [32]byte // set by sealTickets; zero while the owner writes it
}

// Ticket reports what the ledger knows of a ticket: its publisher, cap and
// the bytes paid under it so far.
func (s *State) Ticket(id [32]byte) (publisher peer.ID, capBytes, spent, expires uint64, ok bool) {
	sh := s.tickets[id[0]]
	if sh == nil {
		return "", 0, 0, 0, false
	}
	e, ok := sh.m[id]
	return e.Publisher, e.Cap, e.Spent, e.Expires, ok
}

func (s *State) ticket(id [32]byte) (ticketEntry, bool) {
	if sh := s.tickets[id[0]]; sh != nil {
		e, ok := sh.m[id]
		return e, ok
	}
	return ticketEntry{}, false
}

// ticketShard returns shard i for n to write.
func (n *State) ticketShard(i byte) *ticketShard {
	sh := n.tickets[i]
	if sh != nil && sh.owner == n {
		return sh
	}
	c := &ticketShard{owner: n, m: make(map[[32]byte]ticketEntry)}
	if sh != nil {
		for id, e := range sh.m {
			if !tooOld(e.Expires, n.epoch, n.params.MaxSkew) {
				c.m[id] = e
			}
		}
	}
	n.tickets[i] = c
	return c
}

// sealTickets hashes the shards this state wrote and appends every
// non-empty shard's index and hash to b.
func (s *State) sealTickets(b []byte) []byte {
	var n uint64
	for _, sh := range s.tickets {
		if sh != nil && len(sh.m) > 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, n)
	for i, sh := range s.tickets {
		if sh == nil || len(sh.m) == 0 {
			continue
		}
		if sh.owner == s && sh.hash == [32]byte{} {
			h := sha256.New()
			e := make([]byte, 0, 256)
			e = append(e, ticketsDomain...)
			e = append(e, byte(i))
			e = binary.AppendUvarint(e, uint64(len(sh.m)))
			for _, id := range slices.SortedFunc(maps.Keys(sh.m), func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) }) {
				t := sh.m[id]
				e = append(e, id[:]...)
				e = wire.AppendPeer(e, t.Publisher)
				e = wire.AppendBytes(e, []byte(t.Root))
				e = wire.AppendPeer(e, t.Client)
				e = binary.AppendUvarint(e, t.Cap)
				e = binary.AppendUvarint(e, t.Expires)
				e = binary.AppendUvarint(e, t.Spent)
				h.Write(e)
				e = e[:0]
			}
			h.Write(e)
			h.Sum(sh.hash[:0])
		}
		b = append(b, byte(i))
		b = append(b, sh.hash[:]...)
	}
	return b
}

const ticketsDomain = "ore/ledger/v4/tickets\x00"

// applyTicket learns a ticket: signed by its publisher, of this network,
// not known yet, and expiring after the block's epoch, at most
// MaxTicketEpochs after it.
func (n *State) applyTicket(t *Tx) error {
	tk := t.Ticket
	if tk == nil {
		return refuse(ReasonMalformed, "ticket transaction without a ticket")
	}
	if err := n.params.CheckTicket(tk); err != nil {
		return refuse(ReasonBadTicket, "%w", err)
	}
	if err := checkAccount(tk.Publisher); err != nil {
		return refuse(ReasonBadAccount, "publisher: %w", err)
	}
	if tk.Expires < n.epoch || tk.Expires-n.epoch > MaxTicketEpochs {
		return refuse(ReasonUntilOutOfRange, "ticket expires at epoch %d in a block of epoch %d (not before it, at most %d epochs after)",
			tk.Expires, n.epoch, MaxTicketEpochs)
	}
	id := tk.ID()
	if _, ok := n.ticket(id); ok {
		return refuse(ReasonTicketKnown, "ticket %x is on the ledger already", id[:8])
	}
	if signer := tk.SignedBy(); signer != tk.Publisher {
		if until, ok := n.delegates[tk.Publisher][signer]; !ok || until < n.epoch {
			return refuse(ReasonBadTicket, "ticket signed by %s, which %s has not delegated to sign its tickets at epoch %d", signer, tk.Publisher, n.epoch)
		}
	}
	if err := tk.Verify(); err != nil {
		return refuse(ReasonBadSignature, "%w", err)
	}
	var root string
	if tk.Root.Defined() {
		root = tk.Root.KeyString()
	}
	n.ticketShard(id[0]).m[id] = ticketEntry{Publisher: tk.Publisher, Root: root, Client: tk.Client, Cap: tk.Cap, Expires: tk.Expires}
	return nil
}

// applyRegisterRoot registers (or updates) From's registration of Root:
// its price, what it opens to unticketed receipts per epoch, and the
// size read from the root's block.
func (n *State) applyRegisterRoot(t *Tx) error {
	if !t.Root.Defined() || len(t.Root.Bytes()) > maxCIDLen {
		return refuse(ReasonMalformed, "registration without a valid root CID")
	}
	size, err := rootSize(t.Root, t.Block)
	if err != nil {
		return err
	}
	price := t.Price
	if price == 0 {
		price = n.g.PricePerGiB
	}
	root := t.Root.KeyString()
	key := regKey(t.From, root)
	reg := Registration{Root: t.Root, Publisher: t.From, PricePerGiB: price, Size: size, Open: t.Amount,
		Replicate: t.Replicate, Since: n.height + 1}
	if old, ok := n.regs[key]; ok {
		reg.Since = old.Since // re-registering keeps its place among the root's registrations
	}
	n.regs[key] = reg
	n.rootRegs = indexReg(n.rootRegs, root, key, true)
	n.openRoots = indexReg(n.openRoots, root, key, reg.Open > 0)
	return nil
}

// payV4 pays the bytes of r beyond prev (already accounted) by RulesV4,
// after the receipt's ticket was checked (tk nil: no ticket). It returns
// the new ticket entry to store, if any.
func (n *State) payV4(r *pod.Receipt, p *paidEpoch, prev uint64, tk *ticketEntry) {
	root := r.Root.KeyString()
	delta := r.Bytes - prev
	var reg Registration
	var ok bool
	if tk == nil {
		if o, bi, named := n.replicationOrder(root, r.Client, r.Epoch); named {
			n.payReplication(r, p, prev, root, o, bi)
			return
		}
	}
	if tk != nil {
		if reg, ok = n.registration(tk.Publisher, root); !ok {
			return // the ticket's publisher did not register this root
		}
		delta = min(delta, tk.Cap-min(tk.Spent, tk.Cap))
	} else if reg, ok = n.openRegistration(root, p); !ok {
		return // unticketed, and no publisher opened the root with budget left
	}
	// One client, one root, one epoch: at most RetryFactor times its size.
	cr := clientRoot{Client: r.Client, Root: root}
	limit := satMul(reg.Size, RetryFactor)
	claimed := p.claimed[cr]
	delta = min(delta, limit-min(claimed, limit))
	if delta == 0 {
		return
	}
	if p.claimed == nil {
		p.claimed = make(map[clientRoot]uint64)
	}
	p.claimed[cr] = claimed + delta
	if tk != nil {
		tk.Spent += delta
	}
	due := owed(prev+delta, reg.PricePerGiB) - owed(prev, reg.PricePerGiB)
	if tk == nil {
		due = spendBudget(&p.open, regKey(reg.Publisher, root), reg.Open, due)
	}
	n.pay(reg.Publisher, r.Server, due, p)
}

// openRegistration is the registration that pays unticketed receipts of
// root in p's epoch: the first, by height and then publisher, that opened
// the root with budget left.
func (n *State) openRegistration(root string, p *paidEpoch) (Registration, bool) {
	return n.firstWithBudget(n.openRoots[root], func(r Registration) uint64 { return r.Open }, p.open)
}

// firstWithBudget is the first registration of keys, by height and then
// publisher, whose budget per epoch is more than spent holds for it.
func (n *State) firstWithBudget(keys []string, budget func(Registration) uint64, spent map[string]uint64) (Registration, bool) {
	var best Registration
	found := false
	for _, k := range keys {
		reg := n.regs[k]
		if b := budget(reg); b == 0 || spent[k] >= b {
			continue
		}
		if !found || reg.Since < best.Since || reg.Since == best.Since && reg.Publisher < best.Publisher {
			best, found = reg, true
		}
	}
	return best, found
}

// spendBudget takes at most due from what is left of budget under key in
// *spent (made on first use), and returns what it took.
func spendBudget(spent *map[string]uint64, key string, budget, due uint64) uint64 {
	due = min(due, budget-min((*spent)[key], budget))
	if due > 0 {
		if *spent == nil {
			*spent = make(map[string]uint64)
		}
		(*spent)[key] += due
	}
	return due
}

// clientRoot keys what one client's receipts for one root claimed in an
// epoch, over every server.
type clientRoot struct {
	Client peer.ID
	Root   string
}

func satMul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// appendSectionV4 appends what RulesV4 adds to a paid section's hash: the
// claims per (client, root) and the open budgets spent per registration.
func appendSectionV4(b []byte, p *paidEpoch) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.claimed)))
	for _, cr := range slices.SortedFunc(maps.Keys(p.claimed), func(x, y clientRoot) int {
		if x.Client != y.Client {
			return strings.Compare(string(x.Client), string(y.Client))
		}
		return strings.Compare(x.Root, y.Root)
	}) {
		b = wire.AppendPeer(b, cr.Client)
		b = wire.AppendBytes(b, []byte(cr.Root))
		b = binary.AppendUvarint(b, p.claimed[cr])
	}
	for _, m := range []map[string]uint64{p.open, p.replicated} {
		b = binary.AppendUvarint(b, uint64(len(m)))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			b = wire.AppendBytes(b, []byte(k))
			b = binary.AppendUvarint(b, m[k])
		}
	}
	return b
}

// MaxDelegates bounds the keys one publisher may delegate at a time.
const MaxDelegates = 16

// applyDelegate lets t.To sign tickets for t.From through epoch t.Until
// (after the block's epoch, at most MaxTicketEpochs after it), or revokes
// it (Until 0). A revoked or lapsed key signs no new ticket; the tickets
// the ledger learned before stay valid to their caps and expiry, as a
// signed URL does until it expires.
func (n *State) applyDelegate(t *Tx) error {
	if err := checkAccount(t.To); err != nil {
		return refuse(ReasonBadAccount, "delegate: %w", err)
	}
	if t.To == t.From {
		return refuse(ReasonSelfTransfer, "%s delegating to itself: it signs its tickets already", t.From)
	}
	// The publisher's delegations, without the lapsed ones.
	m := make(map[peer.ID]uint64, len(n.delegates[t.From])+1)
	for k, until := range n.delegates[t.From] {
		if until >= n.epoch {
			m[k] = until
		}
	}
	if t.Until == 0 {
		if _, ok := m[t.To]; !ok {
			return refuse(ReasonNotOwner, "%s has not delegated %s", t.From, t.To)
		}
	} else {
		if t.Until <= n.epoch || t.Until-n.epoch > MaxTicketEpochs {
			return refuse(ReasonUntilOutOfRange, "delegation until epoch %d in a block of epoch %d (after it, at most %d epochs)", t.Until, n.epoch, MaxTicketEpochs)
		}
		if _, ok := m[t.To]; !ok && len(m) >= MaxDelegates {
			return refuse(ReasonReplicasOutOfRange, "%s has %d delegates, the most it may have: revoke one first", t.From, MaxDelegates)
		}
	}
	if t.Until == 0 {
		delete(m, t.To)
	} else {
		m[t.To] = t.Until
	}
	n.delegates = maps.Clone(n.delegates)
	if n.delegates == nil {
		n.delegates = make(map[peer.ID]map[peer.ID]uint64)
	}
	if len(m) == 0 {
		delete(n.delegates, t.From)
	} else {
		n.delegates[t.From] = m
	}
	return nil
}

// Delegate reports until which epoch key may sign tickets for publisher.
func (s *State) Delegate(publisher, key peer.ID) (until uint64, ok bool) {
	until, ok = s.delegates[publisher][key]
	return until, ok
}

const delegatesDomain = "ore/ledger/v4/delegates\x00"

// appendDelegates appends the delegations, sorted by publisher and key.
func (s *State) appendDelegates(b []byte) []byte {
	b = append(b, delegatesDomain...)
	b = binary.AppendUvarint(b, uint64(len(s.delegates)))
	for _, pub := range slices.Sorted(maps.Keys(s.delegates)) {
		m := s.delegates[pub]
		b = wire.AppendPeer(b, pub)
		b = binary.AppendUvarint(b, uint64(len(m)))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			b = wire.AppendPeer(b, k)
			b = binary.AppendUvarint(b, m[k])
		}
	}
	return b
}
