package committee

import (
	"context"
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orecdn/ore/ledger"
)

// Gossip validators of the ledger's topics. Gossipsub runs them before it
// forwards a message, so junk stops at the first member that sees it, and
// a rejected message costs its sender peer score (intake.GossipOptions).
// A message that breaks no rule but that this member cannot take now (its
// transaction pool is full, see txpool.go) is ignored, which costs
// nothing: the sender may be right, and another member may take it.

// Reasons a gossip message is refused (the metric's reason label).
const (
	reasonMalformed    = "malformed"     // not a well-formed message
	reasonNotMember    = "not_member"    // a block signature by a peer outside the committee
	reasonBadSignature = "bad_signature" // the signature does not verify
	reasonReceipt      = "receipt"       // a receipt on the transactions topic
	reasonPoolFull     = "pool_full"     // ignored: the pool holds maxTxPool
	reasonAccountFull  = "account_full"  // ignored: the account has maxAccountTxs waiting
	reasonOutOfWindow  = "out_of_window" // ignored: a vote for a height or round far from this member's
)

// errNotMember is a block signature by a peer outside the committee.
var errNotMember = errors.New("committee: signer is not a member")

func newGossipRefused() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ore_ledger_gossip_refused_total",
		Help: "Messages on the ledger's gossip topics that this coordinator's validator refused, by topic and reason (pool_full and account_full are ignored, the others rejected: their sender loses peer score)."},
		[]string{"topic", "reason"})
	for _, r := range []string{reasonMalformed, reasonNotMember, reasonBadSignature, reasonOutOfWindow} {
		v.WithLabelValues(BlocksTopic, r)
	}
	for _, r := range []string{reasonMalformed, reasonBadSignature, reasonReceipt, reasonPoolFull, reasonAccountFull} {
		v.WithLabelValues(TxsTopic, r)
	}
	return v
}

// registerValidators puts the validators on ps before the topics are
// joined.
func (c *Committee) registerValidators() error {
	if err := c.cfg.PubSub.RegisterTopicValidator(BlocksTopic, c.validateSig); err != nil {
		return fmt.Errorf("committee: validator for %s: %w", BlocksTopic, err)
	}
	if err := c.cfg.PubSub.RegisterTopicValidator(TxsTopic, c.validateTx); err != nil {
		_ = c.cfg.PubSub.UnregisterTopicValidator(BlocksTopic)
		return fmt.Errorf("committee: validator for %s: %w", TxsTopic, err)
	}
	c.validating = true
	return nil
}

func (c *Committee) unregisterValidators() {
	if c.validating {
		_ = c.cfg.PubSub.UnregisterTopicValidator(BlocksTopic)
		_ = c.cfg.PubSub.UnregisterTopicValidator(TxsTopic)
		c.validating = false
	}
}

// validateSig admits a committee member's well-formed signature over a
// block hash; it attaches the decoded message for readSigs.
// Under FinalityBFT it admits votes instead (bft.go): a member's signed
// prevote or precommit.
func (c *Committee) validateSig(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	var data any
	var err error
	reason := reasonMalformed
	check := func(e error) {
		if err = e; errors.Is(err, errNotMember) {
			reason = reasonNotMember
		} else {
			reason = reasonBadSignature
		}
	}
	if c.bftMode() {
		var m *voteMsg
		if m, err = unmarshalVote(msg.Data); err == nil {
			check(m.verify(c.cfg.Genesis))
			data = m
		}
	} else {
		var m *sigMsg
		if m, err = unmarshalSig(msg.Data); err == nil {
			check(m.verify(c.cfg.Genesis))
			data = m
		}
	}
	if err != nil {
		c.metrics.gossip.WithLabelValues(BlocksTopic, reason).Inc()
		return pubsub.ValidationReject
	}
	if v, ok := data.(*voteMsg); ok && !c.voteInWindow(v) {
		c.metrics.gossip.WithLabelValues(BlocksTopic, reasonOutOfWindow).Inc()
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = data
	return pubsub.ValidationAccept
}

// validateTx admits a well-formed account transaction (not a receipt:
// those travel on /ore/receipts/1) within its kind's size limit,
// signed by its account for this network, that this member's pool can
// take (admit); it attaches the decoded transaction for readTxs.
func (c *Committee) validateTx(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	refuse := func(reason string, v pubsub.ValidationResult) pubsub.ValidationResult {
		c.metrics.gossip.WithLabelValues(TxsTopic, reason).Inc()
		return v
	}
	tx, err := ledger.UnmarshalTx(msg.Data) // refuses an oversized one before it decodes
	switch {
	case err != nil:
		return refuse(reasonMalformed, pubsub.ValidationReject)
	case tx.Kind == ledger.KindReceipt:
		return refuse(reasonReceipt, pubsub.ValidationReject)
	case tx.Authenticate(c.cfg.Genesis.Network) != nil:
		return refuse(reasonBadSignature, pubsub.ValidationReject)
	case tx.Kind == ledger.KindEvidence && tx.Evidence.Check(c.cfg.Genesis) != nil:
		return refuse(reasonNotMember, pubsub.ValidationReject)
	}
	if !msg.Local { // this member's own were admitted when submitted
		if err := c.admit(*tx); err != nil {
			return refuse(poolReason(err), pubsub.ValidationIgnore)
		}
	}
	msg.ValidatorData = tx
	return pubsub.ValidationAccept
}
