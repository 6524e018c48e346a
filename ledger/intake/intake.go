package intake

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/pod"
)

// ReceiptsTopic is the gossip topic of countersigned receipts.
const ReceiptsTopic = "/ore/receipts/1"

// GossipOptions are the gossipsub options every ore peer creates its
// PubSub with. A message's ID is the hash of its bytes (MessageID), and
// messages carry no author, sequence number or signature: every ore
// payload (receipts, transactions, block signatures, heat reports, orders)
// is signed by its own author and checked by its topic's validator, so a
// pubsub signature would only cost one more Ed25519 signature and a
// SHA-512 over the whole message at every peer, for nothing a validator
// uses. Peers with other options do not exchange messages with these.
// Peer scoring is on: a message a validator rejects costs the peer that
// sent it score (see score.go; ScoreTopic for topics other than receipts).
func GossipOptions() []pubsub.Option {
	return []pubsub.Option{pubsub.WithMessageIdFn(MessageID), pubsub.WithNoAuthor(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), peerScore()}
}

// MessageID makes a message's ID the hash of its bytes, so the same receipt
// published by several peers (or twice) travels once (see GossipOptions).
func MessageID(m *pb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:])
}

// Intake validates, publishes and (with a pool) collects receipts.
type Intake struct {
	params pod.Params
	now    func() time.Time
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	pool   *Pool
	out    chan outgoing // receipts waiting for the sender

	rejected *prometheus.CounterVec
	accepted prometheus.Counter

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type config struct {
	pool *Pool
	reg  prometheus.Registerer
	now  func() time.Time
}

// Option configures an Intake.
type Option func(*config)

// WithPool subscribes to the topic and keeps every valid receipt in p
// (coordinators). Without it the intake only validates and publishes.
func WithPool(p *Pool) Option { return func(c *config) { c.pool = p } }

// WithRegistry registers the intake's metrics.
func WithRegistry(r prometheus.Registerer) Option { return func(c *config) { c.reg = r } }

// WithClock sets the clock epochs are read from (tests).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// New joins the receipts topic of ps with the receipt rules as its validator.
func New(ps *pubsub.PubSub, params pod.Params, opts ...Option) (*Intake, error) {
	cfg := config{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	in := &Intake{params: params, now: cfg.now, pool: cfg.pool, out: make(chan outgoing, 1024),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ore_intake_receipts_rejected_total", Help: "Gossiped receipts dropped by the validator, by rule."}, []string{"reason"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ore_intake_receipts_accepted_total", Help: "Gossiped receipts that passed the validator."}),
	}
	for _, r := range pod.Reasons {
		in.rejected.WithLabelValues(string(r))
	}
	if cfg.reg != nil {
		for _, c := range []prometheus.Collector{in.rejected, in.accepted} {
			if err := cfg.reg.Register(c); err != nil {
				return nil, fmt.Errorf("intake: register metrics: %w", err)
			}
		}
	}
	if err := ps.RegisterTopicValidator(ReceiptsTopic, in.validate, pubsub.WithValidatorConcurrency(1024)); err != nil {
		return nil, fmt.Errorf("intake: validator: %w", err)
	}
	t, err := ps.Join(ReceiptsTopic)
	if err != nil {
		_ = ps.UnregisterTopicValidator(ReceiptsTopic)
		return nil, fmt.Errorf("intake: join %s: %w", ReceiptsTopic, err)
	}
	in.topic = t
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.wg.Add(1)
	go in.send(ctx)
	if in.pool != nil {
		// A slow reader loses messages in pubsub: the pool keeps up with
		// bursts through a deep buffer.
		if in.sub, err = t.Subscribe(pubsub.WithBufferSize(1 << 16)); err != nil {
			in.Close()
			return nil, fmt.Errorf("intake: subscribe: %w", err)
		}
		in.wg.Add(1)
		go in.collect(ctx)
	}
	return in, nil
}

// Publish gossips a countersigned receipt: it checks r against the
// receipt rules (an invalid receipt is refused here, not by the peers) and
// returns once the message that carries it is published. Receipts
// published concurrently travel together, up to MaxBatch a message.
func (in *Intake) Publish(ctx context.Context, r *pod.Receipt) error {
	return in.PublishBatch(ctx, []*pod.Receipt{r})
}

// PublishBatch gossips many receipts, MaxBatch to a message. Receipts that
// break the rules are left out and named in the error; the others are
// published all the same.
func (in *Intake) PublishBatch(ctx context.Context, rs []*pod.Receipt) error {
	good, bad := in.check(rs)
	var errs []error
	for i, err := range bad {
		if err != nil {
			errs = append(errs, fmt.Errorf("intake: receipt %d (%s): %w", i, pod.ReasonOf(err), err))
		}
	}
	var dones []chan error
	for len(good) > 0 {
		n := min(len(good), MaxBatch)
		o := outgoing{rs: good[:n], done: make(chan error, 1)}
		good = good[n:]
		select {
		case in.out <- o:
			dones = append(dones, o.done)
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	for _, done := range dones {
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("intake: publish: %w", err))
			}
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

type outgoing struct {
	rs   []*pod.Receipt
	done chan error
}

// send publishes what waits in in.out: the first receipts that come, and
// with them every one queued meanwhile (group commit), MaxBatch a message.
func (in *Intake) send(ctx context.Context) {
	defer in.wg.Done()
	var held *outgoing // did not fit in the last message
	for {
		var batch []outgoing
		n := 0
		if held != nil {
			batch, n, held = append(batch, *held), len(held.rs), nil
		} else {
			select {
			case o := <-in.out:
				batch, n = append(batch, o), len(o.rs)
			case <-ctx.Done():
				return
			}
		}
	fill:
		for n < MaxBatch {
			select {
			case o := <-in.out:
				if n+len(o.rs) > MaxBatch {
					held = &o
					break fill
				}
				batch, n = append(batch, o), n+len(o.rs)
			default:
				break fill
			}
		}
		rs := make([]*pod.Receipt, 0, n)
		for _, o := range batch {
			rs = append(rs, o.rs...)
		}
		err := in.publish(ctx, encodeBatch(rs))
		for _, o := range batch {
			o.done <- err
		}
	}
}

// peerWait bounds how long a message waits for a peer to send it to.
const peerWait = 5 * time.Second

// publish sends data once gossipsub knows a peer of the topic, or after
// peerWait in any case: a box that just started, or just reconnected,
// knows none for a moment, and what it publishes then reaches nobody. (A
// box that does not subscribe has no mesh: it sends to the topic's peers
// it knows, gossipsub's fanout.)
func (in *Intake) publish(ctx context.Context, data []byte) error {
	if len(in.topic.ListPeers()) == 0 {
		wctx, cancel := context.WithTimeout(ctx, peerWait)
		tick := time.NewTicker(50 * time.Millisecond)
		for len(in.topic.ListPeers()) == 0 && wctx.Err() == nil {
			select {
			case <-wctx.Done():
			case <-tick.C:
			}
		}
		tick.Stop()
		cancel()
	}
	return in.topic.Publish(ctx, data)
}

// check applies the receipt rules to rs and returns the valid ones, and
// each receipt's error (nil for valid ones).
func (in *Intake) check(rs []*pod.Receipt) (good []*pod.Receipt, errs []error) {
	now := in.params.EpochAt(in.now())
	errs = make([]error, len(rs))
	var idx []int
	var signed []*pod.Receipt
	for i, r := range rs {
		if errs[i] = in.params.CheckUnsigned(r, now); errs[i] == nil {
			idx = append(idx, i)
			signed = append(signed, r)
		}
	}
	for j, err := range pod.VerifyReceipts(signed) {
		errs[idx[j]] = err
	}
	for i, r := range rs {
		if errs[i] == nil {
			good = append(good, r)
		}
	}
	return good, errs
}

func (in *Intake) collect(ctx context.Context) {
	defer in.wg.Done()
	for {
		m, err := in.sub.Next(ctx)
		if err != nil {
			return
		}
		if rs, ok := m.ValidatorData.([]*pod.Receipt); ok {
			for _, r := range rs {
				in.pool.Add(r)
			}
		}
	}
}

// validate applies the receipt rules to every receipt of a message; a
// message with one bad receipt is dropped whole (a correct sender checks
// what it publishes) and each bad receipt is counted by its reason. The
// message is rejected, which costs its sender peer score, unless every
// bad receipt is only out of this peer's epoch window: clocks differ a
// little, and the sender may have been right by its own, so that message
// is ignored.
func (in *Intake) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if !m.Local { // this peer's own receipts were checked by PublishBatch
		prio.wait()
	}
	rs, err := decodeBatch(m.Data)
	if err != nil {
		in.rejected.WithLabelValues(string(pod.ReasonMalformed)).Inc()
		return pubsub.ValidationReject
	}
	good, errs := in.check(rs)
	if len(good) != len(rs) {
		verdict := pubsub.ValidationIgnore
		for _, err := range errs {
			if err != nil {
				reason := pod.ReasonOf(err)
				in.rejected.WithLabelValues(string(reason)).Inc()
				if reason != pod.ReasonEpochOutOfRange {
					verdict = pubsub.ValidationReject
				}
			}
		}
		return verdict
	}
	in.accepted.Add(float64(len(rs)))
	m.ValidatorData = rs
	return pubsub.ValidationAccept
}

// Close leaves the topic.
func (in *Intake) Close() error {
	in.cancel()
	if in.sub != nil {
		in.sub.Cancel()
	}
	in.wg.Wait()
	return in.topic.Close()
}
