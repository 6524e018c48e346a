package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// TicketSpec is the demand a publisher authorizes with a ticket.
type TicketSpec struct {
	Root   cid.Cid       // the content; cid.Undef: every root this box registered
	Client peer.ID       // the one client that may spend it; "": any holder (a bearer ticket)
	Cap    uint64        // bytes paid under it, over every box, client and epoch
	For    time.Duration // how long from now it stays valid, rounded up to whole epochs
	// Publisher is whose escrow pays when this box signs as a key that
	// publisher delegated on the ledger (`ore ledger delegate`); "": this
	// box is the publisher.
	Publisher peer.ID
}

// ErrNoTickets is a network whose ledger rules pay no tickets.
var ErrNoTickets = errors.New("node: this network's ledger pays no tickets")

// IssueTicket signs a ticket as this box, the publisher, and hands it to
// the ledger, which then pays receipts under it (rules version 4). The
// ticket's String form is what a client or an app's signed URL carries.
func (n *Node) IssueTicket(ctx context.Context, spec TicketSpec) (*pod.Ticket, error) {
	g := n.cfg.Genesis
	if g == nil {
		return nil, fmt.Errorf("node: this box has no ledger network (no genesis)")
	}
	if g.Rules < ledger.RulesV4 {
		return nil, fmt.Errorf("%w: its genesis has rules version %d, tickets need %d (there, every receipt of registered content is paid)", ErrNoTickets, g.Rules, ledger.RulesV4)
	}
	if spec.Cap == 0 {
		return nil, fmt.Errorf("node: a ticket with a cap of 0 bytes pays nothing: give a cap")
	}
	if spec.For <= 0 {
		return nil, fmt.Errorf("node: a ticket must stay valid for a positive time, like 1h")
	}
	publisher := spec.Publisher
	if publisher == "" {
		publisher = n.ID()
	}
	if spec.Client == n.ID() || spec.Client == publisher {
		return nil, fmt.Errorf("node: a publisher (or its delegate) cannot ticket itself: its own fetches are not paid")
	}
	params := n.cfg.Network
	now := time.Now()
	expires := params.EpochAt(now.Add(spec.For + params.EpochLength - 1))
	if e := params.EpochAt(now); expires-e > ledger.MaxTicketEpochs {
		return nil, fmt.Errorf("node: %s is %d epochs; a ticket is valid at most %d epochs (%s): issue a shorter one and renew it",
			spec.For, expires-e, ledger.MaxTicketEpochs, time.Duration(ledger.MaxTicketEpochs)*params.EpochLength)
	}
	st, err := n.LedgerState(ctx)
	if err != nil {
		return nil, err
	}
	if publisher != n.ID() {
		if until, ok := st.Delegate(publisher, n.ID()); !ok || until < params.EpochAt(now) {
			return nil, fmt.Errorf("node: %s has not delegated this box (%s) to sign its tickets: on the publisher's box, `ore ledger delegate %s`", publisher, n.ID(), n.ID())
		}
	}
	if spec.Root.Defined() {
		if _, ok := st.RegistrationOf(publisher, spec.Root); !ok {
			return nil, fmt.Errorf("node: %s is not registered by %s: register it first (`ore ledger register %s` on the publisher's box)", spec.Root, publisher, spec.Root)
		}
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("node: ticket nonce: %w", err)
	}
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: params.Network, Publisher: publisher, Root: spec.Root,
		Client: spec.Client, Cap: spec.Cap, Expires: expires, Nonce: binary.BigEndian.Uint64(nonce[:])}
	if publisher != n.ID() {
		tk.Version, tk.Signer = pod.TicketVersionDelegated, n.ID()
	}
	if err := tk.Sign(n.key); err != nil {
		return nil, err
	}
	if err := n.SubmitTx(ctx, ledger.NewTicketTx(tk)); err != nil {
		return nil, fmt.Errorf("node: hand the ticket to the ledger: %w", err)
	}
	return tk, nil
}

// RegisterTx is the transaction that registers root as this box's content
// at price per GiB (0: the network's), in the form the network's rules
// take: from rules version 4 it carries the root's block, read from this
// box's store (the ledger reads the content's size from it), and opens
// the root to receipts under no ticket for open base units per epoch (0:
// tickets only). Before version 4, open must be 0.
func (n *Node) RegisterTx(ctx context.Context, root cid.Cid, price, open uint64) (ledger.Tx, error) {
	g := n.cfg.Genesis
	if g == nil {
		return ledger.Tx{}, fmt.Errorf("node: this box has no ledger network (no genesis)")
	}
	if g.Rules < ledger.RulesV4 {
		if open != 0 {
			return ledger.Tx{}, fmt.Errorf("%w: its genesis has rules version %d, where every receipt of registered content is paid: nothing to open", ErrNoTickets, g.Rules)
		}
		return ledger.NewRegister("", 0, root, price), nil
	}
	var block []byte
	if root.Type() != cid.Raw { // a raw root is at most a block's size: the ledger needs no block
		b, err := n.store.Get(ctx, root)
		if err != nil {
			return ledger.Tx{}, fmt.Errorf("node: the root block of %s is not on this box (the ledger reads the content's size from it): add or fetch it first: %w", root, err)
		}
		block = b.RawData()
		if len(block) > ledger.MaxRootBlock {
			return ledger.Tx{}, fmt.Errorf("node: the root block of %s is %d bytes; the ledger takes at most %d: register a root whose node is smaller (a directory around it)", root, len(block), ledger.MaxRootBlock)
		}
	}
	return ledger.NewRegisterRoot("", 0, root, block, price, open), nil
}

// WithTicket makes the fetches made under ctx (Fetch, Get, gateway
// requests) run under tk: their receipts name it, so the ledger pays the
// serving boxes from its publisher's escrow (rules version 4). It is the
// gateway's mark, which a request with a ticket carries.
func WithTicket(ctx context.Context, tk *pod.Ticket) context.Context {
	return gateway.WithTicket(ctx, tk)
}

func ticketFrom(ctx context.Context) *pod.Ticket { return gateway.TicketFrom(ctx) }

// ErrTicket is a ticket that cannot pay for a fetch.
var ErrTicket = errors.New("node: the ticket does not pay for this fetch")

// useTicket checks that tk pays for this box's fetch of root (its network,
// signature, root, client and expiry), hands it to the ledger if the
// ledger does not know it yet, and makes root's receipts name it. On a
// network whose rules pay no tickets it does nothing: every receipt is
// paid there.
func (n *Node) useTicket(ctx context.Context, root cid.Cid, tk *pod.Ticket) error {
	g := n.cfg.Genesis
	if g == nil || g.Rules < ledger.RulesV4 || n.pod == nil {
		return nil
	}
	params := n.cfg.Network
	if n.pod.client.UsesTicket(root, tk.ID()) {
		return nil // checked and handed over when first used
	}
	if err := params.CheckTicket(tk); err != nil {
		return fmt.Errorf("%w: %v", ErrTicket, err)
	}
	switch {
	case tk.Root.Defined() && !tk.Root.Equals(root):
		return fmt.Errorf("%w: it is for %s, not %s", ErrTicket, tk.Root, root)
	case tk.Client != "" && tk.Client != n.ID():
		return fmt.Errorf("%w: it is for client %s, this box is %s", ErrTicket, tk.Client, n.ID())
	case tk.Expires < params.EpochAt(time.Now()):
		return fmt.Errorf("%w: it expired after epoch %d", ErrTicket, tk.Expires)
	}
	if err := tk.Verify(); err != nil {
		return fmt.Errorf("%w: %v", ErrTicket, err)
	}
	// The ledger must know the ticket before it takes a receipt under it.
	// A ticket it knows already costs nothing more: the pool and the
	// ledger refuse a second copy.
	st, err := n.LedgerState(ctx)
	if err != nil {
		return err
	}
	if _, _, _, _, ok := st.Ticket(tk.ID()); !ok {
		if err := n.SubmitTx(ctx, ledger.NewTicketTx(tk)); err != nil {
			return fmt.Errorf("node: hand the ticket to the ledger: %w", err)
		}
	}
	n.pod.client.UseTicket(root, tk)
	return nil
}
