package intake

import (
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer scoring. Every topic of ore has a validator that checks a message
// before gossipsub forwards it; a message the validator rejects costs the
// peer that sent it score (gossipsub's P4, invalid message deliveries,
// which weighs the square of their count). A peer with a negative score
// leaves the meshes, and at the thresholds below it no longer exchanges
// gossip, then gets nothing published to it, then has everything it sends
// ignored (graylisted). Validators reject only what breaks a rule every
// correct peer applies alike; what depends on the receiver's clock or
// state (a receipt a few epochs old, a full pool) is ignored instead,
// which costs nothing, since the peer that forwarded it may be right.
const (
	// invalidWeight is the score of one invalid message (P4 weighs its
	// count squared): -10, -40, -90, ... The thresholds below make a peer
	// graylisted after about 10 invalid messages not yet decayed.
	invalidWeight = -10
	// invalidDecay is how long the count of invalid messages takes to
	// decay to nothing: long enough that a flood keeps its sender
	// graylisted, short enough that a correct peer that relayed one bad
	// message (a rule changed in a release) is back in the meshes within
	// minutes.
	invalidDecay = 5 * time.Minute

	gossipThreshold   = -100
	publishThreshold  = -500
	graylistThreshold = -1000
)

// TopicScoreParams are the score parameters of every ore topic: invalid
// messages cost score, nothing else counts (deliveries earn nothing, so a
// peer's score is never positive and mesh health does not depend on it).
func TopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation: true,
		TopicWeight:          1,
		// Time in the mesh earns nothing, but gossipsub divides by its
		// quantum whatever the weight.
		TimeInMeshQuantum:              time.Second,
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(invalidDecay),
	}
}

// peerScore is the peer scoring of GossipOptions, with the receipts
// topic's parameters; ScoreTopic adds the other topics.
func peerScore() pubsub.Option {
	params := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics:               map[string]*pubsub.TopicScoreParams{ReceiptsTopic: TopicScoreParams()},
		AppSpecificScore:     func(peer.ID) float64 { return 0 },
		DecayInterval:        time.Second,
		DecayToZero:          0.01,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:   gossipThreshold,
		PublishThreshold:  publishThreshold,
		GraylistThreshold: graylistThreshold,
		// Ore does not use peer exchange nor opportunistic grafting:
		// both need positive scores, which no peer earns here.
		AcceptPXThreshold:           1,
		OpportunisticGraftThreshold: 1,
	}
	return pubsub.WithPeerScore(params, thresholds)
}

// ScoreTopic makes invalid messages on t cost their sender peer score, as
// on the receipts topic. Every package that joins an ore topic calls it;
// it fails on a PubSub made without GossipOptions.
func ScoreTopic(t *pubsub.Topic) error {
	if err := t.SetScoreParams(TopicScoreParams()); err != nil {
		return fmt.Errorf("intake: score topic %s: %w", t.String(), err)
	}
	return nil
}
