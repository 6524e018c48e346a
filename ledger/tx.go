package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/internal/wire"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/storeproof"
)

// Version is the encoding version of transactions and blocks.
const Version = 1

// Encoding limits of a transaction.
const (
	MaxTxSize     = 2048
	maxPeerIDLen  = pod.MaxPeerIDLen
	maxCIDLen     = pod.MaxCIDLen
	maxSigLen     = pod.MaxSigLen
	minTxEncoding = 3 // version, kind, one length byte
)

// Kind is a transaction type.
type Kind uint8

// Transaction kinds.
const (
	KindReceipt  Kind = 1 // a two-signed pod.Receipt: pays its server
	KindDeposit  Kind = 2 // From's balance -> From's escrow
	KindRegister Kind = 3 // From registers (or reprices) a content root
	KindTransfer Kind = 4 // From's balance -> To's balance
	KindPrewarm  Kind = 5 // From asks Replicas boxes to pre-store its registered Root until epoch Until
	// KindWithdraw: From asks that Amount of its escrow return to its
	// balance WithdrawDelay epochs later (RulesV3).
	KindWithdraw Kind = 6
	// KindSpendCap: From caps what its escrow pays per epoch at Amount; 0
	// lifts the cap (RulesV3).
	KindSpendCap Kind = 7
	// KindRegisterRoot: From registers (or updates) its registration of
	// Root with the root's Block, at Price, opening it to unticketed
	// receipts for Amount per epoch (0: tickets only) (RulesV4).
	KindRegisterRoot Kind = 8
	// KindTicket: a publisher's ticket for the ledger to learn (RulesV4);
	// anyone may submit it, the ticket's own signature is its authority.
	KindTicket Kind = 9
	// KindOrder: a replication order a committee member signed (RulesV4);
	// only a leader puts one in a block, and the block's finality is what
	// makes boxes obey it and the ledger pay for it.
	KindOrder Kind = 10
	// KindDelegate: From lets key To sign tickets for it up to and
	// including epoch Until (0: revokes To) (RulesV4).
	KindDelegate Kind = 11
	// KindFunction: From registers (or reprices) the function Root at
	// Price per 2^30 work units, paying jobs of at most Amount units
	// (RulesV4; jobs.go).
	KindFunction Kind = 12
	// KindJob: a pod.JobReceipt signed by its runner and requester: pays
	// the runner from the requester's escrow (RulesV4; jobs.go). From is
	// the requester, not encoded.
	KindJob Kind = 13
)

// Pre-warm limits (State rules of KindPrewarm).
const (
	// MaxPrewarmReplicas is the most boxes one pre-warm may ask for.
	MaxPrewarmReplicas = 64
	// MaxPrewarmEpochs is how far after the block's epoch a pre-warm's
	// Until may lie: 60,480 epochs are 7 days at the default 10 s epoch
	// (longer on a network with longer epochs). A publisher that wants
	// more renews the pre-warm before it ends. Counting in epochs keeps
	// the rule a function of the chain alone.
	MaxPrewarmEpochs = 60_480
)

func (k Kind) String() string {
	switch k {
	case KindReceipt:
		return "receipt"
	case KindDeposit:
		return "deposit"
	case KindRegister:
		return "register"
	case KindTransfer:
		return "transfer"
	case KindPrewarm:
		return "prewarm"
	case KindWithdraw:
		return "withdraw"
	case KindSpendCap:
		return "spend_cap"
	case KindRegisterRoot:
		return "register_root"
	case KindTicket:
		return "ticket"
	case KindOrder:
		return "order"
	case KindDelegate:
		return "delegate"
	case KindFunction:
		return "function"
	case KindJob:
		return "job"
	case KindEvidence:
		return "evidence"
	case KindStorage:
		return "storage"
	case KindBeacon:
		return "beacon"
	case KindProof:
		return "proof"
	case KindBond:
		return "bond"
	case KindUnbond:
		return "unbond"
	case KindJobMismatch:
		return "job_mismatch"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Tx is one transaction. Only the fields of its Kind are encoded:
//
//	KindReceipt:  Receipt
//	KindDeposit:  From, Nonce, Amount, Sig
//	KindRegister: From, Nonce, Root, Price, Sig
//	KindTransfer: From, Nonce, To, Amount, Sig
//	KindPrewarm:  From, Nonce, Root, Replicas, Until, Sig
//	KindWithdraw: From, Nonce, Amount, Sig
//	KindSpendCap: From, Nonce, Amount, Sig
//	KindRegisterRoot: From, Nonce, Root, Price, Amount (open), Replicate, Block, Sig
//	KindTicket:   Ticket (From is the ticket's publisher, not encoded)
//	KindOrder:    Order (From is the order's issuer, not encoded)
//	KindDelegate: From, Nonce, To, Until, Sig
//	KindFunction: From, Nonce, Root (the function), Price, Amount (work limit), Sig
//	KindJob:      Job (From is the requester, not encoded)
//	KindStorage:  From, Nonce, Root, Price (per GiB per epoch), Amount (length), Commit, Replicas, Until, Sig
//	KindBeacon:   Beacon (no From)
//	KindProof:    From (the box), Root, Round, Proof (no signature)
//	KindBond, KindUnbond: From, Nonce, Amount, Sig
//	KindJobMismatch: Mismatch (no From)
//
// Account transactions are signed by From (Sign) and carry From's next
// nonce (State.Nonce(From)+1). Receipts are signed by their client and
// server and need no nonce: the state pays each (server, client, root,
// epoch) only for bytes it has not paid yet.
type Tx struct {
	Kind    Kind
	Receipt *pod.Receipt
	From    peer.ID
	Nonce   uint64
	To      peer.ID
	Amount  uint64
	Root    cid.Cid
	Price   uint64 // per GiB, in base units; 0 takes the genesis price
	// Replicas and Until are a pre-warm's: how many boxes should hold Root,
	// and the last epoch they should hold it (inclusive).
	Replicas uint32
	Until    uint64
	// Block is a registration's root block (KindRegisterRoot), at most
	// MaxRootBlock bytes.
	Block []byte
	// Replicate is what a registration (KindRegisterRoot) pays per epoch
	// for the replication the committee orders (0: none).
	Replicate uint64
	Ticket    *pod.Ticket     // KindTicket's
	Order     *heat.Order     // KindOrder's
	Job       *pod.JobReceipt // KindJob's
	Evidence  *Evidence       // KindEvidence's
	// Commit is a storage offer's commitment root (KindStorage; its length
	// is Amount).
	Commit [32]byte
	// Round and Proof are a storage proof's (KindProof).
	Round uint64
	Proof *storeproof.Proof
	// Beacon is a quorum's signatures of the previous block (KindBeacon).
	Beacon   []Signature
	Mismatch *JobMismatch // KindJobMismatch's
	Sig      []byte
}

// NewReceiptTx wraps a receipt signed by both sides.
func NewReceiptTx(r *pod.Receipt) Tx { return Tx{Kind: KindReceipt, Receipt: r} }

// NewDeposit moves amount of from's balance into its escrow.
func NewDeposit(from peer.ID, nonce, amount uint64) Tx {
	return Tx{Kind: KindDeposit, From: from, Nonce: nonce, Amount: amount}
}

// NewRegister registers root for publisher from at price per GiB (0: the
// genesis price); registering again changes the price.
func NewRegister(from peer.ID, nonce uint64, root cid.Cid, price uint64) Tx {
	return Tx{Kind: KindRegister, From: from, Nonce: nonce, Root: root, Price: price}
}

// NewTransfer moves amount of from's balance to to.
func NewTransfer(from, to peer.ID, nonce, amount uint64) Tx {
	return Tx{Kind: KindTransfer, From: from, To: to, Nonce: nonce, Amount: amount}
}

// NewPrewarm asks that replicas boxes pre-store root, which from must have
// registered, up to and including epoch until. A new pre-warm of the same
// root replaces the previous one. It moves no money: the replication
// traffic is paid by receipts like any delivery.
func NewPrewarm(from peer.ID, nonce uint64, root cid.Cid, replicas uint32, until uint64) Tx {
	return Tx{Kind: KindPrewarm, From: from, Nonce: nonce, Root: root, Replicas: replicas, Until: until}
}

// NewWithdraw asks that amount of from's escrow return to its balance
// WithdrawDelay epochs after the block that takes it; a new withdrawal
// replaces a pending one. Until then the escrow pays receipts as before.
func NewWithdraw(from peer.ID, nonce, amount uint64) Tx {
	return Tx{Kind: KindWithdraw, From: from, Nonce: nonce, Amount: amount}
}

// NewSpendCap caps what from's escrow pays for receipts of any one epoch
// at amount (0: no cap).
func NewSpendCap(from peer.ID, nonce, amount uint64) Tx {
	return Tx{Kind: KindSpendCap, From: from, Nonce: nonce, Amount: amount}
}

// NewRegisterRoot registers root for publisher from with the root's block
// (RulesV4): at price per GiB (0: the genesis price), opened to receipts
// under no ticket for open ore per epoch (0: tickets only). Registering
// again updates price and budgets. WithReplicate sets what it pays for
// the replication the committee orders.
func NewRegisterRoot(from peer.ID, nonce uint64, root cid.Cid, block []byte, price, open uint64) Tx {
	return Tx{Kind: KindRegisterRoot, From: from, Nonce: nonce, Root: root, Block: block, Price: price, Amount: open}
}

// WithReplicate returns the registration t paying up to perEpoch a epoch
// for the replication the committee orders of its root (0: none).
func (t Tx) WithReplicate(perEpoch uint64) Tx {
	t.Replicate = perEpoch
	return t
}

// NewDelegate lets key sign tickets for publisher from through epoch until
// (0: revokes key).
func NewDelegate(from, key peer.ID, nonce, until uint64) Tx {
	return Tx{Kind: KindDelegate, From: from, To: key, Nonce: nonce, Until: until}
}

// NewTicketTx hands a publisher's signed ticket to the ledger.
func NewTicketTx(t *pod.Ticket) Tx { return Tx{Kind: KindTicket, From: t.Publisher, Ticket: t} }

// NewOrderTx wraps a replication order its issuer signed.
func NewOrderTx(o *heat.Order) Tx { return Tx{Kind: KindOrder, From: o.Issuer, Order: o} }

// maxTxSize is the largest encoding of a transaction of kind k.
func maxTxSize(k Kind) int {
	switch k {
	case KindRegisterRoot:
		return maxRegisterRootTx
	case KindOrder:
		return maxOrderTx
	case KindProof:
		return maxProofTx
	case KindBeacon:
		return maxBeaconTx
	}
	if k == KindJob {
		return pod.MaxJobEncoded + 16
	}
	if k == KindJobMismatch {
		return maxMismatchTx
	}
	return MaxTxSize
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("ledger: malformed")

const (
	txSigDomain = "ore/ledger/v1/tx\x00"
	txIDDomain  = "ore/ledger/v1/txid\x00"
)

// appendUnsigned appends the encoding without the signature.
func (t *Tx) appendUnsigned(b []byte) []byte {
	b = append(b, Version, byte(t.Kind))
	switch t.Kind {
	case KindReceipt:
		if t.Receipt == nil {
			return wire.AppendBytes(b, nil)
		}
		var buf [pod.MaxEncoded]byte // on the stack for any decodable receipt
		return wire.AppendBytes(b, t.Receipt.AppendMarshal(buf[:0]))
	case KindDeposit, KindWithdraw, KindSpendCap, KindBond, KindUnbond:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		return binary.AppendUvarint(b, t.Amount)
	case KindRegister:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendCID(b, t.Root)
		return binary.AppendUvarint(b, t.Price)
	case KindPrewarm:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendCID(b, t.Root)
		b = binary.AppendUvarint(b, uint64(t.Replicas))
		return binary.AppendUvarint(b, t.Until)
	case KindRegisterRoot:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendCID(b, t.Root)
		b = binary.AppendUvarint(b, t.Price)
		b = binary.AppendUvarint(b, t.Amount)
		b = binary.AppendUvarint(b, t.Replicate)
		return wire.AppendBytes(b, t.Block)
	case KindTicket:
		if t.Ticket == nil {
			return wire.AppendBytes(b, nil)
		}
		return wire.AppendBytes(b, t.Ticket.Marshal())
	case KindOrder:
		if t.Order == nil {
			return wire.AppendBytes(b, nil)
		}
		return wire.AppendBytes(b, t.Order.Marshal())
	case KindFunction:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendCID(b, t.Root)
		b = binary.AppendUvarint(b, t.Price)
		return binary.AppendUvarint(b, t.Amount)
	case KindJob:
		if t.Job == nil {
			return wire.AppendBytes(b, nil)
		}
		return wire.AppendBytes(b, t.Job.Marshal())
	case KindEvidence:
		if t.Evidence == nil {
			return b
		}
		return t.Evidence.appendTo(b)
	case KindJobMismatch:
		if t.Mismatch == nil {
			return b
		}
		return t.Mismatch.appendTo(b)
	case KindTransfer:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendPeer(b, t.To)
		return binary.AppendUvarint(b, t.Amount)
	case KindStorage:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendCID(b, t.Root)
		b = binary.AppendUvarint(b, t.Price)
		b = binary.AppendUvarint(b, t.Amount)
		b = append(b, t.Commit[:]...)
		b = binary.AppendUvarint(b, uint64(t.Replicas))
		return binary.AppendUvarint(b, t.Until)
	case KindBeacon:
		b = binary.AppendUvarint(b, uint64(len(t.Beacon)))
		for _, s := range t.Beacon {
			b = wire.AppendPeer(b, s.Signer)
			b = wire.AppendBytes(b, s.Sig)
		}
		return b
	case KindProof:
		b = wire.AppendPeer(b, t.From)
		b = wire.AppendCID(b, t.Root)
		b = binary.AppendUvarint(b, t.Round)
		if t.Proof == nil {
			return binary.AppendUvarint(b, 0)
		}
		return t.Proof.AppendTo(b)
	case KindDelegate:
		b = wire.AppendPeer(b, t.From)
		b = binary.AppendUvarint(b, t.Nonce)
		b = wire.AppendPeer(b, t.To)
		return binary.AppendUvarint(b, t.Until)
	}
	return b
}

// Marshal encodes the transaction.
func (t *Tx) Marshal() []byte { return t.appendTo(make([]byte, 0, 512)) }

func (t *Tx) appendTo(b []byte) []byte {
	b = t.appendUnsigned(b)
	if !t.Kind.selfSigned() {
		b = wire.AppendBytes(b, t.Sig)
	}
	return b
}

// selfSigned reports whether a kind carries its own signatures (a
// receipt's parties, a ticket's publisher, an order's issuer) rather than
// an account's signature of the transaction.
func (k Kind) selfSigned() bool {
	return k == KindReceipt || k == KindTicket || k == KindOrder || k == KindJob || k == KindEvidence ||
		k == KindBeacon || k == KindProof || k == KindJobMismatch
}

// ID is the transaction's hash: SHA-256 over a domain prefix and Marshal.
// The block's TxRoot is the Merkle root of its transactions' IDs.
func (t *Tx) ID() [32]byte {
	var buf [1024]byte // on the stack for the usual transaction
	return sha256.Sum256(t.appendTo(append(buf[:0], txIDDomain...)))
}

// SigPayload is what From signs: a domain prefix, the network ID and the
// unsigned encoding, so a transaction is valid on one network only.
func (t *Tx) SigPayload(network string) []byte {
	b := append(make([]byte, 0, 256), txSigDomain...)
	b = wire.AppendBytes(b, []byte(network))
	return t.appendUnsigned(b)
}

// Sign signs an account transaction with From's key.
func (t *Tx) Sign(network string, k crypto.PrivKey) error {
	if t.Kind.selfSigned() {
		return fmt.Errorf("ledger: a %s is signed by its parties, not as a transaction", t.Kind)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return fmt.Errorf("ledger: sign: %w", err)
	}
	if id != t.From {
		return fmt.Errorf("ledger: sign: key of %s signing for %s", id, t.From)
	}
	sig, err := k.Sign(t.SigPayload(network))
	if err != nil {
		return fmt.Errorf("ledger: sign: %w", err)
	}
	t.Sig = sig
	return nil
}

// ErrBadSignature is a transaction or block signature that does not verify.
var ErrBadSignature = errors.New("ledger: bad signature")

// VerifySig checks From's signature of an account transaction.
func (t *Tx) VerifySig(network string) error {
	if len(t.Sig) == 0 {
		return fmt.Errorf("%w: unsigned %s", ErrBadSignature, t.Kind)
	}
	pk, err := t.From.ExtractPublicKey()
	if err != nil || pk.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: %s is not an Ed25519 account", ErrBadSignature, t.From)
	}
	ok, err := pk.Verify(t.SigPayload(network), t.Sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: %s by %s", ErrBadSignature, t.Kind, t.From)
	}
	return nil
}

// Authenticate checks what makes t its author's: From's signature of an
// account transaction, the publisher's signature of a ticket, on network.
// Receipts are checked by their two signatures (pod.VerifyReceipts).
func (t *Tx) Authenticate(network string) error {
	switch t.Kind {
	case KindReceipt:
		if t.Receipt == nil {
			return fmt.Errorf("%w: a receipt transaction without a receipt", ErrBadSignature)
		}
		if err := t.Receipt.VerifyClient(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		if err := t.Receipt.VerifyServer(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	case KindTicket:
		if t.Ticket == nil || t.Ticket.Network != network {
			return fmt.Errorf("%w: no ticket of network %q", ErrBadSignature, network)
		}
		if err := t.Ticket.Verify(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	case KindOrder:
		// An order is no one's to submit: a leader puts its own in its
		// block, where the ledger checks it (applyOrder).
		return fmt.Errorf("%w: a replication order enters a block only from the leader that plans it", ErrBadSignature)
	case KindJob:
		if t.Job == nil || t.Job.Network != network {
			return fmt.Errorf("%w: no job receipt of network %q", ErrBadSignature, network)
		}
		if err := t.Job.Verify(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	case KindEvidence:
		if t.Evidence == nil {
			return fmt.Errorf("%w: an evidence transaction without evidence", ErrBadSignature)
		}
		return t.Evidence.VerifySigs()
	case KindBeacon:
		// The ledger checks a beacon against the block before it
		// (applyBeacon); only a leader puts one in its block.
		return fmt.Errorf("%w: a beacon enters a block only from the leader that builds it", ErrBadSignature)
	case KindProof:
		// A proof is its own authority: its segments verify against the
		// ledger's commitment or the ledger refuses it (applyProof).
		if t.Proof == nil {
			return fmt.Errorf("%w: a proof transaction without a proof", ErrBadSignature)
		}
		if err := checkAccount(t.From); err != nil {
			return fmt.Errorf("%w: the proving box: %w", ErrBadSignature, err)
		}
		return nil
	case KindJobMismatch:
		if t.Mismatch == nil {
			return fmt.Errorf("%w: a mismatch transaction without a proof", ErrBadSignature)
		}
		if err := t.Mismatch.verifySigs(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	}
	return t.VerifySig(network)
}

// MaxTxEncoded is the largest encoded transaction of any kind (a
// registration that carries its root block): what a transport that
// carries transactions must take.
const MaxTxEncoded = maxTxEncoded

const maxTxEncoded = max(maxRegisterRootTx, maxOrderTx, maxProofTx, maxBeaconTx, maxMismatchTx)

// UnmarshalTx decodes a transaction. It accepts only the canonical
// encoding of a known version and kind within its size limit (MaxTxSize,
// more for a registration that carries its root block); it checks that
// peer IDs and CIDs parse, not signatures or state rules.
func UnmarshalTx(data []byte) (*Tx, error) {
	if limit := maxTxEncoded; len(data) > limit || len(data) >= 2 && len(data) > maxTxSize(Kind(data[1])) {
		if len(data) >= 2 {
			limit = min(limit, maxTxSize(Kind(data[1])))
		}
		return nil, fmt.Errorf("%w: transaction of %d bytes, the limit is %d", ErrMalformed, len(data), limit)
	}
	d := wire.NewDecoder(data, ErrMalformed)
	if v := d.Byte("version"); d.Err() == nil && v != Version {
		return nil, fmt.Errorf("%w: transaction version %d, this build reads %d", ErrMalformed, v, Version)
	}
	t := &Tx{Kind: Kind(d.Byte("kind"))}
	switch t.Kind {
	case KindTicket:
		raw := d.View(pod.MaxTicketEncoded, "ticket")
		if d.Err() == nil {
			tk, err := pod.UnmarshalTicket(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			t.Ticket, t.From = tk, tk.Publisher
		}
	case KindOrder:
		raw := d.View(heat.MaxOrderSize, "order")
		if d.Err() == nil {
			o, err := heat.UnmarshalOrder(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			t.Order, t.From = o, o.Issuer
		}
	case KindReceipt:
		raw := d.View(pod.MaxEncoded, "receipt") // Unmarshal copies what it keeps
		if d.Err() == nil {
			r, err := pod.Unmarshal(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			t.Receipt = r
		}
	case KindJob:
		raw := d.View(pod.MaxJobEncoded, "job receipt")
		if d.Err() == nil {
			r, err := pod.UnmarshalJobReceipt(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			t.Job, t.From = r, r.Requester
		}
	case KindEvidence:
		t.Evidence = readEvidence(d)
	case KindBeacon:
		n := d.Count(MaxBlockSigs, "beacon signatures")
		for i := 0; i < n && d.Err() == nil; i++ {
			t.Beacon = append(t.Beacon, Signature{Signer: d.Peer(maxPeerIDLen, "signer"), Sig: d.Bytes(maxSigLen, "signature")})
		}
	case KindProof:
		t.From = d.Peer(maxPeerIDLen, "box")
		t.Root = d.CID(maxCIDLen, "root")
		t.Round = d.Uvarint("round")
		t.Proof = storeproof.Read(d)
	case KindStorage:
		t.From = d.Peer(maxPeerIDLen, "from")
		t.Nonce = d.Uvarint("nonce")
		t.Root = d.CID(maxCIDLen, "root")
		t.Price = d.Uvarint("price")
		t.Amount = d.Uvarint("length")
		t.Commit = d.Hash("commitment")
		if r := d.Uvarint("replicas"); r > math.MaxUint32 {
			d.Failf("%d replicas do not fit 32 bits", r)
		} else {
			t.Replicas = uint32(r)
		}
		t.Until = d.Uvarint("until")
		t.Sig = d.Bytes(maxSigLen, "signature")
	case KindJobMismatch:
		t.Mismatch = readJobMismatch(d)
	case KindDeposit, KindTransfer, KindRegister, KindPrewarm, KindWithdraw, KindSpendCap, KindRegisterRoot, KindDelegate, KindFunction, KindBond, KindUnbond:
		t.From = d.Peer(maxPeerIDLen, "from")
		t.Nonce = d.Uvarint("nonce")
		switch t.Kind {
		case KindDeposit, KindWithdraw, KindSpendCap, KindBond, KindUnbond:
			t.Amount = d.Uvarint("amount")
		case KindTransfer:
			t.To = d.Peer(maxPeerIDLen, "to")
			t.Amount = d.Uvarint("amount")
		case KindDelegate:
			t.To = d.Peer(maxPeerIDLen, "delegate")
			t.Until = d.Uvarint("until")
		case KindRegister:
			t.Root = d.CID(maxCIDLen, "root")
			t.Price = d.Uvarint("price")
		case KindFunction:
			t.Root = d.CID(maxCIDLen, "function")
			t.Price = d.Uvarint("price")
			t.Amount = d.Uvarint("work limit")
		case KindRegisterRoot:
			t.Root = d.CID(maxCIDLen, "root")
			t.Price = d.Uvarint("price")
			t.Amount = d.Uvarint("open")
			t.Replicate = d.Uvarint("replicate")
			t.Block = d.Bytes(MaxRootBlock, "root block")
		case KindPrewarm:
			t.Root = d.CID(maxCIDLen, "root")
			if r := d.Uvarint("replicas"); r > math.MaxUint32 {
				d.Failf("%d replicas do not fit 32 bits", r)
			} else {
				t.Replicas = uint32(r)
			}
			t.Until = d.Uvarint("until")
		}
		t.Sig = d.Bytes(maxSigLen, "signature")
	default:
		if d.Err() == nil {
			return nil, fmt.Errorf("%w: unknown transaction kind %d", ErrMalformed, t.Kind)
		}
	}
	// Every field is read in its only encoding (see internal/wire) and the
	// receipt is canonical itself, so what decodes is canonical.
	if err := d.End(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reason names why a transaction was refused; metrics count by it.
type Reason string

// Refusal reasons. Receipt reasons are pod's (pod.Reason) under the same
// names.
const (
	ReasonMalformed          Reason = "malformed"
	ReasonBadSignature       Reason = "bad_signature"
	ReasonMissingSignature   Reason = Reason(pod.ReasonMissingSig)
	ReasonBadAccount         Reason = "bad_account"
	ReasonBadNonce           Reason = "bad_nonce"
	ReasonZeroAmount         Reason = "zero_amount"
	ReasonInsufficientFunds  Reason = "insufficient_funds"
	ReasonSelfTransfer       Reason = "self_transfer"
	ReasonNotOwner           Reason = "not_owner"
	ReasonNotRegistered      Reason = "not_registered"
	ReasonReplicasOutOfRange Reason = "replicas_out_of_range"
	ReasonUntilOutOfRange    Reason = "until_out_of_range"
	ReasonBlockFull          Reason = "block_full"
	ReasonInsufficientEscrow Reason = "insufficient_escrow"
	ReasonNotInRules         Reason = "not_in_rules" // a kind the chain's rules version does not have
	ReasonBadTicket          Reason = "bad_ticket"
	ReasonTicketKnown        Reason = "ticket_known"
	ReasonUnknownTicket      Reason = "unknown_ticket"    // a receipt under a ticket the ledger has not learned
	ReasonTicketMismatch     Reason = "ticket_mismatch"   // a receipt its ticket does not cover
	ReasonNotCommittee       Reason = "not_committee"     // an order whose issuer is not a committee member
	ReasonOrdersFull         Reason = "orders_full"       // the ledger keeps MaxActiveOrders orders
	ReasonWorkOutOfRange     Reason = "work_out_of_range" // a job's work, or a function's work limit, out of range
	ReasonUnknownVersion     Reason = Reason(pod.ReasonUnknownVersion)
	ReasonWrongNetwork       Reason = Reason(pod.ReasonWrongNetwork)
	ReasonEpochOutOfRange    Reason = Reason(pod.ReasonEpochOutOfRange)
	ReasonSelfDealing        Reason = Reason(pod.ReasonSelfDealing)
	ReasonOversized          Reason = Reason(pod.ReasonOversized)
)

// Reasons lists every reason, for metrics that start at zero.
var Reasons = []Reason{ReasonMalformed, ReasonBadSignature, ReasonMissingSignature, ReasonBadAccount,
	ReasonBadNonce, ReasonZeroAmount, ReasonInsufficientFunds, ReasonSelfTransfer, ReasonNotOwner,
	ReasonNotRegistered, ReasonReplicasOutOfRange, ReasonUntilOutOfRange, ReasonBlockFull,
	ReasonInsufficientEscrow, ReasonNotInRules, ReasonBadTicket, ReasonTicketKnown, ReasonUnknownTicket,
	ReasonTicketMismatch, ReasonNotCommittee, ReasonOrdersFull, ReasonWorkOutOfRange, ReasonUnknownVersion, ReasonWrongNetwork, ReasonEpochOutOfRange, ReasonSelfDealing, ReasonOversized}

// ErrInvalidTx is wrapped by every TxError.
var ErrInvalidTx = errors.New("ledger: invalid transaction")

// TxError is a transaction that broke a rule: Apply returns it for the
// first bad transaction of a block.
type TxError struct {
	Index  int // in the block (Apply) or in the candidates (Build)
	Kind   Kind
	Reason Reason
	Err    error
}

func (e *TxError) Error() string {
	return fmt.Sprintf("ledger: transaction %d (%s) refused (%s): %v", e.Index, e.Kind, e.Reason, e.Err)
}

// Unwrap returns both ErrInvalidTx and the cause.
func (e *TxError) Unwrap() []error { return []error{ErrInvalidTx, e.Err} }

// Rejected is a candidate transaction Build left out, and why.
type Rejected struct {
	Index  int // in Build's txs argument
	Reason Reason
	Err    error
}

// ReasonOf returns the reason of a TxError or pod rejection ("" if err is
// neither).
func ReasonOf(err error) Reason {
	var te *TxError
	if errors.As(err, &te) {
		return te.Reason
	}
	if r := pod.ReasonOf(err); r != "" {
		return Reason(r)
	}
	return ""
}

// reason is an internal error with its reason, turned into a TxError by
// the caller that knows the index.
type reason struct {
	r   Reason
	err error
}

func (e *reason) Error() string { return string(e.r) + ": " + e.err.Error() }
func (e *reason) Unwrap() error { return e.err }

func refuse(r Reason, format string, args ...any) error {
	return &reason{r: r, err: fmt.Errorf(format, args...)}
}

func txError(i int, t *Tx, err error) *TxError {
	te := &TxError{Index: i, Kind: t.Kind, Err: err}
	var re *reason
	if errors.As(err, &re) {
		te.Reason, te.Err = re.r, re.err
	} else {
		te.Reason = Reason(pod.ReasonOf(err))
	}
	if te.Reason == "" {
		te.Reason = ReasonMalformed
	}
	return te
}

// verifyReceipts checks both signatures of every receipt in txs with
// pod.VerifyReceipts (Ed25519 batches on all cores, each receipt once per
// process) and returns each transaction's signature error (nil for valid
// receipts and for other kinds). The verdicts follow ZIP-215 alone and
// batch alike, so a signature's validity never depends on the receipts
// around it, and so the state after a block is a function of its bytes.
func verifyReceipts(txs []Tx) []error {
	errs := make([]error, len(txs))
	var idx []int
	var rs []*pod.Receipt
	for i := range txs {
		if txs[i].Kind == KindReceipt && txs[i].Receipt != nil {
			idx = append(idx, i)
			rs = append(rs, txs[i].Receipt)
		}
	}
	for j, err := range pod.VerifyReceipts(rs) {
		errs[idx[j]] = err
	}
	return errs
}
