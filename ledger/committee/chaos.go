package committee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/pod"
)

// Chaos runs a committee of cfg.Members coordinators (FinalityBFT) in this
// process on loopback, with real libp2p hosts, under a randomized fault
// schedule drawn from cfg.Seed while receipts stream in, then heals
// everything and checks the invariants: one history (every member holds
// the same final chain, which verifies from genesis), one state hash,
// each receipt paid at most once, supply conserved, no block from the
// future. The schedule (which fault, on whom, for how long, in what
// order) is the same for a seed; how it interleaves with the network's
// own timing is not.
//
// Faults, one at a time so that at most one member is faulty (a committee
// of 4 tolerates one): kill (close the coordinator and its host; restart
// it from its disk when the fault ends), partition (cut it off from every
// other member), skew (its clock an hour ahead or behind), equivocate
// (while it leads it shows every other member a different block of each
// height and signs votes for all of them), loss (cut the link between two
// members: what gossip and Raft send over it is lost until it heals).
// Once evidence excluded a member, the faults that follow take that one:
// the three others are the only ones whose votes count.
type ChaosConfig struct {
	Duration time.Duration // how long the schedule runs
	Seed     uint64
	Epoch    time.Duration // the network's epoch length (default 3 s)
	Members  int           // 4 or 5 (default 4)
	Logf     func(format string, args ...any)
}

// ChaosEvent is one fault of the schedule.
type ChaosEvent struct {
	At     float64 `json:"at_s"`
	Fault  string  `json:"fault"`
	Member int     `json:"member"`
	Other  int     `json:"other,omitempty"` // loss: the link's other end
	For    float64 `json:"for_s"`
}

// ChaosInvariant is one check at the end and whether it held.
type ChaosInvariant struct {
	Name   string `json:"name"`
	Held   bool   `json:"held"`
	Detail string `json:"detail"`
}

// ChaosReport is what Chaos saw.
type ChaosReport struct {
	Seed          uint64           `json:"seed"`
	Seconds       float64          `json:"seconds"`
	Events        []ChaosEvent     `json:"events"`
	Receipts      int              `json:"receipts"` // published
	Paid          int              `json:"paid"`     // paid in full (the others expired while faults stalled the committee)
	Height        uint64           `json:"height"`
	RoundTimeouts float64          `json:"round_timeouts"`
	Equivocations float64          `json:"equivocations"`
	Excluded      []string         `json:"excluded"`
	Invariants    []ChaosInvariant `json:"invariants"`
	AllHeld       bool             `json:"all_held"`
}

type chaosMember struct {
	idx  int
	key  crypto.PrivKey
	id   peer.ID
	dir  string
	skew atomic.Int64

	mu     sync.Mutex
	h      host.Host
	stopPS context.CancelFunc
	in     *intake.Intake
	pool   *intake.Pool
	c      *Committee
}

// chaosNet is the members' connection gaters: isolated members and cut
// links neither dial nor accept each other.
type chaosNet struct {
	mu       sync.Mutex
	isolated map[peer.ID]bool
	links    map[[2]peer.ID]bool
}

func linkKey(a, b peer.ID) [2]peer.ID {
	if a > b {
		a, b = b, a
	}
	return [2]peer.ID{a, b}
}

func (n *chaosNet) apart(a, b peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.isolated[a] || n.isolated[b] || n.links[linkKey(a, b)]
}

type chaosGate struct {
	self peer.ID
	n    *chaosNet
}

func (g *chaosGate) InterceptPeerDial(p peer.ID) bool                 { return !g.n.apart(g.self, p) }
func (g *chaosGate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.n.apart(g.self, p) }
func (g *chaosGate) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *chaosGate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.n.apart(g.self, p)
}
func (g *chaosGate) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return !g.n.apart(g.self, c.RemotePeer()), 0
}

var _ connmgr.ConnectionGater = (*chaosGate)(nil)

type chaos struct {
	cfg     ChaosConfig
	g       *ledger.Genesis
	members []*chaosMember
	net     *chaosNet
	pub     crypto.PrivKey
	pubID   peer.ID
	root    cid.Cid
	start   time.Time
	logs    *slog.Logger

	mu   sync.Mutex
	want map[peer.ID]uint64 // each server's receipt: what it should be paid
}

// Chaos runs the schedule and reports; an error is a harness failure
// (the committee never started), not a broken invariant.
func Chaos(ctx context.Context, cfg ChaosConfig) (*ChaosReport, error) {
	if cfg.Epoch == 0 {
		cfg.Epoch = 3 * time.Second
	}
	if cfg.Members == 0 {
		cfg.Members = 4
	}
	if cfg.Members < 4 || cfg.Members > 5 {
		return nil, fmt.Errorf("committee: chaos needs a committee of 4 or 5 (byzantine-safe finality), not %d", cfg.Members)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	base, err := os.MkdirTemp("", "ore-chaos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	ch := &chaos{cfg: cfg, net: &chaosNet{isolated: make(map[peer.ID]bool), links: make(map[[2]peer.ID]bool)},
		want: make(map[peer.ID]uint64), logs: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer ch.stopAll()
	var committee []ledger.Member
	for i := range cfg.Members {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		m := &chaosMember{idx: i, key: k, id: id, dir: fmt.Sprintf("%s/m%d", base, i)}
		if err := ch.newHost(m); err != nil {
			return nil, err
		}
		var addrs []string
		for _, a := range m.h.Addrs() {
			addrs = append(addrs, a.String())
		}
		committee = append(committee, ledger.Member{ID: id, Addrs: addrs})
		ch.members = append(ch.members, m)
	}
	ch.pub, _, _ = crypto.GenerateEd25519Key(nil)
	ch.pubID, _ = peer.IDFromPrivateKey(ch.pub)
	ch.g, err = ledger.NewGenesis("ore-chaos", time.Now().Add(-time.Hour).Truncate(time.Second), committee,
		map[peer.ID]uint64{ch.pubID: 1 << 50}, 1<<30)
	if err != nil {
		return nil, err
	}
	ch.g.EpochLength = cfg.Epoch
	// Rules 3 pay every receipt of the registered root, so "each receipt
	// paid at most once" is checked on every receipt the bench makes.
	ch.g.Rules = ledger.RulesV3
	for _, m := range ch.members {
		if err := ch.startMember(m); err != nil {
			return nil, err
		}
	}
	ch.connectAll()
	if err := ch.setup(ctx); err != nil {
		return nil, err
	}
	rep := &ChaosReport{Seed: cfg.Seed}
	ch.start = time.Now()
	wctx, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ch.stream(wctx)
	}()
	ch.schedule(ctx, rep)
	stopWork()
	wg.Wait()
	ch.healAll()
	ch.check(ctx, rep)
	rep.Seconds = time.Since(ch.start).Seconds()
	return rep, nil
}

func (ch *chaos) newHost(m *chaosMember) error {
	h, err := libp2p.New(libp2p.Identity(m.key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.ConnectionGater(&chaosGate{self: m.id, n: ch.net}))
	if err != nil {
		return fmt.Errorf("committee: chaos host: %w", err)
	}
	m.h = h
	return nil
}

func (ch *chaos) startMember(m *chaosMember) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		if err := ch.newHost(m); err != nil {
			return err
		}
	}
	psCtx, stop := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(psCtx, m.h, append(intake.GossipOptions(), pubsub.WithRPCLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		stop()
		return err
	}
	m.stopPS = stop
	m.pool = intake.NewPool()
	if m.in, err = intake.New(ps, ch.g.Params(), intake.WithPool(m.pool)); err != nil {
		return err
	}
	clock := func() time.Time { return time.Now().Add(time.Duration(m.skew.Load())) }
	m.c, err = New(context.Background(), Config{Genesis: ch.g, Host: m.h, Key: m.key, PubSub: ps, Pool: m.pool,
		Dir: m.dir, Logger: ch.logs, Clock: clock})
	return err
}

func (ch *chaos) stopMember(m *chaosMember) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		return
	}
	_ = m.c.Close()
	_ = m.in.Close()
	m.stopPS()
	_ = m.h.Close()
	m.c, m.h = nil, nil
}

func (ch *chaos) stopAll() {
	for _, m := range ch.members {
		ch.stopMember(m)
	}
}

func (ch *chaos) live(m *chaosMember) *Committee {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c
}

// connectAll dials every pair of running members not kept apart.
func (ch *chaos) connectAll() {
	hosts := make([]host.Host, len(ch.members))
	for i, m := range ch.members {
		m.mu.Lock()
		hosts[i] = m.h
		m.mu.Unlock()
	}
	for i, a := range hosts {
		for j, b := range hosts {
			if i != j && a != nil && b != nil && !ch.net.apart(a.ID(), b.ID()) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()})
				cancel()
			}
		}
	}
}

// cut closes the open connections the gaters now forbid.
func (ch *chaos) cut() {
	for range 20 {
		open := false
		for _, a := range ch.members {
			for _, b := range ch.members {
				a.mu.Lock()
				if a != b && a.h != nil && ch.net.apart(a.id, b.id) && len(a.h.Network().ConnsToPeer(b.id)) > 0 {
					open = true
					_ = a.h.Network().ClosePeer(b.id)
				}
				a.mu.Unlock()
			}
		}
		if !open {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setup deposits and registers the content the receipts pay for.
func (ch *chaos) setup(ctx context.Context) error {
	h, _ := mh.Sum([]byte(fmt.Sprint("chaos", ch.cfg.Seed)), mh.SHA2_256, -1)
	ch.root = cid.NewCidV1(cid.DagProtobuf, h)
	// Through the leader, once there is one: a member that knows no
	// leader yet keeps a transaction in its own pool, and gossip on a mesh
	// still forming may carry it nowhere.
	var c *Committee
	for wait := time.Now().Add(30 * time.Second); c == nil; {
		if l := ch.leader(); l != nil {
			c = ch.live(l)
		} else if time.Now().After(wait) {
			return errors.New("committee: chaos setup: no leader in 30 s")
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	for i, tx := range []ledger.Tx{ledger.NewDeposit(ch.pubID, 1, 1<<49), ledger.NewRegister(ch.pubID, 2, ch.root, 0)} {
		if err := tx.Sign(ch.g.Network, ch.pub); err != nil {
			return err
		}
		if err := c.Submit(ctx, tx); err != nil {
			return fmt.Errorf("committee: chaos setup, transaction %d: %w", i, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := c.State().Registration(ch.root); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("committee: chaos setup: the registration reached no final block in 60 s")
}

// stream publishes a receipt of a new (server, client) pair every 100 ms
// through a running member.
func (ch *chaos) stream(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	rng := rand.New(rand.NewPCG(ch.cfg.Seed, 1))
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := ch.members[rng.IntN(len(ch.members))]
		m.mu.Lock()
		in := m.in
		running := m.c != nil
		m.mu.Unlock()
		if !running {
			continue
		}
		sk, _, _ := crypto.GenerateEd25519Key(nil)
		ck, _, _ := crypto.GenerateEd25519Key(nil)
		srv, _ := peer.IDFromPrivateKey(sk)
		cli, _ := peer.IDFromPrivateKey(ck)
		r := &pod.Receipt{Version: pod.Version, Network: ch.g.Network, Epoch: ch.g.Params().EpochAt(time.Now()),
			Root: ch.root, Server: srv, Client: cli, Seq: 1, Bytes: (1 + seq%7) << 20, Blocks: 4}
		if r.SignClient(ck) != nil || r.SignServer(sk) != nil {
			continue
		}
		ch.mu.Lock()
		ch.want[srv] = r.Bytes // price 2^30 per GiB: one unit per byte
		ch.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = in.Publish(pctx, r)
		cancel()
	}
}

func (ch *chaos) excludedMember() *chaosMember {
	for _, m := range ch.members {
		if c := ch.live(m); c != nil {
			for _, o := range ch.members {
				if c.State().Excluded(o.id) {
					return o
				}
			}
		}
	}
	return nil
}

func (ch *chaos) leader() *chaosMember {
	for _, m := range ch.members {
		if c := ch.live(m); c != nil && c.Leader() {
			return m
		}
	}
	return nil
}

// schedule runs faults until the duration is over.
func (ch *chaos) schedule(ctx context.Context, rep *ChaosReport) {
	rng := rand.New(rand.NewPCG(ch.cfg.Seed, 2))
	faults := []string{"kill", "partition", "skew", "equivocate", "loss"}
	end := ch.start.Add(ch.cfg.Duration)
	for time.Now().Before(end) && ctx.Err() == nil {
		fault := faults[rng.IntN(len(faults))]
		target := ch.members[rng.IntN(len(ch.members))]
		other := ch.members[rng.IntN(len(ch.members))]
		d := time.Duration(2000+rng.IntN(4000)) * time.Millisecond
		gap := time.Duration(1000+rng.IntN(2000)) * time.Millisecond
		ahead := rng.IntN(2) == 0
		if x := ch.excludedMember(); x != nil {
			target = x // the three others are the only voters left
			if fault == "loss" || fault == "equivocate" {
				fault = "partition"
			}
		}
		if fault == "equivocate" {
			if l := ch.leader(); l != nil {
				target = l
			}
		}
		if fault == "loss" && other == target {
			other = ch.members[(target.idx+1)%len(ch.members)]
		}
		ev := ChaosEvent{At: time.Since(ch.start).Seconds(), Fault: fault, Member: target.idx, For: d.Seconds()}
		if fault == "loss" {
			ev.Other = other.idx
		}
		rep.Events = append(rep.Events, ev)
		ch.cfg.Logf("%6.1fs  %-10s member %d for %.1fs", ev.At, fault, target.idx, ev.For)
		undo := ch.inject(fault, target, other, ahead)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		undo()
		select {
		case <-ctx.Done():
		case <-time.After(gap):
		}
	}
}

// inject starts a fault and returns what ends it.
func (ch *chaos) inject(fault string, m, other *chaosMember, ahead bool) func() {
	switch fault {
	case "kill":
		ch.stopMember(m)
		return func() {
			if err := ch.startMember(m); err != nil {
				ch.cfg.Logf("restart member %d: %v", m.idx, err)
			}
			ch.connectAll()
		}
	case "partition":
		ch.net.mu.Lock()
		ch.net.isolated[m.id] = true
		ch.net.mu.Unlock()
		ch.cut()
		return func() {
			ch.net.mu.Lock()
			delete(ch.net.isolated, m.id)
			ch.net.mu.Unlock()
			ch.connectAll()
		}
	case "skew":
		s := time.Hour
		if !ahead {
			s = -s
		}
		m.skew.Store(int64(s))
		return func() { m.skew.Store(0) }
	case "loss":
		k := linkKey(m.id, other.id)
		ch.net.mu.Lock()
		ch.net.links[k] = true
		ch.net.mu.Unlock()
		ch.cut()
		return func() {
			ch.net.mu.Lock()
			delete(ch.net.links, k)
			ch.net.mu.Unlock()
			ch.connectAll()
		}
	case "equivocate":
		c := ch.live(m)
		if c == nil {
			return func() {}
		}
		c.setEquivocate(func(round uint32, x *ledger.Block, parent *ledger.State) {
			for i, o := range ch.members {
				oc := ch.live(o)
				if o == m || oc == nil || i == (m.idx+1)%len(ch.members) {
					continue // that one gets x from the log
				}
				y, next, _, err := ledger.Build(parent, x.Header.Epoch, m.id, x.Header.Time+int64(i+1), x.Txs)
				if err != nil {
					continue
				}
				oc.onProposal(round, y, nil, next, nil)
				for _, step := range []ledger.VoteType{ledger.Prevote, ledger.Precommit} {
					if sig, err := ledger.SignVote(m.key, step, y.Header.Height, round, y.Hash()); err == nil {
						oc.onVote(&voteMsg{typ: step, height: y.Header.Height, round: round, hash: y.Hash(), signer: m.id, sig: sig})
					}
				}
			}
		})
		return func() {
			if c := ch.live(m); c != nil {
				c.setEquivocate(nil)
			}
		}
	}
	return func() {}
}

// setEquivocate sets the harness that makes this member equivocate
// (tests and the chaos bench).
func (c *Committee) setEquivocate(f func(round uint32, b *ledger.Block, parent *ledger.State)) {
	c.bft.mu.Lock()
	c.testEquivocate = f
	c.bft.mu.Unlock()
}

// healAll ends every fault: members back, links up, clocks right.
func (ch *chaos) healAll() {
	ch.net.mu.Lock()
	clear(ch.net.isolated)
	clear(ch.net.links)
	ch.net.mu.Unlock()
	for _, m := range ch.members {
		m.skew.Store(0)
		if c := ch.live(m); c != nil {
			c.setEquivocate(nil)
		} else if err := ch.startMember(m); err != nil {
			ch.cfg.Logf("restart member %d: %v", m.idx, err)
		}
	}
	ch.connectAll()
}

// check waits for the members to converge (at most a minute), then
// checks the invariants.
func (ch *chaos) check(ctx context.Context, rep *ChaosReport) {
	converged := func() bool {
		var h uint64
		var hash [32]byte
		for i, m := range ch.members {
			c := ch.live(m)
			if c == nil {
				return false
			}
			s := c.State()
			if i == 0 {
				h, hash = s.Height(), s.Hash()
			} else if s.Height() != h || s.Hash() != hash {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(time.Minute)
	stable := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if converged() {
			if stable++; stable >= 10 { // a second at one height and hash
				break
			}
		} else {
			stable = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	add := func(name string, held bool, format string, args ...any) {
		rep.Invariants = append(rep.Invariants, ChaosInvariant{Name: name, Held: held, Detail: fmt.Sprintf(format, args...)})
	}
	var chains [][]*ledger.Block
	var states []*ledger.State
	for _, m := range ch.members {
		c := ch.live(m)
		if c == nil {
			continue
		}
		blocks, err := c.Blocks(1)
		if err != nil {
			add("one history", false, "member %d: %v", m.idx, err)
			continue
		}
		chains = append(chains, blocks)
		states = append(states, c.State())
		rep.RoundTimeouts += testutil.ToFloat64(c.metrics.rounds)
		rep.Equivocations += testutil.ToFloat64(c.metrics.equivocations)
	}
	// One history: the chains agree on every height they share, and each
	// verifies from genesis.
	forks, bad := 0, ""
	low := -1
	for _, b := range chains {
		if low < 0 || len(b) < low {
			low = len(b)
		}
	}
	for h := 0; h < low; h++ {
		for _, c := range chains[1:] {
			if c[h].Hash() != chains[0][h].Hash() {
				forks++
			}
		}
	}
	var final *ledger.State
	for i, c := range chains {
		s, err := ledger.Verify(ch.g, c)
		if err != nil {
			bad = fmt.Sprintf("member %d's chain: %v", i, err)
			continue
		}
		final = s
	}
	add("one history", forks == 0 && bad == "" && len(chains) == len(ch.members),
		"%d chains, %d heights in common, %d blocks that differ%s", len(chains), max(low, 0), forks, map[bool]string{true: "", false: "; " + bad}[bad == ""])
	same := len(states) == len(ch.members)
	for _, s := range states[1:] {
		same = same && s.Hash() == states[0].Hash() && s.Height() == states[0].Height()
	}
	if len(states) > 0 {
		rep.Height = states[0].Height()
	}
	add("one state hash", same, "%d members at height %d", len(states), rep.Height)
	if final == nil && len(states) > 0 {
		final = states[0]
	}
	ch.mu.Lock()
	over := 0
	for srv, want := range ch.want {
		if final == nil {
			break
		}
		got := final.Balance(srv)
		if got > want {
			over++
		}
		if got == want {
			rep.Paid++
		}
	}
	rep.Receipts = len(ch.want)
	ch.mu.Unlock()
	add("each receipt paid at most once", over == 0 && final != nil, "%d of %d receipts paid in full, %d paid more than their bytes", rep.Paid, rep.Receipts, over)
	var total uint64
	future := 0
	if final != nil {
		for _, a := range final.Accounts() {
			total += final.Balance(a) + final.Escrow(a)
		}
		rep.Excluded = nil
		for _, m := range ch.members {
			if final.Excluded(m.id) {
				rep.Excluded = append(rep.Excluded, fmt.Sprint(m.idx))
			}
		}
	}
	add("supply conserved", final != nil && total == final.Supply(), "balances and escrows sum to %d, supply %d", total, ch.g.Supply())
	now := ch.g.Params().EpochAt(time.Now())
	if len(chains) > 0 {
		for _, b := range chains[0] {
			if b.Header.Epoch > now+maxEpochLead {
				future++
			}
		}
	}
	add("no block from the future", future == 0, "%d final blocks more than %d epoch ahead of the clock", future, maxEpochLead)
	rep.AllHeld = true
	for _, inv := range rep.Invariants {
		rep.AllHeld = rep.AllHeld && inv.Held
	}
}
