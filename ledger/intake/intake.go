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

// MessageID makes a message's ID the hash of its bytes, so the same receipt
// published by several peers (or twice) travels once. Pass it to gossipsub
// with pubsub.WithMessageIdFn when creating the PubSub.
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
	batch  *batcher

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
	in := &Intake{params: params, now: cfg.now, pool: cfg.pool, batch: newBatcher(),
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
	go func() { defer in.wg.Done(); in.batch.run(ctx) }()
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

// Publish gossips a countersigned receipt.
func (in *Intake) Publish(ctx context.Context, r *pod.Receipt) error {
	if err := in.topic.Publish(ctx, r.Marshal()); err != nil {
		return fmt.Errorf("intake: publish: %w", err)
	}
	return nil
}

func (in *Intake) collect(ctx context.Context) {
	defer in.wg.Done()
	for {
		m, err := in.sub.Next(ctx)
		if err != nil {
			return
		}
		if r, ok := m.ValidatorData.(*pod.Receipt); ok {
			in.pool.Add(r)
		}
	}
}

// validate applies the receipt rules; signatures are checked in batches.
func (in *Intake) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	r, err := pod.Unmarshal(m.Data)
	if err == nil {
		err = in.params.CheckUnsigned(r, in.params.EpochAt(in.now()))
	}
	if err == nil {
		err = in.batch.verify(ctx, r)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStopped) {
			return pubsub.ValidationIgnore
		}
		in.rejected.WithLabelValues(string(pod.ReasonOf(err))).Inc()
		return pubsub.ValidationReject
	}
	in.accepted.Inc()
	m.ValidatorData = r
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
