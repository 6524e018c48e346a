package committee

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/pod"
)

// Gossip topics of the ledger.
const (
	// BlocksTopic carries committee signatures over block hashes.
	BlocksTopic = "/ore/blocks/1"
	// TxsTopic carries signed account transactions (deposit, register,
	// transfer) to the coordinators.
	TxsTopic = "/ore/txs/1"
)

const msgSignature = 1

// sigMsg is a member's signature over the hash of the block at height.
type sigMsg struct {
	height uint64
	hash   [32]byte
	sig    ledger.Signature
}

func (m *sigMsg) marshal() []byte {
	b := []byte{msgSignature}
	b = binary.BigEndian.AppendUint64(b, m.height)
	b = append(b, m.hash[:]...)
	b = binary.AppendUvarint(b, uint64(len(m.sig.Signer)))
	b = append(b, m.sig.Signer...)
	b = binary.AppendUvarint(b, uint64(len(m.sig.Sig)))
	return append(b, m.sig.Sig...)
}

func unmarshalSig(data []byte) (*sigMsg, error) {
	bad := errors.New("committee: malformed signature message")
	if len(data) < 1+8+32 || data[0] != msgSignature {
		return nil, bad
	}
	m := &sigMsg{height: binary.BigEndian.Uint64(data[1:9])}
	copy(m.hash[:], data[9:41])
	id, sig, ok := readSigned(data[41:])
	if !ok {
		return nil, bad
	}
	m.sig = ledger.Signature{Signer: id, Sig: sig}
	if !bytes.Equal(m.marshal(), data) {
		return nil, bad
	}
	return m, nil
}

// verify checks that the signer is a member and the signature is its.
func (m *sigMsg) verify(g *ledger.Genesis) error {
	if !g.IsMember(m.sig.Signer) {
		return fmt.Errorf("%w: %s", errNotMember, m.sig.Signer)
	}
	pk, err := m.sig.Signer.ExtractPublicKey()
	if err != nil {
		return err
	}
	ok, err := pk.Verify(ledger.SigPayload(m.hash), m.sig.Sig)
	if err != nil || !ok {
		return errors.New("committee: bad block signature")
	}
	return nil
}

// signApplied runs in the FSM after a block is stored: sign it, add the
// signatures that arrived early, gossip ours. A block whose epoch this
// member refuses (checkEpoch, on the previous block's epoch parent) stays
// applied but unsigned by it: see epoch.go.
func (c *Committee) signApplied(b *ledger.Block, parent uint64) {
	c.metrics.blocks.Inc()
	hash := b.Hash()
	var sigs []ledger.Signature
	if c.judgeEpoch(&b.Header, parent) == nil {
		mine, err := c.sign(b)
		if err != nil {
			c.log.Error("sign block", "height", b.Header.Height, "err", err)
			return
		}
		// The block is final when a majority's signatures meet: send this
		// member's before the bookkeeping below, which takes a while for a
		// block of many receipts.
		msg := (&sigMsg{height: b.Header.Height, hash: hash, sig: mine}).marshal()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.publish(c.ctx, c.blocks, msg); err != nil {
				c.log.Debug("gossip block signature", "err", err)
			}
		}()
		sigs = append(sigs, mine)
	}
	c.mu.Lock()
	early := c.pending[b.Header.Height]
	delete(c.pending, b.Header.Height)
	c.mu.Unlock()
	for _, s := range append(early, sigs...) {
		c.addSig(&sigMsg{height: b.Header.Height, hash: hash, sig: s})
	}
	// Every member drops what the block took from its pool, so a new
	// leader does not propose it again.
	var included []*pod.Receipt
	for i := range b.Txs {
		if b.Txs[i].Kind == ledger.KindReceipt {
			included = append(included, b.Txs[i].Receipt)
		}
	}
	c.cfg.Pool.Done(included)
}

// sign returns this member's signature over b's header hash.
func (c *Committee) sign(b *ledger.Block) (ledger.Signature, error) {
	own := &ledger.Block{Header: b.Header} // the signature covers the header hash only
	if err := own.Sign(c.cfg.Key); err != nil {
		return ledger.Signature{}, err
	}
	for _, s := range own.Sigs {
		if s.Signer == c.self {
			return s, nil
		}
	}
	return ledger.Signature{}, errors.New("committee: signing left no signature of this member")
}

// meshWait bounds how long publish waits for a gossip peer to send to.
const meshWait = 5 * time.Second

// publish gossips data on t once gossipsub can send it to a peer, or after
// meshWait in any case. Gossipsub sends a message of this member's own
// only to its mesh for the topic (flood publishing is off by default), and
// right after a connection (a partition healed, a restart) there is none:
// first the peer may be known from its subscriptions but have no send
// queue yet, then it is not in the mesh until a heartbeat grafts it. What
// is published then reaches nobody, and gossip does not send it later
// (gossip goes to peers outside the mesh, and the heartbeat puts them in).
func (c *Committee) publish(ctx context.Context, t *pubsub.Topic, data []byte) error {
	wctx, cancel := context.WithTimeout(ctx, meshWait)
	defer cancel()
	err := awaitTopicPeer(wctx, t)
	if err == nil {
		err = t.Publish(wctx, data, pubsub.WithReadiness(pubsub.MinTopicSize(1)))
	}
	if err != nil && ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
		return t.Publish(ctx, data) // nobody to send to yet: best effort
	}
	return err
}

// awaitTopicPeer waits until gossipsub has a send queue to a peer of the
// topic.
func awaitTopicPeer(ctx context.Context, t *pubsub.Topic) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for len(t.ListPeers()) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// maxEarlyHeights bounds the heights above this member's chain whose
// signatures it keeps until their block comes (a committee's size each;
// with those left behind by at most as many, at most 2×maxEarlyHeights+1
// heights):
// a member, even a faulty one, signs for any height it likes, and the
// table of early signatures would grow with every height named. A member
// that lags further behind gets those blocks final through repair
// (repair.go), with their signatures.
const maxEarlyHeights = 64

// addSig records a verified signature on the stored block it names.
// readSigned reads what ends a signature or vote message: the signer's
// peer ID (at most 64 bytes) and its signature (at most 128), each behind
// a uvarint length, and nothing after. The signature is copied.
func readSigned(b []byte) (peer.ID, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 64 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	id, err := peer.IDFromBytes(b[k : k+int(n)])
	if err != nil {
		return "", nil, false
	}
	b = b[k+int(n):]
	n, k = binary.Uvarint(b)
	if k <= 0 || n > 128 || uint64(len(b)-k) != n {
		return "", nil, false
	}
	return id, append([]byte(nil), b[k:]...), true
}

func (c *Committee) addSig(m *sigMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.chain.head(m.height)
	if errors.Is(err, errNoBlock) {
		top := c.chain.height()
		if m.height > top+maxEarlyHeights {
			return // far ahead: repair brings the block final, signatures and all
		}
		if len(c.pending) > maxEarlyHeights {
			// Heights far below the chain whose block came another way
			// (sync) never meet their signatures here.
			for h := range c.pending {
				if h+maxEarlyHeights < top {
					delete(c.pending, h)
				}
			}
		}
		if len(c.pending[m.height]) < len(c.cfg.Genesis.Committee) {
			c.pending[m.height] = append(c.pending[m.height], m.sig)
		}
		return
	}
	if err != nil {
		c.log.Warn("read block for signature", "height", m.height, "err", err)
		return
	}
	if b.Hash() != m.hash {
		c.log.Warn("signature for another block at this height", "height", m.height, "signer", m.sig.Signer)
		return
	}
	wasFinal := b.Final(c.cfg.Genesis)
	if err := b.AddSignature(m.sig); err != nil {
		return
	}
	if err := c.chain.putHead(b); err != nil {
		c.log.Warn("store block signatures", "height", m.height, "err", err)
		return
	}
	if !wasFinal && b.Final(c.cfg.Genesis) {
		c.metrics.finals.Inc()
		select {
		case c.final <- m.height:
		default:
		}
		if b.Header.Proposer == c.self && c.cfg.Schedule != nil {
			select { // gossip must not wait under c.mu: ordersLoop publishes
			case c.finalOrders <- m.height:
			default: // the next epoch's renewals order the same boxes
			}
		}
	}
}

func (c *Committee) readSigs(ctx context.Context, sub *pubsub.Subscription) {
	defer c.wg.Done()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		switch m := msg.ValidatorData.(type) { // validateSig checked it
		case *sigMsg:
			c.addSig(m)
		case *voteMsg:
			c.onVote(m)
		}
	}
}

// Submit keeps a signed account transaction for this member's next block,
// hands it to the leader and gossips it to the coordinators. Right after
// this member connected it waits, up to meshWait, for a gossip peer.
func (c *Committee) Submit(ctx context.Context, tx ledger.Tx) error {
	return c.submit(ctx, tx, true)
}

// submit keeps a verified transaction and gossips it; with forward, a
// member that does not lead also hands it to the leader directly, so that
// a gossip message lost on a mesh that is still forming (a member that
// just started or reconnected) loses nothing. What a member receives from
// another (serveSubmit) is not forwarded again: two members that each
// take the other for the leader, during an election, would pass it back
// and forth.
func (c *Committee) submit(ctx context.Context, tx ledger.Tx, forward bool) error {
	if err := tx.Authenticate(c.cfg.Genesis.Network); err != nil {
		return err
	}
	if err := c.keepTx(tx); err != nil {
		return err
	}
	data := tx.Marshal()
	if l := c.LeaderID(); forward && l != "" && l != c.self {
		if err := submitTo(ctx, c.cfg.Host, l, data); err != nil {
			c.log.Debug("hand transaction to the leader", "leader", l, "err", err)
		}
	}
	return c.publish(ctx, c.txs, data)
}

func (c *Committee) readTxs(ctx context.Context, sub *pubsub.Subscription) {
	defer c.wg.Done()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if tx, ok := msg.ValidatorData.(*ledger.Tx); ok { // validateTx checked it
			if err := c.keepTx(*tx); err != nil {
				c.log.Debug("gossiped transaction not kept", "err", err)
			}
		}
	}
}
