package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/pod"
	"github.com/orecdn/ore/testnet"
)

// demo is the state the demo's steps share.
type demo struct {
	boxes int
	size  int64
	dir   string
	net   *testnet.Network

	publisher, getter int
	gateway           int
	coordinators      []int
	leader            int
	replica           int
	registered        *ledger.State // when the content was registered
	ticket            *pod.Ticket   // the getter's, from the publisher
	replicaReceipts   []*pod.Receipt
	srcPath, outPath  string
	srcHash           [32]byte
	added             node.AddResult
	fetched           node.FetchResult
}

// demoStep is one step of `ore demo`: it does its work and returns a line
// that says what happened. Adding a capability to the demo is adding a step.
type demoStep struct {
	title string
	run   func(d *demo, ctx context.Context) (string, error)
}

func demoSteps() []demoStep {
	return []demoStep{
		{"start an ore network on loopback", (*demo).start},
		{"publish a generated file", (*demo).publish},
		{"deposit, register the content and ticket a client on the ledger", (*demo).register},
		{"a second box caches a replica, under no ticket", (*demo).replicate},
		{"find the publisher through the DHT", (*demo).findProviders},
		{"fetch the file under the ticket on a box with no link to the publisher", (*demo).fetch},
		{"check the bytes", (*demo).verify},
		{"show the proof-of-delivery receipts of the fetch", (*demo).receipts},
		{"fetch the file again through the HTTP gateway", (*demo).viaGateway},
		{"wait for the block that pays the ticketed fetch and not the other, verify the chain", (*demo).settle},
		{"make the file hot: a burst of requests, the committee orders replicas", (*demo).heatUp},
		{"pay storage only when proven: a storage offer, a proof round, a box that deletes its copy loses its pay and its order", (*demo).storage},
		{"run a function over content: through the gateway, from its cache, and paid on the ledger", (*demo).compute},
	}
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "[flags]")
	boxes := fs.Int("boxes", 8, "boxes in the network")
	sizeFlag := fs.String("size", "16MiB", "size of the published file")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *boxes < 7 {
		return fmt.Errorf("%w: --boxes must be at least 7 (4 of them coordinate the ledger)", errUsage)
	}
	size, err := sizeArg("size", *sizeFlag, "16MiB")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ore-demo-*")
	if err != nil {
		return err
	}
	d := &demo{boxes: *boxes, size: int64(size), dir: dir}
	defer func() {
		if d.net != nil {
			d.net.Close()
		}
		if *keep {
			fmt.Fprintf(e.stdout, "kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	fmt.Fprintf(e.stdout, "ore demo: %d boxes, one %s file, everything in %s\n\n", d.boxes, humanize.IBytes(size), dir)
	steps := demoSteps()
	total := time.Now()
	for i, s := range steps {
		start := time.Now()
		fmt.Fprintf(e.stdout, "[%d/%d] %s\n", i+1, len(steps), s.title)
		line, err := s.run(d, ctx)
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, s.title, err)
		}
		for _, l := range strings.Split(line, "\n") {
			fmt.Fprintf(e.stdout, "      %s\n", l)
		}
		fmt.Fprintf(e.stdout, "      (%s)\n", time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(e.stdout, "\ndemo passed in %s\n", time.Since(total).Round(time.Millisecond))
	return nil
}

func (d *demo) start(ctx context.Context) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d.gateway, d.publisher, d.replica, d.getter = 2, 1, d.boxes-2, d.boxes-1
	// A committee of 4 under byzantine-safe finality (NewGenesis): 3 of 4
	// precommits make a block final, one member may crash or lie.
	d.coordinators = []int{0, 3, 4, 5}
	nw, err := testnet.New(sctx, d.boxes, testnet.WithDir(filepath.Join(d.dir, "boxes")),
		testnet.WithNodeOptions(node.WithStallTimeout(20*time.Second), node.WithSchedule(demoSchedule())),
		testnet.WithBoxOptions(d.gateway, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0")),
		// The runner lends its CPU: it runs one job at a time for others.
		testnet.WithBoxOptions(d.runner(), node.WithComputeService(1)),
		testnet.WithLedger(testnet.LedgerSpec{
			Coordinators: d.coordinators,
			// The boxes whose heat reports the heat step counts keep the
			// reporter bond: their genesis balances pay it.
			Balances: map[int]uint64{d.publisher: 1000 * oreUnit, d.runner(): demoRunnerBalance,
				d.gateway: demoReporterBalance, d.replica: demoReporterBalance},
			EpochLength: demoEpoch,
			Network:     "ore-demo",
			// Rules 5 pays proven storage; its challenge rounds are short
			// here so the demo sees several.
			Rules:        ledger.RulesV5,
			StorageRound: demoStorageRound,
		}))
	if err != nil {
		return "", err
	}
	d.net = nw
	leader, err := nw.Leader(sctx)
	if err != nil {
		return "", err
	}
	d.leader = leader
	var b strings.Builder
	for i, n := range nw.Nodes {
		fmt.Fprintf(&b, "box %d  %s  DHT peers %d", i, n.ID(), n.DHT().RoutingTableSize())
		if a := n.GatewayAddr(); a != "" {
			fmt.Fprintf(&b, "  gateway http://%s", a)
		}
		b.WriteString("\n")
	}
	b.WriteString("box 0 is the bootstrap peer; every box speaks /ore/kad/1.0.0 and bitswap\n")
	fmt.Fprintf(&b, "ledger %q: committee boxes %v (Raft leader: box %d), epochs of %s, publisher box %d holds %s",
		nw.Genesis.Network, d.coordinators, leader, demoEpoch, d.publisher, formatOre(1000*oreUnit))
	return b.String(), nil
}

func (d *demo) publish(ctx context.Context) (string, error) {
	d.srcPath = filepath.Join(d.dir, "published.bin")
	if err := testnet.WriteRandomFile(d.srcPath, d.size, uint64(time.Now().UnixNano())); err != nil {
		return "", err
	}
	h, err := hashFile(d.srcPath)
	if err != nil {
		return "", err
	}
	d.srcHash = h
	start := time.Now()
	res, err := d.net.Nodes[d.publisher].AddPath(ctx, d.srcPath)
	if err != nil {
		return "", err
	}
	if !res.Provided {
		return "", fmt.Errorf("root not announced: %s", res.ProvideErr)
	}
	d.added = res
	return fmt.Sprintf("box %d added %s → root %s\nchunked into 256 KiB raw leaves, pinned, announced in the DHT (%.0f MB/s)",
		d.publisher, humanize.IBytes(uint64(res.Bytes)), res.Root, float64(res.Bytes)/1e6/time.Since(start).Seconds()), nil
}

func (d *demo) findProviders(ctx context.Context) (string, error) {
	g, p := d.net.Nodes[d.getter], d.net.Nodes[d.publisher]
	// Cut any link the DHT's own traffic made, so the fetch has to rely on
	// what the DHT says.
	_ = g.Host().Network().ClosePeer(p.ID())
	if g.Host().Network().Connectedness(p.ID()) == network.Connected {
		return "", errors.New("getter is still connected to the publisher")
	}
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	provs, err := g.DHT().FindProviders(fctx, d.added.Root, 5)
	if err != nil {
		return "", err
	}
	for _, pr := range provs {
		if pr.ID == p.ID() {
			return fmt.Sprintf("box %d asked the DHT for %s\nprovider found: box %d (%s), not connected before", d.getter, d.added.Root, d.publisher, p.ID()), nil
		}
	}
	return "", fmt.Errorf("the DHT did not return the publisher (got %d providers)", len(provs))
}

func (d *demo) fetch(ctx context.Context) (string, error) {
	g := d.net.Nodes[d.getter]
	_ = g.Host().Network().ClosePeer(d.net.Nodes[d.publisher].ID())
	d.outPath = filepath.Join(d.dir, "fetched.bin")
	before := g.Traffic()
	res, err := g.Get(node.WithTicket(ctx, d.ticket), d.added.Root, d.outPath, nil)
	if err != nil {
		return "", err
	}
	d.fetched = res
	var b strings.Builder
	fmt.Fprintf(&b, "box %d fetched %d blocks, %s, at %.0f MB/s; its receipts name ticket %x\n", d.getter, res.Blocks, humanize.IBytes(uint64(res.Bytes)),
		float64(res.Bytes)/1e6/res.Duration.Seconds(), d.ticketID())
	for _, t := range g.Traffic() {
		got := t.BytesReceived
		if i := slices.IndexFunc(before, func(x node.PeerTraffic) bool { return x.Peer == t.Peer }); i >= 0 {
			got -= before[i].BytesReceived
		}
		if got > 0 {
			fmt.Fprintf(&b, "  from %s: %s\n", d.boxName(t.Peer), humanize.IBytes(uint64(got)))
		}
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func (d *demo) verify(ctx context.Context) (string, error) {
	h, err := hashFile(d.outPath)
	if err != nil {
		return "", err
	}
	if h != d.srcHash {
		return "", errors.New("the fetched file differs from the published one")
	}
	return fmt.Sprintf("sha256 %x matches the published file", h[:8]), nil
}

func (d *demo) viaGateway(ctx context.Context) (string, error) {
	url := "http://" + d.net.Nodes[d.gateway].GatewayAddr() + "/ipfs/" + d.added.Root.String()
	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if sum != d.srcHash {
		return "", errors.New("the gateway served different bytes")
	}
	rs, err := d.net.Nodes[d.gateway].ReceivedReceipts(ctx, 0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("GET %s\n%s, %s, TTFB %s, total %s; bytes match; the gateway holds %d countersigned receipts",
		url, resp.Status, humanize.IBytes(uint64(n)), first.Sub(start).Round(time.Microsecond), time.Since(start).Round(time.Millisecond), len(rs)), nil
}

// boxName names a peer by its box number in the demo.
func (d *demo) boxName(id peer.ID) string {
	for i, n := range d.net.Nodes {
		if n.ID() == id {
			return fmt.Sprintf("box %d", i)
		}
	}
	return id.String()
}

func (d *demo) receipts(ctx context.Context) (string, error) {
	rs := d.fetched.Receipts
	if len(rs) == 0 {
		return "", errors.New("the fetch produced no receipts")
	}
	var b strings.Builder
	var total uint64
	for _, r := range rs {
		if err := r.VerifyClient(); err != nil {
			return "", err
		}
		if err := r.VerifyServer(); err != nil {
			return "", err
		}
		// The server keeps the same receipt: it is what it will be paid for.
		i := slices.IndexFunc(d.net.Nodes, func(n *node.Node) bool { return n.ID() == r.Server })
		if i < 0 {
			return "", fmt.Errorf("receipt names a server outside the demo: %s", r.Server)
		}
		served, err := d.net.Nodes[i].ServedReceipts(ctx, r.Epoch)
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(served, func(s *pod.Receipt) bool { return s.Key() == r.Key() && s.Seq == r.Seq }) {
			return "", fmt.Errorf("%s does not hold the receipt the client holds", d.boxName(r.Server))
		}
		fmt.Fprintf(&b, "%s served %s to %s: %s in %d blocks, epoch %d, seq %d; both signatures valid, server and client hold it\n",
			d.boxName(r.Server), r.Root.String()[:16]+"…", d.boxName(r.Client), humanize.IBytes(r.Bytes), r.Blocks, r.Epoch, r.Seq)
		total += r.Bytes
	}
	fmt.Fprintf(&b, "receipts cover %s of the %s fetched", humanize.IBytes(total), humanize.IBytes(uint64(d.fetched.Fetched)))
	if total < uint64(d.fetched.Fetched) {
		return "", errors.New(b.String())
	}
	return b.String(), nil
}

func (d *demo) replicate(ctx context.Context) (string, error) {
	res, err := d.net.Nodes[d.replica].Fetch(ctx, d.added.Root, nil)
	if err != nil {
		return "", err
	}
	d.replicaReceipts = res.Receipts
	return fmt.Sprintf("box %d fetched the %d blocks and announces itself as a provider too (the last step has the committee place replicas)\n"+
		"no ticket names it and the publisher opened the root to no one: its %d receipts will be accounted and paid nothing",
		d.replica, res.Blocks, len(res.Receipts)), nil
}

func (d *demo) ticketID() []byte {
	id := d.ticket.ID()
	return id[:8]
}

// oreUnit is one ore in base units; demoEpoch keeps the demo's waits short.
const (
	oreUnit   = 1_000_000_000
	demoEpoch = 2 * time.Second
)

func formatOre(v uint64) string { return fmt.Sprintf("%d.%09d ore", v/oreUnit, v%oreUnit) }

// ledgerState is the state of the committee member that leads now.
func (d *demo) ledgerState(ctx context.Context) (*ledger.State, error) {
	i, err := d.net.Leader(ctx)
	if err != nil {
		return nil, err
	}
	return d.net.Nodes[i].Committee().State(), nil
}

func (d *demo) register(ctx context.Context) (string, error) {
	pub := d.net.Nodes[d.publisher]
	key, err := node.LoadIdentity(d.net.Dirs[d.publisher])
	if err != nil {
		return "", err
	}
	g := d.net.Genesis
	deposit := ledger.NewDeposit(pub.ID(), 1, 100*oreUnit)
	// Rules 4: the registration carries the root's block (the ledger reads
	// the content's size from it) and pays up to replicateBudget an epoch
	// for the replicas the committee orders when the file is hot.
	register, err := pub.RegisterTx(ctx, d.added.Root, 0, 0)
	if err != nil {
		return "", err
	}
	register = register.WithReplicate(replicateBudget)
	register.From, register.Nonce = pub.ID(), 2
	for _, tx := range []*ledger.Tx{&deposit, &register} {
		if err := tx.Sign(g.Network, key); err != nil {
			return "", err
		}
		if err := pub.SubmitTx(ctx, *tx); err != nil {
			return "", err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*demoEpoch)
	defer cancel()
	for {
		s, err := d.ledgerState(wctx)
		if err != nil {
			return "", err
		}
		if reg, ok := s.RegistrationOf(pub.ID(), d.added.Root); ok {
			d.registered = s
			line := fmt.Sprintf("box %d deposited %s into escrow and registered %s (%s by its root block) at %s per GiB, paying up to %s an epoch for ordered replicas\nin block %d (epoch %d); escrow %s, balance %s",
				d.publisher, formatOre(100*oreUnit), d.added.Root.String()[:16]+"…", humanize.IBytes(reg.Size), formatOre(reg.PricePerGiB),
				formatOre(reg.Replicate), s.Height(), s.Epoch(), formatOre(s.Escrow(pub.ID())), formatOre(s.Balance(pub.ID())))
			// A ticket for the getter: the demand the publisher pays for. The
			// publisher checks its own registration on the final chain.
			for {
				if ps, err := pub.LedgerState(wctx); err == nil {
					if _, ok := ps.RegistrationOf(pub.ID(), d.added.Root); ok {
						break
					}
				}
				select {
				case <-wctx.Done():
					return "", fmt.Errorf("the registration is in no final block after %s", 10*demoEpoch)
				case <-time.After(50 * time.Millisecond):
				}
			}
			getter := d.net.Nodes[d.getter].ID()
			if d.ticket, err = pub.IssueTicket(ctx, node.TicketSpec{Root: d.added.Root, Client: getter, Cap: 2 * uint64(d.size), For: time.Hour}); err != nil {
				return "", err
			}
			if err := d.waitTicket(wctx); err != nil {
				return "", err
			}
			return line + fmt.Sprintf("\nticket %x: box %d may fetch %s paid, up to %s, until epoch %d; the ledger learned it (its signature checked once)",
				d.ticketID(), d.getter, d.added.Root.String()[:16]+"…", humanize.IBytes(d.ticket.Cap), d.ticket.Expires), nil
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("the registration is in no block after %s", 10*demoEpoch)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// replicateBudget is what the demo's publisher pays per epoch for the
// replication the committee orders.
const replicateBudget = oreUnit

// waitTicket waits until the ledger knows the getter's ticket.
func (d *demo) waitTicket(ctx context.Context) error {
	for {
		s, err := d.ledgerState(ctx)
		if err != nil {
			return err
		}
		if _, _, _, _, ok := s.Ticket(d.ticket.ID()); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the ticket is in no block: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *demo) settle(ctx context.Context) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, 15*demoEpoch)
	defer cancel()
	var s *ledger.State
	for {
		var err error
		if s, err = d.ledgerState(wctx); err != nil {
			return "", err
		}
		paid := true
		for _, r := range slices.Concat(d.fetched.Receipts, d.replicaReceipts) {
			if s.Paid(r.Key()) < r.Bytes {
				paid = false
			}
		}
		if paid {
			break
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("the fetch's receipts are in no block after %s", 15*demoEpoch)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "block %d (epoch %d) has accounted every receipt of both fetches\n", s.Height(), s.Epoch())
	// Each server earns exactly the ticketed bytes it served at the price:
	// the replica's unticketed receipts, accounted in the same blocks,
	// earned nothing.
	reg, _ := s.RegistrationOf(d.net.Nodes[d.publisher].ID(), d.added.Root)
	due := map[peer.ID]uint64{}
	var ticketed, unticketed uint64
	for _, r := range d.fetched.Receipts {
		due[r.Server] += ledger.Owed(r.Bytes, reg.PricePerGiB)
		ticketed += r.Bytes
	}
	for _, r := range d.replicaReceipts {
		if _, ok := due[r.Server]; !ok {
			due[r.Server] = 0
		}
		unticketed += r.Bytes
	}
	for _, id := range slices.Sorted(maps.Keys(due)) {
		earned := s.Balance(id) - d.registered.Balance(id)
		if earned != due[id] {
			return "", fmt.Errorf("%s earned %s; its ticketed bytes at the price come to %s", d.boxName(id), formatOre(earned), formatOre(due[id]))
		}
		fmt.Fprintf(&b, "%s earned %s (balance %s): its ticketed bytes at the price, to the base unit\n", d.boxName(id), formatOre(earned), formatOre(s.Balance(id)))
	}
	_, _, spent, _, _ := s.Ticket(d.ticket.ID())
	fmt.Fprintf(&b, "ticket %x paid for %s of its %s cap; box %d's fetch under no ticket (%s) earned its servers nothing\n",
		d.ticketID(), humanize.IBytes(spent), humanize.IBytes(d.ticket.Cap), d.replica, humanize.IBytes(unticketed))
	if spent != ticketed {
		return "", fmt.Errorf("the ticket paid for %d bytes, the ticketed fetch's receipts cover %d", spent, ticketed)
	}
	pub := d.net.Nodes[d.publisher].ID()
	fmt.Fprintf(&b, "publisher box %d: escrow left %s, balance %s\n", d.publisher, formatOre(s.Escrow(pub)), formatOre(s.Balance(pub)))
	// Wait for the committee's signatures on that block.
	lc := d.net.Nodes[d.leader].Committee()
	for {
		if b, ok := lc.Block(s.Height()); ok && b.Final(d.net.Genesis) {
			break
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("block %d gathered no majority of signatures", s.Height())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Any peer can replay the chain from genesis: every block final, every
	// receipt checked, the same state hash.
	blocks, err := lc.Blocks(1)
	if err != nil {
		return "", err
	}
	// The last block may still be gathering signatures: verify the final prefix.
	for len(blocks) > 0 && !blocks[len(blocks)-1].Final(d.net.Genesis) {
		blocks = blocks[:len(blocks)-1]
	}
	v, err := ledger.Verify(d.net.Genesis, blocks)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "verify from genesis: %d final blocks, state hash %x", len(blocks), v.Hash())
	for _, i := range d.coordinators {
		c := d.net.Nodes[i].Committee()
		if c == nil {
			continue
		}
		if cs := c.State(); cs.Height() == v.Height() && cs.Hash() != v.Hash() {
			return "", fmt.Errorf("box %d's state hash %x differs from the replay", i, cs.Hash())
		}
	}
	b.WriteString(", equal on every coordinator at that height")
	return b.String(), nil
}

func hashFile(p string) ([32]byte, error) {
	var out [32]byte
	f, err := os.Open(p)
	if err != nil {
		return out, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return out, err
	}
	copy(out[:], h.Sum(nil))
	return out, nil
}

// demoSchedule is the planner of the demo's committee. The defaults
// (heat.DefaultParams: hot at 8 requests, a replica per 4, up to 16) want
// more requests than a burst on a few boxes makes; here a root is hot at 6
// requests and wants a replica per 2, up to 6: more than the 3 boxes that
// hold the file whole after the earlier steps (the publisher, the replica
// and the getter; the gateway too if its fill completed), whose 3 requests
// (the replica's, the getter's and the gateway's) keep it below hot.
func demoSchedule() heat.Params {
	p := heat.DefaultParams()
	p.HotRequests, p.RequestsPerReplica, p.Ceiling = 6, 2, 6
	return p
}

// demoBurst is how many times each requester asks for the file in the
// burst: the gateway's HTTP clients, the replica box and the getter box,
// 12 requests in all, enough for the ceiling on their own.
const demoBurst = 4

// heatUp makes the published file hot with a burst of requests and waits
// until the committee's leader has a replica target for it and the boxes
// it ordered hold it.
func (d *demo) heatUp(ctx context.Context) (string, error) {
	root := d.added.Root
	var b strings.Builder
	before, _, err := d.holders(ctx, root)
	if err != nil {
		return "", err
	}
	p := demoSchedule()
	fmt.Fprintf(&b, "before: %d boxes hold it (%s); the committee plans hot at %.0f requests, a replica per %.0f, %d to %d replicas\n",
		len(before), joinBoxes(before), p.HotRequests, p.RequestsPerReplica, p.Floor, p.Ceiling)
	// The committee counts the demand of reporters that keep the reporter
	// bond only (rules 5): a report's demand cannot be checked and a key
	// costs nothing. The three boxes the burst goes through post it.
	reporters := []int{d.gateway, d.replica, d.getter}
	errs := make(chan error, len(reporters))
	for _, i := range reporters {
		go func() { errs <- d.submitFinal(ctx, i, ledger.NewBond("", 0, ledger.ReporterBond)) }()
	}
	for range reporters {
		if err := <-errs; err != nil {
			return "", fmt.Errorf("reporter bond: %w", err)
		}
	}
	st, err := d.net.Nodes[d.publisher].LedgerState(ctx)
	if err != nil {
		return "", err
	}
	for _, i := range reporters {
		if !st.Vouched(d.net.Nodes[i].ID()) {
			return "", fmt.Errorf("box %d's reporter bond is final but the ledger does not count its reports", i)
		}
	}
	fmt.Fprintf(&b, "boxes %s each bond %s: the committee counts the demand only of boxes that keep the reporter bond (a report's word cannot be checked, a new key costs nothing)\n",
		joinBoxes(reporters), formatOre(ledger.ReporterBond))
	if _, ok, err := d.leaderTarget(ctx, root); err != nil {
		return "", err
	} else if ok {
		return "", errors.New("the file is hot before the burst: the demo's planner parameters are off")
	}

	// The burst: apps through the gateway, and the two boxes that fetched
	// it before ask again (a box counts a request even when it has the
	// content).
	params := d.net.Nodes[0].Network()
	hot := time.Now()
	burstEpoch := params.EpochAt(hot)
	url := "http://" + d.net.Nodes[d.gateway].GatewayAddr() + "/ipfs/" + root.String()
	for range demoBurst {
		if err := d.httpGet(ctx, url); err != nil {
			return "", err
		}
	}
	for _, i := range []int{d.replica, d.getter} {
		for range demoBurst {
			if _, err := d.net.Nodes[i].Fetch(ctx, root, nil); err != nil {
				return "", fmt.Errorf("box %d: %w", i, err)
			}
		}
	}
	fmt.Fprintf(&b, "burst in epoch %d: %d HTTP GETs through the gateway (box %d), %d fetches each on boxes %d and %d\n",
		burstEpoch, demoBurst, d.gateway, demoBurst, d.replica, d.getter)

	// Wait: the boxes report their heat once an epoch, the leader plans
	// when an epoch closes, the ordered boxes fetch and hold the file. An
	// ordered fetch waits up to 10 s for its receipts' countersignatures,
	// and a failed one is reassigned the next epoch: the deadline is ample.
	wait := 30 * demoEpoch
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var (
		tg           heat.Target
		found        bool
		first        heat.Target // the first target seen for the root
		firstEpoch   uint64      // the epoch of the plan that made it
		firstLeader  int         // the box that planned it
		all, ordered []int
		leader       int
	)
	for {
		tick := time.After(100 * time.Millisecond)
		var e uint64
		var targets []heat.Target
		if leader, err = d.net.Leader(wctx); err == nil {
			e, targets, err = d.net.Nodes[leader].ReplicaTargets()
		}
		if err != nil && wctx.Err() == nil {
			return "", err
		}
		if i := slices.IndexFunc(targets, func(t heat.Target) bool { return t.Root == root }); i >= 0 {
			if !found {
				first, firstEpoch, firstLeader = targets[i], e, leader
			}
			tg, found = targets[i], true
		}
		if all, ordered, err = d.holders(ctx, root); err != nil {
			return "", err
		}
		if found && len(all) >= tg.Replicas && len(all) > len(before) && len(ordered) > 0 &&
			slices.Equal(d.indexes(tg.Boxes), ordered) {
			break
		}
		select {
		case <-wctx.Done():
			if !found {
				return "", fmt.Errorf("after %s (%d epochs) the committee's leader has no replica target for %s; boxes %s hold it",
					wait, wait/demoEpoch, root, joinBoxes(all))
			}
			return "", fmt.Errorf("after %s (%d epochs) the leader's target for %s is %d replicas, ordering boxes %s; boxes %s hold it (%s under an order)",
				wait, wait/demoEpoch, root, tg.Replicas, joinBoxes(d.indexes(tg.Boxes)), joinBoxes(all), joinBoxes(ordered))
		case <-tick:
		}
	}
	done := time.Now()
	fmt.Fprintf(&b, "epoch %d: the leader (box %d) counts %.0f requests in the boxes' heat reports → target %d replicas (⌈%.0f/%.0f⌉ within [%d, %d])\n",
		firstEpoch, firstLeader, first.Requests, first.Replicas, first.Requests, p.RequestsPerReplica, p.Floor, p.Ceiling)
	fmt.Fprintf(&b, "its orders, in a final block and gossiped with the block's signatures on %s, name boxes %s: they fetch it and hold it through epoch %d (renewed while it stays hot)\n",
		node.OrdersTopic, joinBoxes(ordered), tg.Until)
	if s, err := d.ledgerState(ctx); err == nil {
		if _, e, until, _, boxes, ok := s.Order(root); ok {
			fmt.Fprintf(&b, "the ledger records the order of epoch %d (boxes %s, until %d): their fetches are paid as replication, from the publisher's %s an epoch\n",
				e, joinBoxes(d.indexes(boxes)), until, formatOre(replicateBudget))
		}
	}
	doneEpoch := params.EpochAt(done)
	epochs := "epochs"
	if doneEpoch-burstEpoch == 1 {
		epochs = "epoch"
	}
	fmt.Fprintf(&b, "after: %d boxes hold it (%s): replicas %d → %d by epoch %d, %d %s after the burst (%s, %.1f epochs of %s)",
		len(all), joinBoxes(all), len(before), len(all), doneEpoch, doneEpoch-burstEpoch, epochs,
		done.Sub(hot).Round(100*time.Millisecond), done.Sub(hot).Seconds()/demoEpoch.Seconds(), demoEpoch)
	return b.String(), nil
}

// holders lists the boxes that hold root whole, and those of them that hold
// it under a replication order.
func (d *demo) holders(ctx context.Context, root cid.Cid) (all, ordered []int, err error) {
	for i, n := range d.net.Nodes {
		roots, err := n.Roots(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("box %d: %w", i, err)
		}
		for _, r := range roots {
			// A box holds it whole when it recorded the whole DAG
			// (after an add or a complete fetch) or an order holds it
			// (held: every block is local), as the planner counts.
			held := r.Order == heat.OrderHeld.String()
			if r.Root != root || r.Size == 0 && !held {
				continue
			}
			all = append(all, i)
			if held {
				ordered = append(ordered, i)
			}
		}
	}
	return all, ordered, nil
}

// leaderTarget is the current leader's latest replica target for root.
func (d *demo) leaderTarget(ctx context.Context, root cid.Cid) (heat.Target, bool, error) {
	i, err := d.net.Leader(ctx)
	if err != nil {
		return heat.Target{}, false, err
	}
	_, targets, err := d.net.Nodes[i].ReplicaTargets()
	if err != nil {
		return heat.Target{}, false, err
	}
	for _, t := range targets {
		if t.Root == root {
			return t, true, nil
		}
	}
	return heat.Target{}, false, nil
}

// indexes are the box numbers of ids, in order.
func (d *demo) indexes(ids []peer.ID) []int {
	var out []int
	for i, n := range d.net.Nodes {
		if slices.Contains(ids, n.ID()) {
			out = append(out, i)
		}
	}
	return out
}

func joinBoxes(is []int) string {
	if len(is) == 0 {
		return "none"
	}
	s := make([]string, len(is))
	for i, v := range is {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}

// httpGet reads url whole and checks that it serves the published file's
// size.
func (d *demo) httpGet(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != d.size {
		return fmt.Errorf("GET %s: %s, %d bytes of %d", url, resp.Status, n, d.size)
	}
	return nil
}
