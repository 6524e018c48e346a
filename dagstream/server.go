package dagstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/bitswap"
)

// Server defaults.
const (
	// DefaultMaxStreamsPerPeer bounds the bulk streams one client has at
	// once: a fetch opens one; more would only split the same uplink.
	DefaultMaxStreamsPerPeer = 2
	// DefaultMaxStreams bounds the bulk streams over every client. Each
	// holds at most one block (≤ MaxBlockSize) and its walk's pending
	// links: 64 streams hold at most 128 MiB of blocks.
	DefaultMaxStreams = 64
	// DefaultWriteTimeout bounds how long one block's write may wait for
	// the client to read: a client that stops reading loses its stream,
	// and the server its block and walk.
	DefaultWriteTimeout = 20 * time.Second
	// DefaultHoldTimeout bounds how long the send gate may hold the next
	// block (the client's unreceipted bytes reached the credit window)
	// before the stream ends with Denied; bitswap then asks for the rest.
	DefaultHoldTimeout = 30 * time.Second
	// requestTimeout bounds the wait for a request.
	requestTimeout = 10 * time.Second
	// writeBuffer is what the server gathers before it writes to the
	// stream. Large writes matter: with 64 KiB a QUIC stream carried
	// 84 MB/s in `ore bench transfer`, with 1 MiB 112 MB/s (raw copy in
	// 1 MiB writes: 152-199 MB/s), for one copy of each block's bytes.
	writeBuffer = 1 << 20
)

// Blocks is the store a server reads DAGs from (store.Store is one).
type Blocks interface {
	GetSize(ctx context.Context, c cid.Cid) (int, error)
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// BlockReader is a Blocks that reads a block into a buffer its caller
// keeps (store.Store is one): out[room:] is the block, out[:room] free for
// the caller, *buf grown as needed and kept for the next read. With it a
// stream reads every block into one buffer and sends each frame's header
// and bytes in one write, with no allocation or copy a block (Get
// allocated and zeroed a new buffer a block: ~0.15 CPU s per GiB of the
// serving side, and its header went in a write of its own).
type BlockReader interface {
	ReadBlock(ctx context.Context, c cid.Cid, room int, buf *[]byte) ([]byte, error)
}

// frameRoom is the room a server reads a block after: a frame header
// (a uvarint of at most MaxBlockSize+1) fits.
const frameRoom = 3

// ServerOption configures a Server.
type ServerOption func(*Server) error

// WithGate has the server ask gate before each block, as bitswap does
// (bitswap.WithGate): Send lets it go, Hold waits for Release(p) (and
// asks again), DontHave ends the stream with Denied.
func WithGate(g bitswap.Gate) ServerOption {
	return func(s *Server) error { s.gate = g; return nil }
}

// WithFilter refuses blocks filter returns false for (bitswap's
// RequestFilter: the denylist, the data cap): the request's root with
// Denied, a block below it by ending the stream with Denied.
func WithFilter(filter func(p peer.ID, c cid.Cid) bool) ServerOption {
	return func(s *Server) error { s.filter = filter; return nil }
}

// WithSent reports every block written to a client (bitswap's BlockSent
// hook: traffic counters). sent must not keep the block's bytes past the
// call: the server reads the next block into them.
func WithSent(sent func(p peer.ID, b blocks.Block)) ServerOption {
	return func(s *Server) error { s.sent = sent; return nil }
}

// WithUplink has each block wait for wait(ctx, size) before it leaves
// (bitswap.Exchange.WaitUplink: one upload limit over both protocols).
func WithUplink(wait func(ctx context.Context, n int) error) ServerOption {
	return func(s *Server) error { s.uplink = wait; return nil }
}

// WithStreamLimits sets the most streams per client and over all.
func WithStreamLimits(perPeer, total int) ServerOption {
	return func(s *Server) error {
		if perPeer <= 0 || total < perPeer {
			return fmt.Errorf("dagstream: stream limits %d per peer, %d in all: want 0 < per peer ≤ all", perPeer, total)
		}
		s.perPeer, s.maxStreams = perPeer, total
		return nil
	}
}

// WithTimeouts sets the write and hold timeouts (see the defaults).
func WithTimeouts(write, hold time.Duration) ServerOption {
	return func(s *Server) error {
		if write <= 0 || hold <= 0 {
			return fmt.Errorf("dagstream: timeouts must be positive, got write %s, hold %s", write, hold)
		}
		s.writeTimeout, s.holdTimeout = write, hold
		return nil
	}
}

// WithServerLogger sets the logger.
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(s *Server) error { s.log = l; return nil }
}

// WithStreamDone calls done when a stream the server took (past the
// stream limits) ends, with why it ended (nil: the whole walk was sent).
// For metrics and tests.
func WithStreamDone(done func(p peer.ID, err error)) ServerOption {
	return func(s *Server) error { s.done = done; return nil }
}

// Server answers bulk DAG requests (HandleStream) from a box's store.
type Server struct {
	blocks       Blocks
	holds        func(ctx context.Context, root cid.Cid) bool
	gate         bitswap.Gate
	filter       func(peer.ID, cid.Cid) bool
	sent         func(peer.ID, blocks.Block)
	uplink       func(context.Context, int) error
	log          *slog.Logger
	done         func(peer.ID, error)
	perPeer      int
	maxStreams   int
	writeTimeout time.Duration
	holdTimeout  time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	active   map[peer.ID]int
	total    int
	released map[peer.ID]chan struct{} // closed by Release(p); only while p has a stream
	closed   bool
}

// NewServer serves DAGs from bs. holds says whether the box holds a
// root's whole DAG (a fetch of it completed, or the box added it): only
// then does the server stream it; otherwise it answers NotHeld at once.
func NewServer(bs Blocks, holds func(ctx context.Context, root cid.Cid) bool, opts ...ServerOption) (*Server, error) {
	if bs == nil || holds == nil {
		return nil, errors.New("dagstream: a server needs its blocks and a holds function")
	}
	s := &Server{
		blocks: bs, holds: holds, log: slog.New(slog.DiscardHandler),
		perPeer: DefaultMaxStreamsPerPeer, maxStreams: DefaultMaxStreams,
		writeTimeout: DefaultWriteTimeout, holdTimeout: DefaultHoldTimeout,
		active: make(map[peer.ID]int), released: make(map[peer.ID]chan struct{}),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close ends every stream being served; later requests get Closing.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	return nil
}

// Release wakes p's streams that wait on the send gate: call it when the
// gate's verdict for p may have changed (a receipt arrived), where
// bitswap.Exchange.Release is called.
func (s *Server) Release(p peer.ID) {
	s.mu.Lock()
	if ch := s.released[p]; ch != nil {
		close(ch)
		delete(s.released, p)
	}
	s.mu.Unlock()
}

// Streams is how many streams the server serves now.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// take counts a new stream from p; the Code says why not.
func (s *Server) take(p peer.ID) Code {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return Closing
	case s.active[p] >= s.perPeer || s.total >= s.maxStreams:
		return Busy
	}
	s.active[p]++
	s.total++
	return Ok
}

func (s *Server) drop(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.active[p]--; s.active[p] <= 0 {
		delete(s.active, p)
		delete(s.released, p) // no stream of p waits any more
	}
}

// releasedCh is the channel Release(p) closes next.
func (s *Server) releasedCh(p peer.ID) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.released[p]
	if ch == nil {
		ch = make(chan struct{})
		s.released[p] = ch
	}
	return ch
}

// stopError ends a stream with a stop frame.
type stopError struct {
	code Code
	err  error
}

func (e *stopError) Error() string { return fmt.Sprintf("dagstream: stopped (%s): %v", e.code, e.err) }
func (e *stopError) Unwrap() error { return e.err }

func stop(c Code, format string, args ...any) error {
	return &stopError{code: c, err: fmt.Errorf(format, args...)}
}

// HandleStream is the /ore/dag/1.0.0 handler: it reads one request and
// answers Ok and the DAG's blocks in walk order, or a refusal.
func (s *Server) HandleStream(st network.Stream) {
	p := st.Conn().RemotePeer()
	if c := s.take(p); c != Ok {
		_ = st.SetWriteDeadline(time.Now().Add(requestTimeout))
		_, _ = st.Write([]byte{byte(c)})
		_ = st.Close()
		return
	}
	err := s.serve(st, p)
	s.drop(p)
	var se *stopError
	switch {
	case err == nil:
		_ = st.Close()
	case errors.As(err, &se): // the client was told why
		_ = st.Close()
		s.log.Debug("bulk stream refused or stopped", "peer", p, "code", se.code, "err", err)
	default:
		_ = st.Reset()
		s.log.Debug("bulk stream broke", "peer", p, "err", err)
	}
	if s.done != nil {
		s.done(p, err)
	}
}

func (s *Server) serve(st network.Stream, p peer.ID) error {
	_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := readRequest(bufio.NewReaderSize(st, MaxRequestSize+16))
	code := Ok
	switch {
	case err != nil:
		code = BadRequest
	case s.filter != nil && !s.filter(p, req.Root):
		code, err = Denied, fmt.Errorf("dagstream: %s is not served to %s", req.Root, p)
	case !s.holds(s.ctx, req.Root):
		code, err = NotHeld, fmt.Errorf("dagstream: this box does not hold the whole DAG of %s", req.Root)
	}
	_ = st.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if _, werr := st.Write([]byte{byte(code)}); werr != nil {
		return fmt.Errorf("dagstream: answer %s: %w", p, werr)
	}
	if code != Ok {
		return &stopError{code: code, err: err}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The client sends nothing after its request and keeps its side
	// open: a read ends when it resets the stream (it gave up), which
	// ends a wait on the gate or the uplink at once, or when it closes
	// the stream after the last block (EOF).
	go func() {
		var b [1]byte
		_ = st.SetReadDeadline(time.Time{})
		if _, err := st.Read(b[:]); !errors.Is(err, io.EOF) {
			cancel()
		}
	}()
	bw := bufio.NewWriterSize(st, writeBuffer)
	flush := func() error {
		if bw.Buffered() == 0 {
			return nil
		}
		_ = st.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		return bw.Flush()
	}
	err = s.walk(ctx, st, bw, flush, p, req)
	var se *stopError
	if errors.As(err, &se) {
		// Tell the client why, so it falls back at once.
		_ = st.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		if _, werr := bw.Write(appendStop(nil, se.code)); werr == nil {
			_ = bw.Flush()
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return fmt.Errorf("dagstream: write to %s: %w", p, err)
	}
	return nil
}

// walk sends req's DAG in walk order, each block after the gate let it.
func (s *Server) walk(ctx context.Context, st network.Stream, bw *bufio.Writer, flush func() error, p peer.ID, req Request) error {
	w := newWalker(req, 0)
	var buf []byte // the stream's block buffer (see BlockReader)
	reader, _ := s.blocks.(BlockReader)
	for {
		it, ok, err := w.next()
		if err != nil {
			return stop(TooLarge, "%w", err)
		}
		if !ok {
			return nil
		}
		if s.filter != nil && !s.filter(p, it.c) {
			return stop(Denied, "block %s is not served to %s", it.c, p)
		}
		size, err := s.blocks.GetSize(ctx, it.c)
		if err != nil {
			return stop(Missing, "size of %s: %w", it.c, err)
		}
		if size > MaxBlockSize {
			return stop(TooLarge, "block %s has %d bytes, more than %d", it.c, size, MaxBlockSize)
		}
		if err := s.ask(ctx, p, it.c, size, flush); err != nil {
			return err
		}
		frame, data, err := s.read(ctx, reader, it.c, &buf)
		if err != nil {
			s.refund(p, it.c, size)
			return stop(Missing, "read %s: %w", it.c, err)
		}
		if s.uplink != nil {
			if err := flush(); err != nil { // what waits must not wait in the buffer
				s.refund(p, it.c, size)
				return fmt.Errorf("dagstream: write to %s: %w", p, err)
			}
			if err := s.uplink(ctx, size); err != nil {
				s.refund(p, it.c, size)
				return err
			}
		}
		_ = st.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		if err := sendFrame(st, bw, frame); err != nil {
			s.refund(p, it.c, size)
			return fmt.Errorf("dagstream: write to %s: %w", p, err)
		}
		if s.sent != nil {
			b, err := blocks.NewBlockWithCid(data, it.c)
			if err != nil {
				return fmt.Errorf("dagstream: block %s: %w", it.c, err)
			}
			s.sent(p, b)
		}
		if _, err := w.visited(it, data); err != nil {
			return stop(TooLarge, "%w", err)
		}
	}
}

// read reads c's block and returns its frame (header and bytes, in *buf)
// and the bytes alone: read into *buf, after a frame header's room, when
// the store is a BlockReader.
func (s *Server) read(ctx context.Context, reader BlockReader, c cid.Cid, buf *[]byte) (frame, data []byte, err error) {
	if reader == nil {
		b, err := s.blocks.Get(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		// A copy into the stream's buffer, header first.
		*buf = append(appendFrameHeader((*buf)[:0], len(b.RawData())), b.RawData()...)
		return *buf, b.RawData(), nil
	}
	out, err := reader.ReadBlock(ctx, c, frameRoom, buf)
	if err != nil {
		return nil, nil, err
	}
	data = out[frameRoom:]
	var hdr [frameRoom]byte
	h := appendFrameHeader(hdr[:0], len(data))
	start := frameRoom - len(h)
	copy(out[start:], h)
	return out[start:], data, nil
}

// directWrite is the frame size from which a frame goes to the stream
// as it is, after what the buffer holds: a copy into the buffer cost the
// serving side ~0.4 CPU s per GiB of 256 KiB blocks, and a write this
// large is large enough for the stream. Smaller frames are gathered in
// the buffer (see writeBuffer).
const directWrite = 64 << 10

// sendFrame writes one frame (a block's header and bytes): through bw,
// or, from directWrite bytes, straight to st in one write.
func sendFrame(st io.Writer, bw *bufio.Writer, frame []byte) error {
	if len(frame) < directWrite {
		_, err := bw.Write(frame)
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := st.Write(frame)
	return err
}

// ask asks the gate about one block, and while it holds the block, waits
// for Release(p) and asks again. The client must have every block sent
// so far before the wait (it pays for them with the receipts the wait is
// for), so the buffer is flushed first.
func (s *Server) ask(ctx context.Context, p peer.ID, c cid.Cid, size int, flush func() error) error {
	if s.gate == nil {
		return nil
	}
	var timeout <-chan time.Time
	for {
		released := s.releasedCh(p)
		switch bitswap.Decide(s.gate, p, c, size) {
		case bitswap.Send:
			return nil
		case bitswap.DontHave:
			return stop(Denied, "the send gate refuses %s to %s", c, p)
		}
		if err := flush(); err != nil {
			return fmt.Errorf("dagstream: write to %s: %w", p, err)
		}
		if timeout == nil {
			t := time.NewTimer(s.holdTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-released:
		case <-timeout:
			return stop(Denied, "the send gate held %s for %s longer than %s", c, p, s.holdTimeout)
		case <-ctx.Done():
			return stop(Closing, "%w", ctx.Err())
		}
	}
}

// refund gives the gate back a block it let through that did not leave.
func (s *Server) refund(p peer.ID, c cid.Cid, size int) {
	if r, ok := s.gate.(bitswap.GateRefunder); ok {
		r.Refund(p, c, size)
	}
}
