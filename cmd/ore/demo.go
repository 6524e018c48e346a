package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

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
		{"deposit and register the content on the ledger", (*demo).register},
		{"a second box caches a replica", (*demo).replicate},
		{"find the publisher through the DHT", (*demo).findProviders},
		{"fetch the file on a box with no link to the publisher", (*demo).fetch},
		{"check the bytes", (*demo).verify},
		{"show the proof-of-delivery receipts of the fetch", (*demo).receipts},
		{"fetch the file again through the HTTP gateway", (*demo).viaGateway},
		{"wait for the block that pays the serving boxes, verify the chain", (*demo).settle},
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
	if *boxes < 6 {
		return fmt.Errorf("%w: --boxes must be at least 6 (3 of them coordinate the ledger)", errUsage)
	}
	size, err := humanize.ParseBytes(*sizeFlag)
	if err != nil || size == 0 {
		return fmt.Errorf("%w: --size %q is not a size like 16MiB", errUsage, *sizeFlag)
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
	d.gateway, d.publisher, d.getter = 2, 1, d.boxes-1
	d.coordinators = []int{0, 3, 4}
	nw, err := testnet.New(sctx, d.boxes, testnet.WithDir(filepath.Join(d.dir, "boxes")),
		testnet.WithNodeOptions(node.WithStallTimeout(20*time.Second)),
		testnet.WithBoxOptions(d.gateway, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0")),
		testnet.WithLedger(testnet.LedgerSpec{
			Coordinators: d.coordinators,
			Balances:     map[int]uint64{d.publisher: 1000 * oreUnit},
			EpochLength:  demoEpoch,
			Network:      "ore-demo",
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
	d.replica = d.boxes - 2
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
	res, err := g.Get(ctx, d.added.Root, d.outPath, nil)
	if err != nil {
		return "", err
	}
	d.fetched = res
	var b strings.Builder
	fmt.Fprintf(&b, "box %d fetched %d blocks, %s, at %.0f MB/s\n", d.getter, res.Blocks, humanize.IBytes(uint64(res.Bytes)),
		float64(res.Bytes)/1e6/res.Duration.Seconds())
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
	return fmt.Sprintf("box %d fetched the %d blocks and announces itself as a provider too (heat scheduling will place such replicas)",
		d.replica, res.Blocks), nil
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
	register := ledger.NewRegister(pub.ID(), 2, d.added.Root, 0)
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
		if reg, ok := s.Registration(d.added.Root); ok {
			d.registered = s
			return fmt.Sprintf("box %d deposited %s into escrow and registered %s at %s per GiB\nin block %d (epoch %d); escrow %s, balance %s",
				d.publisher, formatOre(100*oreUnit), d.added.Root.String()[:16]+"…", formatOre(reg.PricePerGiB), s.Height(), s.Epoch(),
				formatOre(s.Escrow(pub.ID())), formatOre(s.Balance(pub.ID()))), nil
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("the registration is in no block after %s", 10*demoEpoch)
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
		for _, r := range d.fetched.Receipts {
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
	fmt.Fprintf(&b, "block %d (epoch %d) pays the receipts of the fetch\n", s.Height(), s.Epoch())
	servers := map[peer.ID]bool{}
	for _, r := range d.fetched.Receipts {
		servers[r.Server] = true
	}
	for id := range servers {
		fmt.Fprintf(&b, "%s earned %s (balance %s)\n", d.boxName(id), formatOre(s.Balance(id)-d.registered.Balance(id)), formatOre(s.Balance(id)))
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
