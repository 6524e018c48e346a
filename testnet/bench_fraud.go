package testnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
)

// FraudConfig tunes BenchFraud.
type FraudConfig struct {
	Epoch time.Duration // default 2 s
	// Log, when set, hears what the bench does as it goes.
	Log func(format string, args ...any)
}

// FraudRow is one attack (or honest traffic) and what it moved.
type FraudRow struct {
	Attack  string `json:"attack"`
	Moved   uint64 `json:"moved"`   // base units the attack's receipts were paid (or, for a squatter, spent)
	Allowed uint64 `json:"allowed"` // what the rules allow it
	// Exact rows must move exactly Allowed (honest traffic is paid to the
	// byte); the others at most Allowed.
	Exact  bool   `json:"exact"`
	Holds  bool   `json:"holds"`
	Detail string `json:"detail"`
}

// FraudFigures are BenchFraud's rows and whether every one holds.
type FraudFigures struct {
	Rules    uint8      `json:"rules"`
	RootSize uint64     `json:"root_size"`
	Price    uint64     `json:"price_per_gib"`
	Rows     []FraudRow `json:"rows"`
	Holds    bool       `json:"holds"`
}

type fraudParty struct {
	k  crypto.PrivKey
	id peer.ID
}

func newFraudParties(n int) []fraudParty {
	out := make([]fraudParty, n)
	for i := range out {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		out[i] = fraudParty{k, id}
	}
	return out
}

// BenchFraud runs the attacks on paid delivery against a real committee
// of 3 coordinators in this process, on a ledger of rules version 4, and
// reports per attack the ore that moved and the ore the rules allow:
// inflated bytes, sybil clients without tickets, one ticket spent through
// many servers, an expired and a forged ticket, a replayed receipt, a
// squatted registration, claims honest servers' meters do not cover (bytes
// never sent, bytes of another root, a root the server does not hold), a publisher's spending cap under a flood of
// receipts, and honest traffic alongside, paid to the byte. Receipts are
// signed by keys the bench holds (colluding servers and clients) and
// gossiped like any; tickets and registrations go through the boxes'
// ledger API.
func BenchFraud(ctx context.Context, cfg FraudConfig, opts ...Option) (FraudFigures, error) {
	if cfg.Epoch <= 0 {
		cfg.Epoch = 2 * time.Second
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	figs := FraudFigures{Rules: ledger.RulesV4}
	const a, b = 3, 4 // the publisher, and a second one (a squatter of a's root, with a root of its own)
	// Box 5 fetches without signing receipts, so the bytes servers send it
	// stay unclaimed for the receipts it crafts.
	const taker = 5
	nw, err := New(ctx, 6, append(opts, WithBoxOptions(taker, node.WithReceipts(false)), WithLedger(LedgerSpec{Coordinators: []int{0, 1, 2},
		Balances: map[int]uint64{a: 1 << 50, b: 1 << 50}, EpochLength: cfg.Epoch, Network: "ore-fraud", Rules: ledger.RulesV4}))...)
	if err != nil {
		return figs, err
	}
	defer nw.Close()
	g := nw.Genesis
	params := g.Params()
	figs.Price = g.PricePerGiB
	pubA, pubB := nw.Nodes[a], nw.Nodes[b]
	addRandom := func(n *node.Node, size int) (cid.Cid, error) {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		res, err := n.Add(ctx, files.NewBytesFile(data))
		return res.Root, err
	}
	rootA, err := addRandom(pubA, 8<<20)
	if err != nil {
		return figs, err
	}
	rootB, err := addRandom(pubB, 8<<20)
	if err != nil {
		return figs, err
	}
	// Each transaction is final before the next: nonces come from the
	// final chain.
	submit := func(n *node.Node, tx ledger.Tx) error { return SubmitFinal(ctx, n, tx, time.Hour) } // ctx bounds it
	regA, err := pubA.RegisterTx(ctx, rootA, 0, 0)
	if err != nil {
		return figs, err
	}
	regB, err := pubB.RegisterTx(ctx, rootB, 0, 0)
	if err != nil {
		return figs, err
	}
	squat, err := pubA.RegisterTx(ctx, rootA, 1, 0) // b registers a's root too, at 1 base unit per GiB
	if err != nil {
		return figs, err
	}
	for _, step := range []struct {
		n  *node.Node
		tx ledger.Tx
	}{
		{pubA, ledger.NewDeposit("", 0, 1<<40)}, {pubA, regA},
		{pubB, ledger.NewDeposit("", 0, 1<<40)}, {pubB, regB}, {pubB, squat},
	} {
		if err := submit(step.n, step.tx); err != nil {
			return figs, fmt.Errorf("testnet: set up the publishers: %w", err)
		}
	}
	// A pre-warm of a's root for 2 replicas: it reserves what they may
	// cost, before the escrow the rows below measure is read.
	const prewarmReplicas = 2
	if err := submit(pubA, ledger.NewPrewarm("", 0, rootA, prewarmReplicas, params.EpochAt(time.Now())+120)); err != nil {
		return figs, fmt.Errorf("testnet: pre-warm: %w", err)
	}
	st, err := pubA.LedgerState(ctx)
	if err != nil {
		return figs, err
	}
	reg, ok := st.RegistrationOf(pubA.ID(), rootA)
	if !ok {
		return figs, errors.New("testnet: the publisher's registration is not on the ledger")
	}
	size, price := reg.Size, reg.PricePerGiB
	figs.RootSize = size
	owed := func(bytes uint64) uint64 { return ledger.Owed(bytes, price) }
	logf("publisher a registered %s (%d bytes), b registered %s and squats a's root", rootA, size, rootB)

	// Tickets the publishers issue (through their boxes) and a forged one.
	clients := newFraudParties(128)
	ticket := func(n *node.Node, root cid.Cid, client peer.ID, capBytes uint64, valid time.Duration) (*pod.Ticket, error) {
		return n.IssueTicket(ctx, node.TicketSpec{Root: root, Client: client, Cap: capBytes, For: valid})
	}
	tInflated, err := ticket(pubA, rootA, clients[0].id, 1<<30, time.Hour)
	if err != nil {
		return figs, err
	}
	tMany, err := ticket(pubA, rootA, clients[1].id, size, time.Hour)
	if err != nil {
		return figs, err
	}
	tExpired, err := ticket(pubA, rootA, clients[2].id, 1<<30, cfg.Epoch) // valid through the next epoch
	if err != nil {
		return figs, err
	}
	tReplay, err := ticket(pubA, rootA, clients[3].id, 1<<30, time.Hour)
	if err != nil {
		return figs, err
	}
	tCap, err := ticket(pubB, rootB, "", 1<<40, time.Hour) // a bearer ticket for everyone: the cap is what bounds b
	if err != nil {
		return figs, err
	}
	forged := *tInflated
	forged.Client, forged.Nonce = clients[4].id, forged.Nonce+1 // a's signature over other terms
	forgedErr := pubA.SubmitTx(ctx, ledger.NewTicketTx(&forged))
	var honest []*pod.Ticket
	for i := range 5 {
		tk, err := ticket(pubA, rootA, clients[10+i].id, 1<<30, time.Hour)
		if err != nil {
			return figs, err
		}
		honest = append(honest, tk)
	}
	const capB = 1_000_000 // b's spending cap per epoch, in base units
	if err := submit(pubB, ledger.NewSpendCap("", 0, capB)); err != nil {
		return figs, err
	}
	// Every ticket is on the chain before receipts name it.
	if err := waitLedger(ctx, pubA, func(st *ledger.State) bool {
		for _, tk := range append([]*pod.Ticket{tInflated, tMany, tExpired, tReplay, tCap}, honest...) {
			if _, _, _, _, ok := st.Ticket(tk.ID()); !ok {
				return false
			}
		}
		return true
	}); err != nil {
		return figs, err
	}

	// Claims honest servers' meters do not cover, each refused before it
	// could pay anything from a's escrow:
	//   - a coordinator's box, which fetched nothing from a's box, signs a
	//     receipt for a TiB of a's root under a ticket of its own;
	//   - box 5 fetches b's root from a's box (which fetched it too, so it
	//     holds both roots) and claims those bytes under a's root, with a
	//     ticket of a's: it received real bytes, of the wrong root;
	//   - it claims the same bytes under a's root at b's box, which does
	//     not hold a's root.
	claimAt := func(cli *node.Node, dir string, srv *node.Node, root cid.Cid, bytes uint64) error {
		key, err := node.LoadIdentity(dir)
		if err != nil {
			return err
		}
		tk, err := ticket(pubA, rootA, cli.ID(), 1<<40, time.Hour)
		if err != nil {
			return err
		}
		r := &pod.Receipt{Version: pod.VersionTicket, Network: g.Network, Epoch: params.EpochAt(time.Now()), Server: srv.ID(), Client: cli.ID(),
			Root: root, Seq: 1, Bytes: bytes, Blocks: max(1, (bytes+pod.MaxBlockSize-1)/pod.MaxBlockSize), Ticket: tk.ID()}
		if err := r.SignClient(key); err != nil {
			return err
		}
		if err := cli.Connect(ctx, srv.AddrInfo()); err != nil {
			return err
		}
		st, err := cli.Host().NewStream(ctx, srv.ID(), pod.ProtocolID)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := pod.WriteRequest(st, r); err != nil {
			return err
		}
		_ = st.CloseWrite()
		_, err = pod.ReadResponse(st)
		return err
	}
	unsentErr := claimAt(nw.Nodes[2], nw.Dirs[2], pubA, rootA, 1<<40)
	crossErr, unheldErr := func() (error, error) {
		if _, err := pubA.Fetch(ctx, rootB, nil); err != nil {
			return err, err
		}
		tk := nw.Nodes[taker]
		if err := tk.Connect(ctx, pubA.AddrInfo()); err != nil {
			return err, err
		}
		// It never signs, so each server's credit window stops it after
		// a few MiB: it takes what it can for a few seconds.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = tk.Fetch(fctx, rootB, nil)
		cancel()
		var fromA, fromB uint64
		for _, t := range pubA.Traffic() {
			if t.Peer == tk.ID() {
				fromA = uint64(t.BytesSent)
			}
		}
		for _, t := range pubB.Traffic() {
			if t.Peer == tk.ID() {
				fromB = uint64(t.BytesSent)
			}
		}
		logf("box %d took %d bytes of b's root from a's box and %d from b's, receipting none", taker, fromA, fromB)
		return claimAt(tk, nw.Dirs[taker], pubA, rootA, max(fromA, 1)), claimAt(tk, nw.Dirs[taker], pubB, rootA, max(fromB, 1))
	}()

	// The receipts, all of one epoch but the expired ticket's.
	now := params.EpochAt(time.Now())
	servers := newFraudParties(64)
	var rs []*pod.Receipt
	seq := uint64(1)
	receipt := func(srv, cli fraudParty, root cid.Cid, epoch, bytes uint64, tk *pod.Ticket) *pod.Receipt {
		r := &pod.Receipt{Version: pod.Version, Network: g.Network, Epoch: epoch, Server: srv.id, Client: cli.id,
			Root: root, Seq: seq, Bytes: bytes, Blocks: max(1, (bytes+pod.MaxBlockSize-1)/pod.MaxBlockSize)}
		if tk != nil {
			r.Version, r.Ticket = pod.VersionTicket, tk.ID()
		}
		if err := r.SignClient(cli.k); err == nil {
			_ = r.SignServer(srv.k)
		}
		rs = append(rs, r)
		return r
	}
	type row struct {
		FraudRow
		servers []fraudParty
		paysB   bool // b's escrow pays this row's servers
		paysA   bool // the row is what a's escrow lost beyond every other row's servers
		// reservation: the row is what a's pre-warm paid from its
		// reservation (its servers are other rows' and the boxes').
		reservation bool
		fromReserve bool // the row's servers are paid from a's reservation, not its escrow
	}
	var rows []*row
	add := func(name string, exact bool, allowed uint64, detail string, srvs []fraudParty) {
		rows = append(rows, &row{FraudRow: FraudRow{Attack: name, Allowed: allowed, Exact: exact, Detail: detail}, servers: srvs})
	}
	// Inflated bytes: one receipt claims a PiB under a ticket of 1 GiB.
	receipt(servers[0], clients[0], rootA, now, 1<<50, tInflated)
	add("inflated bytes (1 PiB claimed under a 1 GiB ticket)", false, owed(min(1<<30, ledger.RetryFactor*size)),
		"paid for at most twice the root's size", servers[0:1])
	// Sybil clients without tickets, with a colluding server.
	for i := range 32 {
		receipt(servers[1], clients[96+i], rootA, now, size, nil)
	}
	add("32 sybil clients without tickets", false, 0, "the root is not open: unticketed receipts earn nothing", servers[1:2])
	// One ticket spent through many servers.
	for i := range 10 {
		receipt(servers[2+i], clients[1], rootA, now, size, tMany)
	}
	add("one ticket through 10 servers", false, owed(size), "the ticket's cap (the root's size) holds over every server", servers[2:12])
	// An expired ticket: receipts of the epoch after its last.
	receipt(servers[12], clients[2], rootA, tExpired.Expires+1, size, tExpired)
	add("an expired ticket", false, 0, fmt.Sprintf("expired at epoch %d", tExpired.Expires), servers[12:13])
	// A forged ticket: the ledger never learns it.
	receipt(servers[13], clients[4], rootA, now, size, &forged)
	add("a forged ticket", false, 0, fmt.Sprintf("refused at submission: %v", forgedErr), servers[13:14])
	// A replayed claim: the same bytes again under later sequences.
	for seq = 1; seq <= 3; seq++ {
		receipt(servers[14], clients[3], rootA, now, size/2, tReplay)
	}
	seq = 1
	add("a claim replayed under 3 sequences", true, owed(size/2), "paid once", servers[14:15])
	// A squatted registration: b pays nothing for a's tickets.
	add("a squatted registration", true, 0, "the squatter's escrow pays nothing for the real publisher's tickets", nil)
	// b's spending cap under a flood: 40 clients take its root under a
	// bearer ticket, each from its own server.
	for i := range 40 {
		receipt(servers[20+i], clients[20+i], rootB, now, size, tCap)
	}
	add(fmt.Sprintf("a flood against a spending cap of %d", capB), false, capB, "b's escrow pays at most its cap for the epoch", servers[20:60])
	rows[len(rows)-1].paysB = true
	// Replication: a box the committee's recorded order names claims a PiB
	// of the pre-warmed root from a colluding server, under no ticket.
	var ordered []peer.ID
	if err := waitLedger(ctx, pubA, func(st *ledger.State) bool {
		_, _, _, _, ordered, _ = st.Order(rootA)
		return slices.ContainsFunc(ordered, func(p peer.ID) bool { return p != pubA.ID() })
	}); err != nil {
		return figs, fmt.Errorf("testnet: no recorded order for the pre-warm: %w", err)
	}
	box := slices.IndexFunc(nw.Nodes, func(n *node.Node) bool { return n.ID() != pubA.ID() && slices.Contains(ordered, n.ID()) })
	boxKey, err := node.LoadIdentity(nw.Dirs[box])
	if err != nil {
		return figs, err
	}
	orderedBox := fraudParty{id: nw.Nodes[box].ID(), k: boxKey}
	receipt(servers[15], orderedBox, rootA, params.EpochAt(time.Now()), 1<<50, nil)
	add("an ordered box claims a PiB of replication from a colluding server", false, owed(ledger.RetryFactor*size),
		"one root's worth and a retry per ordered box, from the pre-warm's reservation", servers[15:16])
	rows[len(rows)-1].fromReserve = true
	reservation := ledger.Reservation(reg, prewarmReplicas)
	add(fmt.Sprintf("a pre-warm of %d replicas (honest replication and the claim above)", prewarmReplicas), false, reservation,
		"paid from what the pre-warm reserved, never the escrow beyond it", nil)
	rows[len(rows)-1].reservation = true

	escrowA0 := st.Escrow(pubA.ID())
	add("claims honest servers' meters do not cover", true, 0,
		fmt.Sprintf("refused to countersign: a TiB never sent: %v; b's bytes under a's root: %v; at a box without a's root: %v", unsentErr, crossErr, unheldErr), nil)
	rows[len(rows)-1].paysA = true

	// Honest traffic: 5 clients, each half from two servers.
	honestAllowed := uint64(0)
	for i, tk := range honest {
		for j := range 2 {
			receipt(servers[60+j], clients[10+i], rootA, now, size/2, tk)
			honestAllowed += owed(size / 2)
		}
	}
	add("honest traffic (5 clients, 2 servers each)", true, honestAllowed, "paid to the byte", servers[60:62])
	escrowB0 := st.Escrow(pubB.ID())

	// Gossip them all from a's box, as servers would, and wait until no
	// block can pay them any more.
	logf("gossiping %d receipts of epoch %d", len(rs), now)
	for _, r := range rs {
		if err := pubA.GossipReceipts(ctx, []*pod.Receipt{r}); err != nil {
			logf("a receipt the intake refused: %v", err)
		}
	}
	// A block of epoch last or later comes after every block that can
	// pay them: wait for that epoch, then for a deposit made in it.
	last := max(now, tExpired.Expires+1) + params.MaxSkew + 1
	for params.EpochAt(time.Now()) < last {
		select {
		case <-ctx.Done():
			return figs, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := submit(pubA, ledger.NewDeposit("", 0, 1)); err != nil {
		return figs, err
	}
	st, err = pubA.LedgerState(ctx)
	if err != nil {
		return figs, err
	}
	figs.Holds = true
	var paidByB uint64 // what b's escrow paid its own servers
	for _, r := range rows {
		for _, s := range r.servers {
			r.Moved += st.Balance(s.id)
		}
		if r.paysB {
			paidByB += r.Moved
		}
	}
	var paidByA uint64 // what a's escrow paid the rows' servers
	for _, r := range rows {
		if !r.paysB && !r.fromReserve {
			paidByA += r.Moved
		}
	}
	for _, r := range rows {
		switch {
		case r.paysA: // the honest server's row: whatever a's escrow lost beyond the other rows' servers
			// a's escrow grew by the closing deposit of 1.
			r.Moved = escrowA0 + 1 - min(escrowA0+1, st.Escrow(pubA.ID())+paidByA)
		case r.reservation:
			left := uint64(0)
			if pw, ok := st.Prewarm(rootA); ok {
				left = pw.Reserved
			}
			r.Moved = ledger.Reservation(reg, prewarmReplicas) - left
		case r.servers == nil: // the squatter: whatever its escrow lost beyond its own root
			r.Moved = escrowB0 - min(escrowB0, st.Escrow(pubB.ID())+paidByB)
		}
		r.Holds = r.Moved <= r.Allowed && (!r.Exact || r.Moved == r.Allowed)
		figs.Holds = figs.Holds && r.Holds
		figs.Rows = append(figs.Rows, r.FraudRow)
	}
	return figs, nil
}

// waitLedger polls n's view of the final chain until cond holds.
func waitLedger(ctx context.Context, n *node.Node, cond func(*ledger.State) bool) error {
	for {
		st, err := n.LedgerState(ctx)
		if err == nil && cond(st) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: waiting on the ledger: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
