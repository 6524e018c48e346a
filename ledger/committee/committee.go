package committee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/ledger/raftp2p"
	"github.com/orecdn/ore/pod"
)

// Timing. Elections take a few heartbeats: with these a new leader is in
// place well within 3 s of the old one's death on loopback or a LAN.
const (
	heartbeatTimeout = 500 * time.Millisecond
	electionTimeout  = 500 * time.Millisecond
	leaderLease      = 250 * time.Millisecond
	applyTimeout     = 10 * time.Second
	// closeDelay lets the last receipts of an epoch arrive before the
	// leader closes it. If some of them still arrive then (any in the
	// last quietFor), the leader waits on while they do, at most a
	// quarter epoch more (see settle): a receipt that misses its epoch's
	// block waits a whole epoch for the next one.
	closeDelay = 300 * time.Millisecond
	quietFor   = 100 * time.Millisecond
	// logCache is how many recent Raft entries (blocks) stay in memory.
	logCache = 16
)

// The Raft log's size on disk. An entry is a whole block, ~12 MB at
// 20,000 receipts/s in 2 s epochs, so a snapshot every 1,024 entries with
// Raft's default of 10,240 kept behind it (this package's settings before)
// kept up to ~11,000 blocks, ~130 GB.
// Here a snapshot (the height of the stored chain, see fsm) comes every
// snapshotEvery entries and trailingLogs stay behind it, for a member
// that falls behind; one further behind installs the snapshot and
// fetches the blocks it lacks from the members' chains (fsm.Restore).
// At most about (snapshotEvery + trailingLogs) blocks stay in the log.
// Variables, for tests.
var (
	snapshotEvery    uint64 = 64
	trailingLogs     uint64 = 64
	snapshotInterval        = 10 * time.Second // how often Raft checks snapshotEvery
)

// Config is what a coordinator needs.
type Config struct {
	Genesis  *ledger.Genesis
	Host     host.Host
	Key      crypto.PrivKey
	PubSub   *pubsub.PubSub // made with intake.GossipOptions (message IDs, peer scoring)
	Pool     *intake.Pool   // receipts gossiped to this member
	Dir      string         // Raft log, snapshots and the chain
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Clock    func() time.Time // default time.Now
	Schedule *Scheduler       // heat scheduling by the leader (nil: none)
}

// Committee is one coordinator.
type Committee struct {
	cfg   Config
	self  peer.ID
	log   *slog.Logger
	fsm   *fsm
	chain *chain
	raft  *raft.Raft
	store raftStore
	trans *raftp2p.Transport

	blocks *pubsub.Topic
	txs    *pubsub.Topic
	subs   []*pubsub.Subscription

	mu      sync.Mutex
	pending map[uint64][]ledger.Signature // signatures for blocks not applied yet
	final   chan uint64                   // heights that became final (buffered, lossy)
	txpool  txPool
	targets targets
	// validating says the topic validators are registered on the PubSub.
	validating bool

	metrics struct {
		blocks, finals, rejected, orders prometheus.Counter
		equivocations, rounds            prometheus.Counter
		refused, gossip                  *prometheus.CounterVec
		epoch                            epochMetrics
		sync                             syncMetrics
	}
	syncLimit *syncLimiter // per-peer limits of chain sync
	schedOnce sync.Once    // the warning that a chain's rules cannot order replicas
	// finalOrders are the heights of final blocks this member proposed,
	// for ordersLoop to publish their orders.
	finalOrders chan uint64

	// Under ledger.FinalityBFT (nil otherwise): the consensus on the next
	// height and the guard over what this member signed (bft.go).
	bft     *bft
	guard   *guard
	accused map[peer.ID]bool // members this one submitted evidence against (mu)
	// testEquivocate, set by tests only, runs as this member proposes: a
	// harness that makes the leader sign and show other blocks too.
	testEquivocate func(round uint32, b *ledger.Block, parent *ledger.State)
	// testHoldVote, set by tests only, takes the votes it returns true
	// for out of the way before this member counts them (a network that
	// delays them; the test delivers them later through onVote).
	testHoldVote func(v *voteMsg) bool

	ctx    context.Context // the coordinator's lifetime: Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a coordinator. Every member of the genesis committee runs one;
// the first start of each bootstraps the same Raft configuration.
func New(ctx context.Context, cfg Config) (*Committee, error) {
	if cfg.Genesis == nil || cfg.Host == nil || cfg.Key == nil || cfg.PubSub == nil || cfg.Pool == nil || cfg.Dir == "" {
		return nil, errors.New("committee: Genesis, Host, Key, PubSub, Pool and Dir are required")
	}
	if !cfg.Genesis.IsMember(cfg.Host.ID()) {
		return nil, fmt.Errorf("committee: %s is not in the genesis committee", cfg.Host.ID())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("committee: %w", err)
	}
	c := &Committee{cfg: cfg, self: cfg.Host.ID(), log: cfg.Logger.With("part", "committee"),
		pending: make(map[uint64][]ledger.Signature), final: make(chan uint64, 64), txpool: newTxPool(),
		finalOrders: make(chan uint64, 64),
		syncLimit:   newSyncLimiter(cfg.Clock)}
	c.initMetrics()
	// Before Raft starts: the FSM may apply (and gossip) a block at once.
	c.ctx, c.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	var err error
	if c.chain, err = openChain(cfg.Dir); err != nil {
		return nil, err
	}
	state, err := c.chain.replay(cfg.Genesis)
	if err != nil {
		return nil, err
	}
	if cfg.Genesis.FinalityRule() == ledger.FinalityBFT {
		if c.guard, err = openGuard(cfg.Dir, cfg.Key); err != nil {
			return nil, err
		}
		c.bft = newBFT(state.Height()+1, c.guard.state(), cfg.Clock())
	}
	c.fsm = &fsm{g: cfg.Genesis, chain: c.chain, state: state, applied: c.signApplied, committee: c,
		signable: func(h *ledger.Header, parent uint64) error {
			return checkEpoch(h.Epoch, parent, cfg.Genesis.Params().EpochAt(cfg.Clock()))
		},
		catchUp: func(base *ledger.State) (*ledger.State, []*ledger.Block, error) {
			ctx, cancel := context.WithTimeout(c.ctx, syncTimeout)
			defer cancel()
			return SyncFrom(ctx, cfg.Host, cfg.Genesis, base)
		}}

	for _, m := range cfg.Genesis.Committee {
		if ai, err := m.AddrInfo(); err == nil && ai.ID != c.self {
			cfg.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		}
	}
	if err := c.registerValidators(); err != nil {
		return nil, err
	}
	if c.blocks, err = cfg.PubSub.Join(BlocksTopic); err != nil {
		return nil, fmt.Errorf("committee: join %s: %w", BlocksTopic, err)
	}
	if c.txs, err = cfg.PubSub.Join(TxsTopic); err != nil {
		return nil, fmt.Errorf("committee: join %s: %w", TxsTopic, err)
	}
	for _, t := range []*pubsub.Topic{c.blocks, c.txs} {
		if err := intake.ScoreTopic(t); err != nil {
			return nil, fmt.Errorf("committee: %w", err)
		}
	}
	if err := c.startRaft(); err != nil {
		return nil, err
	}
	cfg.Host.SetStreamHandler(ChainProtocol, c.serveChain)
	cfg.Host.SetStreamHandler(SubmitProtocol, c.serveSubmit)
	rctx := c.ctx
	for _, t := range []*pubsub.Topic{c.blocks, c.txs} {
		sub, err := t.Subscribe(pubsub.WithBufferSize(4096))
		if err != nil {
			return nil, fmt.Errorf("committee: subscribe: %w", err)
		}
		c.subs = append(c.subs, sub)
	}
	if c.bftMode() {
		c.wg.Add(1)
		go c.bftLoop(rctx)
	}
	c.wg.Add(5)
	go c.readSigs(rctx, c.subs[0])
	go c.readTxs(rctx, c.subs[1])
	go c.leaderLoop(rctx)
	go c.repairLoop(rctx)
	go c.ordersLoop(rctx)
	ok = true
	c.log.Info("coordinator started", "height", state.Height())
	return c, nil
}

func (c *Committee) startRaft() error {
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(c.self.String())
	conf.HeartbeatTimeout = heartbeatTimeout
	conf.ElectionTimeout = electionTimeout
	conf.LeaderLeaseTimeout = leaderLease
	conf.LogOutput = io.Discard
	conf.SnapshotThreshold = snapshotEvery
	conf.TrailingLogs = trailingLogs
	conf.SnapshotInterval = snapshotInterval
	var err error
	if c.store, err = openRaftStore(c.cfg.Dir); err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(c.cfg.Dir, 2, io.Discard)
	if err != nil {
		return fmt.Errorf("committee: raft snapshots: %w", err)
	}
	c.trans = raftp2p.NewTransport(c.cfg.Host, raftp2p.WithAllow(c.raftAllowed), raftp2p.WithLogger(c.log))
	exists, err := raft.HasExistingState(c.store, c.store, snaps)
	if err != nil {
		return fmt.Errorf("committee: raft state: %w", err)
	}
	// Raft reads the entry before the ones it sends to a follower, and the
	// entries themselves, from the log store; an entry is a whole block
	// (megabytes at thousands of receipts), so the recent ones stay in
	// memory rather than being decoded from bolt on every append.
	logs, err := raft.NewLogCache(logCache, preparingStore{c.store, c.fsm.prepare})
	if err != nil {
		return fmt.Errorf("committee: raft log cache: %w", err)
	}
	if c.raft, err = raft.NewRaft(conf, c.fsm, logs, c.store, snaps, c.trans); err != nil {
		return fmt.Errorf("committee: start raft: %w", err)
	}
	if !exists {
		var servers []raft.Server
		for _, m := range c.cfg.Genesis.Committee {
			id := raft.ServerID(m.ID.String())
			servers = append(servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
		}
		if err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("committee: bootstrap raft: %w", err)
		}
	}
	return nil
}

func (c *Committee) initMetrics() {
	c.metrics.blocks = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_ledger_blocks_applied_total", Help: "Blocks this coordinator applied."})
	c.metrics.finals = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_ledger_blocks_final_total", Help: "Blocks that gathered a committee majority."})
	c.metrics.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_ledger_blocks_rejected_total", Help: "Proposed blocks the state machine refused."})
	c.metrics.equivocations = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_ledger_equivocations_total", Help: "Pairs of votes by one member for two blocks at one height, round and step that this coordinator saw."})
	c.metrics.rounds = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_ledger_round_timeouts_total", Help: "Rounds that ended on this coordinator without a final block (FinalityBFT): each asks for another leader."})
	c.metrics.orders = prometheus.NewCounter(prometheus.CounterOpts{Name: "ore_sched_orders_issued_total", Help: "Replication orders this coordinator issued as leader."})
	c.metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_ledger_txs_refused_total", Help: "Transactions the leader left out of a block, by reason."}, []string{"reason"})
	c.metrics.epoch = newEpochMetrics()
	c.metrics.gossip = newGossipRefused()
	c.metrics.sync = newSyncMetrics()
	size := func(f func() int) func() float64 {
		return func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(f())
		}
	}
	tables := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_ledger_txpool",
			Help: fmt.Sprintf("Account transactions waiting for a block (at most %d).", maxTxPool)},
			size(func() int { return len(c.txpool.txs) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ore_ledger_early_signature_heights",
			Help: fmt.Sprintf("Heights above the chain with signatures waiting for their block (at most %d).", maxEarlyHeights)},
			size(func() int { return len(c.pending) })),
	}
	if c.cfg.Registry != nil {
		for _, m := range append(append([]prometheus.Collector{c.metrics.blocks, c.metrics.finals, c.metrics.rejected, c.metrics.equivocations, c.metrics.rounds, c.metrics.refused, c.metrics.orders, c.metrics.gossip,
			c.metrics.sync.served, c.metrics.sync.limited}, c.metrics.epoch.collectors()...), tables...) {
			_ = c.cfg.Registry.Register(m)
		}
	}
}

// State is the ledger state after the last block this member applied.
func (c *Committee) State() *ledger.State { return c.fsm.current() }

// Block returns a stored block with the signatures gathered so far.
func (c *Committee) Block(height uint64) (*ledger.Block, bool) {
	b, err := c.chain.get(height)
	if err != nil {
		return nil, false
	}
	return b, true
}

// Head returns a stored block's header with the signatures gathered so
// far, without its transactions: the cheap way to watch for finality.
func (c *Committee) Head(height uint64) (*ledger.Block, bool) {
	b, err := c.chain.head(height)
	if err != nil {
		return nil, false
	}
	return b, true
}

// Blocks returns the stored blocks from height from on, in order.
func (c *Committee) Blocks(from uint64) ([]*ledger.Block, error) {
	if from == 0 {
		from = 1
	}
	var out []*ledger.Block
	for h := from; h <= c.chain.height(); h++ {
		b, err := c.chain.get(h)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Leader reports whether this member leads the committee now.
func (c *Committee) Leader() bool { return c.raft.State() == raft.Leader }

// LeaderID is the current leader as this member knows it ("" if none).
func (c *Committee) LeaderID() peer.ID {
	_, id := c.raft.LeaderWithID()
	p, _ := peer.Decode(string(id))
	return p
}

// Finalized is signalled with each height that becomes final on this
// member. It is lossy when nobody reads: use it to wake up, then ask Block.
func (c *Committee) Finalized() <-chan uint64 { return c.final }

// Close stops the coordinator; its disk keeps the chain and the Raft log.
func (c *Committee) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	for _, s := range c.subs {
		s.Cancel()
	}
	var errs []error
	if c.raft != nil {
		errs = append(errs, c.raft.Shutdown().Error())
	}
	c.wg.Wait()
	if c.trans != nil {
		errs = append(errs, c.trans.Close())
	}
	c.cfg.Host.RemoveStreamHandler(ChainProtocol)
	c.cfg.Host.RemoveStreamHandler(SubmitProtocol)
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	for _, t := range []*pubsub.Topic{c.blocks, c.txs} {
		if t != nil {
			_ = t.Close()
		}
	}
	c.unregisterValidators()
	if c.chain != nil {
		errs = append(errs, c.chain.close())
	}
	return errors.Join(errs...)
}

// leaderLoop closes each epoch shortly after it ends, when this member leads.
func (c *Committee) leaderLoop(ctx context.Context) {
	defer c.wg.Done()
	params := c.cfg.Genesis.Params()
	closing := params.EpochAt(c.cfg.Clock()) // the epoch whose end the loop waits for
	for {
		now := c.cfg.Clock()
		next := closeAt(params, closing, now).Add(-quietFor) // settle's first look
		select {
		case <-ctx.Done():
			return
		case <-time.After(next.Sub(now)):
		}
		closed := params.EpochAt(c.cfg.Clock()) - 1
		closing = closed + 1
		// No later block may take receipts more than MaxSkew epochs
		// before the chain's last: every member forgets them, whether or
		// not it leads. The chain, not this member's clock, says which:
		// a fast clock would drop receipts a correct leader still pays.
		c.cfg.Pool.Forget(forgetBefore(c.fsm.current().Epoch(), closed, params.MaxSkew))
		if c.raft.State() != raft.Leader {
			continue
		}
		end := params.GenesisTime.Add(time.Duration(closed+1) * params.EpochLength)
		if waited := c.settle(ctx, closed, quietFor, end.Add(closeDelay+params.EpochLength/4)); waited > quietFor {
			c.log.Debug("receipts of the epoch still arrived: closed it later", "epoch", closed, "after_end", c.cfg.Clock().Sub(end))
		}
		if err := c.schedule(ctx, closed+1); err != nil && ctx.Err() == nil {
			c.log.Warn("scheduling replicas failed", "epoch", closed+1, "err", err)
		}
		for {
			full, err := c.propose(closed)
			if err != nil && ctx.Err() == nil {
				c.log.Warn("closing epoch failed", "epoch", closed, "err", err)
			}
			if !full || err != nil || c.raft.State() != raft.Leader {
				break
			}
		}
	}
}

// settle returns once a window of quiet saw no receipt of epoch enter
// the pool, or at deadline, and reports how long it waited. A window in
// which nothing at all arrived, right after one in which receipts of
// epoch did, does not count as quiet: the intake paused (a collection, a
// block's early apply ahead of it, see intake.Prioritize), and what it
// held back is likely of epoch too. The leader calls settle quietFor
// before closeDelay has passed, so with no late receipts it closes at
// closeDelay.
func (c *Committee) settle(ctx context.Context, epoch uint64, quiet time.Duration, deadline time.Time) time.Duration {
	start := c.cfg.Clock()
	pool := c.cfg.Pool
	seen, seenNext := pool.Added(epoch), pool.Added(epoch+1)
	arriving := false // the last window saw receipts of epoch
	for {
		wait := min(quiet, deadline.Sub(c.cfg.Clock()))
		if wait <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return c.cfg.Clock().Sub(start)
		case <-time.After(wait):
		}
		n, next := pool.Added(epoch), pool.Added(epoch+1)
		paused := n == seen && next == seenNext && arriving
		if n == seen && !paused {
			break
		}
		arriving = n != seen
		seen, seenNext = n, next
	}
	return c.cfg.Clock().Sub(start)
}

// closeAt is when the leader closes epoch closing: closeDelay after its
// end. closing is the epoch after the last one closed, so when closing an
// epoch took longer than the next one lasted, that one ended already and
// is closed at once, not an epoch later together with the one after it
// (a block of twice the size, which takes longer still).
func closeAt(p pod.Params, closing uint64, now time.Time) time.Time {
	if cur := p.EpochAt(now); closing > cur {
		closing = cur // the clock went back
	}
	return p.GenesisTime.Add(time.Duration(closing+1) * p.EpochLength).Add(closeDelay)
}

// propose builds the block that closes epoch and applies it through Raft.
// It reports whether the block was full: what did not fit waits in the
// pools for the next block, which the caller proposes at once.
func (c *Committee) propose(epoch uint64) (full bool, err error) {
	if c.bftMode() {
		return c.proposeBFT(c.ctx, epoch)
	}
	// Apply everything committed before building on the state.
	if err := c.raft.Barrier(applyTimeout).Error(); err != nil {
		return false, fmt.Errorf("barrier: %w", err)
	}
	s := c.fsm.current()
	bl, full, requeue, err := c.buildBlock(s, epoch, nil)
	if err != nil || bl == nil {
		return false, err
	}
	b := bl.block
	c.fsm.proposed(bl)
	f := c.raft.Apply(bl.data, applyTimeout)
	if err := f.Error(); err != nil {
		requeue()
		return false, fmt.Errorf("raft apply: %w", err)
	}
	if res, ok := f.Response().(applyResult); ok && res.err != nil {
		c.metrics.rejected.Inc()
		requeue()
		return false, fmt.Errorf("the state machine refused block %d: %w", b.Header.Height, res.err)
	}
	// Applying the block took its receipts out of every member's pool.
	c.log.Info("block committed", "height", b.Header.Height, "epoch", b.Header.Epoch, "txs", len(b.Txs), "full", full)
	return full, nil
}

// buildBlock builds the block that closes epoch on state s (nil: nothing
// to propose), leaving out the pooled receipts in taken (those of the
// block s follows from while that one is not final yet: a pipelined
// proposal, see proposeBFT). requeue puts its account transactions back
// in the pool, should it not be final.
func (c *Committee) buildBlock(s *ledger.State, epoch uint64, taken map[*pod.Receipt]struct{}) (bl *built, full bool, requeue func(), err error) {
	params := c.cfg.Genesis.Params()
	if epoch < s.Epoch() {
		epoch = s.Epoch()
	}
	// The members sign no block far ahead of their clocks, this leader
	// included: a chain already there (a leader with a fast clock wrote
	// it) waits for the clocks to catch up.
	if err := checkEpoch(epoch, s.Epoch(), params.EpochAt(c.cfg.Clock())); err != nil {
		if c.bftMode() && errors.Is(err, ErrFutureEpoch) {
			// This leader's clock is behind the committee's chain: another
			// member leads while it is (see bft.go).
			c.log.Warn("this leader's clock is behind the chain: handing the lead over", "chain_epoch", s.Epoch())
			if terr := c.raft.LeadershipTransfer().Error(); terr != nil {
				c.log.Debug("leadership transfer", "err", terr)
			}
		}
		return nil, false, nil, fmt.Errorf("the chain is at epoch %d: %w", s.Epoch(), err)
	}
	// The block's path (build, log, commit; the followers' apply, see
	// fsm.prepare) goes before this process's checks of gossiped
	// receipts, which wait for their epoch's end anyway.
	defer intake.Prioritize()()
	// Account transactions first: they are few, and a full block must not
	// push a deposit behind thousands of receipts.
	accountTxs := c.takeTxs()
	receipts := c.cfg.Pool.Pending(epoch)
	txs := make([]ledger.Tx, 0, len(accountTxs)+len(receipts)+1)
	if bt, ok := c.beacon(s, epoch); ok { // RulesV5: first, to open the round
		txs = append(txs, bt)
	}
	txs = append(txs, accountTxs...)
	for _, r := range receipts {
		// Too old for this block, but not dropped here: should this block
		// not commit (this leader's clock runs ahead, and it loses the
		// lead), a block of an earlier epoch may still pay it. Forget
		// drops it once the chain's epoch leaves no block that can.
		if r.Epoch+params.MaxSkew < epoch {
			continue
		}
		if _, ok := taken[r]; ok {
			continue
		}
		txs = append(txs, ledger.NewReceiptTx(r))
	}
	if len(txs) == 0 {
		return nil, false, nil, nil
	}
	b, next, rejected, err := ledger.Build(s, epoch, c.self, c.cfg.Clock().UnixNano(), txs)
	if err != nil {
		c.requeue(accountTxs)
		return nil, false, nil, fmt.Errorf("build: %w", err)
	}
	var invalid []*pod.Receipt // refused for good: out of the pool
	var later []ledger.Tx      // account transactions that did not fit
	for _, r := range rejected {
		t := txs[r.Index]
		if r.Reason == ledger.ReasonBlockFull {
			full = true
			if t.Kind != ledger.KindReceipt {
				later = append(later, t)
			}
			continue
		}
		// A job receipt signed in an epoch this block's has not reached
		// (the runner's clock a little ahead of the leader's) is not
		// refused for good: the next block takes it.
		if r.Reason == ledger.ReasonEpochOutOfRange && t.Kind == ledger.KindJob && t.Job != nil && t.Job.Epoch > epoch && t.Job.Epoch <= epoch+params.MaxSkew {
			later = append(later, t)
			continue
		}
		c.metrics.refused.WithLabelValues(string(r.Reason)).Inc()
		c.log.Debug("transaction left out", "reason", r.Reason, "err", r.Err)
		// A receipt under a ticket no block holds yet stays in the pool:
		// the ticket travels on its own and may be in the next block. The
		// pool forgets it with its epoch.
		if t.Kind == ledger.KindReceipt && r.Reason != ledger.ReasonUnknownTicket {
			invalid = append(invalid, t.Receipt)
		}
	}
	c.cfg.Pool.Done(invalid)
	c.requeue(later)
	if len(b.Txs) == 0 {
		return nil, false, nil, nil
	}
	var included []ledger.Tx // account transactions in the block
	for i := range b.Txs {
		if b.Txs[i].Kind != ledger.KindReceipt {
			included = append(included, b.Txs[i])
		}
	}
	if len(rejected) > 0 {
		c.log.Debug("transactions left out of the block", "height", b.Header.Height, "left_out", len(rejected))
	}
	return &built{data: b.Marshal(), block: b, parent: s, state: next}, full, func() { c.requeue(included) }, nil
}
