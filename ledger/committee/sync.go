package committee

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/orecdn/ore/ledger"
)

// ChainProtocol serves final blocks to any peer: the request is the first
// height wanted (uvarint); the answer is length-prefixed blocks, with their
// signatures, ending with an empty frame.
const ChainProtocol = protocol.ID("/ore/chain/1.0.0")

const (
	syncBatch   = 1000 // blocks per answer; ask again from the next height
	syncTimeout = 30 * time.Second
	syncGrace   = 300 * time.Millisecond // how long SyncChain waits for a longer chain after the first
)

// serveChain answers chain sync requests with final blocks, within the
// limits of the asking peer (synclimit.go).
func (c *Committee) serveChain(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	limited := !c.cfg.Genesis.IsMember(p)
	if limited {
		if !c.syncLimit.open(p) {
			c.metrics.sync.limited.WithLabelValues("streams").Inc()
			c.log.Debug("chain sync refused: too many streams", "peer", p, "open", syncStreams)
			_ = s.Reset()
			return
		}
		defer c.syncLimit.close(p)
	}
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	from, err := binary.ReadUvarint(bufio.NewReader(io.LimitReader(s, binary.MaxVarintLen64)))
	if err != nil || from == 0 {
		_ = s.Reset()
		return
	}
	w := bufio.NewWriter(s)
	paced := false
	for h := from; h < from+syncBatch; h++ {
		b, err := c.chain.get(h)
		if err != nil || !b.Final(c.cfg.Genesis) {
			break
		}
		if limited {
			wait, ok := c.syncLimit.take(p)
			if !ok {
				// Ending the answer here would tell the peer the chain
				// ends here: reset, which it sees as an error.
				c.metrics.sync.limited.WithLabelValues("rate").Inc()
				c.log.Debug("chain sync reset: the peer asks for blocks too fast", "peer", p, "height", h)
				_ = s.Reset()
				return
			}
			if wait > 0 {
				if !paced {
					paced = true
					c.metrics.sync.limited.WithLabelValues("paced").Inc()
				}
				if err := w.Flush(); err != nil { // what is paid for goes now
					return
				}
				t := time.NewTimer(wait)
				select {
				case <-c.ctx.Done():
					t.Stop()
					_ = s.Reset()
					return
				case <-t.C:
				}
			}
		}
		data := b.Marshal()
		if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(data)))); err != nil {
			return
		}
		if _, err := w.Write(data); err != nil {
			return
		}
		c.metrics.sync.served.Inc()
	}
	_, _ = w.Write([]byte{0})
	_ = w.Flush()
}

// SyncChain fetches the final blocks from the committee members, all at
// once, and verifies them from genesis, as any peer can. It returns the
// state after the last final block and the blocks: the longest chain that
// verifies among the members that answer within syncGrace of the first
// good answer, so one member that is down (its dial timing out) or behind
// costs nothing.
func SyncChain(ctx context.Context, h host.Host, g *ledger.Genesis) (*ledger.State, []*ledger.Block, error) {
	return SyncFrom(ctx, h, g, nil)
}

// SyncFrom is SyncChain from a verified state on (nil: from genesis): it
// fetches only the final blocks after base's height and verifies them
// from base. It returns the new state and those blocks.
func SyncFrom(ctx context.Context, h host.Host, g *ledger.Genesis, base *ledger.State) (*ledger.State, []*ledger.Block, error) {
	return syncFrom(ctx, h, g, base, 0)
}

// SyncPage is SyncFrom for at most max blocks (max > 0): a view that
// follows a long chain (the dashboard) reads it a page at a time, holding
// one page in memory, and asks again from the state it returns until a
// page comes back empty.
func SyncPage(ctx context.Context, h host.Host, g *ledger.Genesis, base *ledger.State, max int) (*ledger.State, []*ledger.Block, error) {
	if max <= 0 {
		return nil, nil, fmt.Errorf("committee: a page of %d blocks: want at least one", max)
	}
	return syncFrom(ctx, h, g, base, max)
}

// syncFrom is SyncFrom for at most limit blocks (0: no limit).
func syncFrom(ctx context.Context, h host.Host, g *ledger.Genesis, base *ledger.State, limit int) (*ledger.State, []*ledger.Block, error) {
	if base == nil {
		var err error
		if base, err = ledger.NewState(g); err != nil {
			return nil, nil, err
		}
	}
	type result struct {
		st     *ledger.State
		blocks []*ledger.Block
		err    error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(g.Committee))
	asked := 0
	for _, m := range g.Committee {
		if m.ID == h.ID() {
			continue
		}
		if ai, err := m.AddrInfo(); err == nil {
			h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		}
		asked++
		go func() {
			blocks, err := fetchChain(ctx, h, m.ID, base.Height()+1, limit)
			if err != nil {
				results <- result{err: fmt.Errorf("%s: %w", m.ID, err)}
				return
			}
			s, err := ledger.VerifyFrom(g, base, blocks)
			if err != nil {
				results <- result{err: fmt.Errorf("%s served a chain that does not verify: %w", m.ID, err)}
				return
			}
			results <- result{st: s, blocks: blocks}
		}()
	}
	var best *result
	var errs []error
	var grace <-chan time.Time
	for i := 0; i < asked; i++ {
		select {
		case r := <-results:
			if r.err != nil {
				errs = append(errs, r.err)
				continue
			}
			if best == nil {
				grace = time.After(syncGrace)
			}
			if best == nil || len(r.blocks) > len(best.blocks) {
				best = &r
			}
			continue
		case <-grace:
		case <-ctx.Done():
		}
		break
	}
	if best != nil {
		return best.st, best.blocks, nil
	}
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return nil, nil, fmt.Errorf("committee: no coordinator served a valid chain (are they running?): %w", errors.Join(errs...))
}

// fetchChain reads p's final blocks from height from on, at most limit
// of them (0: all).
func fetchChain(ctx context.Context, h host.Host, p peer.ID, from uint64, limit int) ([]*ledger.Block, error) {
	var blocks []*ledger.Block
	for {
		got, err := fetchBatch(ctx, h, p, from+uint64(len(blocks)))
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, got...)
		if limit > 0 && len(blocks) >= limit {
			return blocks[:limit], nil
		}
		if len(got) < syncBatch {
			return blocks, nil
		}
	}
}

func fetchBatch(ctx context.Context, h host.Host, p peer.ID, from uint64) ([]*ledger.Block, error) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, ChainProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	if _, err := s.Write(binary.AppendUvarint(nil, from)); err != nil {
		return nil, err
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	var out []*ledger.Block
	for {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("chain sync: %w", err)
		}
		if n == 0 {
			return out, nil
		}
		if n > ledger.MaxBlockSize || len(out) >= syncBatch {
			return nil, fmt.Errorf("chain sync: frame of %d bytes", n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("chain sync: %w", err)
		}
		b, err := ledger.UnmarshalBlock(data)
		if err != nil {
			return nil, err
		}
		if b.Header.Height != from+uint64(len(out)) {
			return nil, fmt.Errorf("chain sync: got height %d, want %d", b.Header.Height, from+uint64(len(out)))
		}
		out = append(out, b)
	}
}

// SubmitProtocol takes a signed account transaction from any peer: the
// coordinator checks its signature, keeps it and gossips it to the rest of
// the committee. The request is a length-prefixed transaction; the answer
// is an empty frame, or a frame with the reason of a refusal.
const SubmitProtocol = protocol.ID("/ore/submit/1.0.0")

const maxTxFrame = ledger.MaxTxEncoded + 16 // the largest transaction and its frame

func (c *Committee) serveSubmit(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	r := bufio.NewReader(s)
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > maxTxFrame {
		_ = s.Reset()
		return
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		_ = s.Reset()
		return
	}
	answer := ""
	tx, err := ledger.UnmarshalTx(data)
	if err == nil && tx.Kind == ledger.KindReceipt {
		err = errors.New("receipts travel on " + "/ore/receipts/1")
	}
	if err == nil {
		err = c.submit(context.Background(), *tx, false)
	}
	if err != nil {
		answer = err.Error()
	}
	_, _ = s.Write(append(binary.AppendUvarint(nil, uint64(len(answer))), answer...))
}

// SubmitTx hands a signed account transaction to a coordinator (trying each
// member in turn) and returns once one accepted it.
func SubmitTx(ctx context.Context, h host.Host, g *ledger.Genesis, tx ledger.Tx) error {
	// Every member at once: the first that takes it gossips it to the
	// others (a member keeps a transaction once, by ID), and a member that
	// is down or unreachable costs no dial timeout.
	data := tx.Marshal()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(g.Committee))
	for _, m := range g.Committee {
		if ai, err := m.AddrInfo(); err == nil {
			h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		}
		go func() {
			err := submitTo(ctx, h, m.ID, data)
			if err != nil && !errors.Is(err, ErrRefused) {
				err = fmt.Errorf("%s: %w", m.ID, err)
			}
			errc <- err
		}()
	}
	var errs []error
	var refused error
	for range g.Committee {
		err := <-errc
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrRefused) && refused == nil {
			refused = err
		}
		errs = append(errs, err)
	}
	if refused != nil {
		return refused
	}
	return fmt.Errorf("committee: no coordinator took the transaction (are they running?): %w", errors.Join(errs...))
}

// submitTo offers a marshalled transaction to one member.
func submitTo(ctx context.Context, h host.Host, p peer.ID, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, SubmitProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(data))), data...)); err != nil {
		return err
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1024 {
		return fmt.Errorf("bad answer: %v", err)
	}
	if n == 0 {
		return nil
	}
	msg := make([]byte, n)
	_, _ = io.ReadFull(r, msg)
	return fmt.Errorf("%w: %s", ErrRefused, msg)
}

// ErrRefused is a coordinator's refusal of a transaction.
var ErrRefused = errors.New("committee: transaction refused")
