package raftp2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/orecdn/ore/internal/wire"
)

// ProtocolID is the Raft protocol between coordinators, in this package's
// own encoding (codec.go). Builds before it spoke Raft's msgpack stream
// under the same name; no network outlives its build (a genesis starts
// every one), and a member of an older build is refused with a malformed
// message error, not misread.
const ProtocolID = protocol.ID("/ore/raft/1.0.0")

const (
	// DefaultTimeout bounds one RPC: dialing, sending and the answer.
	DefaultTimeout = 10 * time.Second
	// maxInflight is how many pipelined AppendEntries may wait for their
	// answers (Raft's own transport allows as many).
	maxInflight = 128
	// snapshotScale stretches an InstallSnapshot's deadline: one timeout
	// per this many bytes of snapshot, as Raft's own transport does.
	snapshotScale = 256 << 10
	bufSize       = 64 << 10
)

// Option configures a Transport.
type Option func(*Transport)

// WithTimeout sets how long one RPC may take (DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(t *Transport) { t.timeout = d } }

// WithAllow admits incoming Raft requests only from peers for which allow
// returns true (the committee's members); others are reset unread.
func WithAllow(allow func(peer.ID) bool) Option { return func(t *Transport) { t.allow = allow } }

// WithPool sets how many idle streams to keep per peer (3).
func WithPool(n int) Option { return func(t *Transport) { t.maxPool = n } }

// WithLogger sets where dropped streams are logged.
func WithLogger(l *slog.Logger) Option { return func(t *Transport) { t.log = l } }

// Transport is a raft.Transport over libp2p streams: a coordinator's Raft
// address is its peer ID. Requests for one peer go over a small pool of
// streams, appends for a follower over a pipeline stream of their own.
type Transport struct {
	h       host.Host
	timeout time.Duration
	allow   func(peer.ID) bool
	maxPool int
	log     *slog.Logger

	consumer chan raft.RPC
	hbMu     sync.Mutex
	hb       func(raft.RPC)

	mu      sync.Mutex
	pool    map[peer.ID][]*stream // idle outgoing streams
	out     map[*stream]struct{}  // every outgoing stream, idle or busy
	inbound map[network.Stream]struct{}
	closed  bool
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

// NewTransport registers the Raft protocol on h and returns the transport.
func NewTransport(h host.Host, opts ...Option) *Transport {
	t := &Transport{
		h:        h,
		timeout:  DefaultTimeout,
		maxPool:  3,
		log:      slog.Default(),
		consumer: make(chan raft.RPC),
		pool:     make(map[peer.ID][]*stream),
		out:      make(map[*stream]struct{}),
		inbound:  make(map[network.Stream]struct{}),
	}
	for _, o := range opts {
		o(t)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(ProtocolID, t.handle)
	return t
}

// Consumer delivers the requests other coordinators send.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumer }

// LocalAddr is this coordinator's peer ID.
func (t *Transport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(t.h.ID().String()) }

// EncodePeer encodes a server's address (a peer ID) for Raft's log.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer is the inverse of EncodePeer.
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler lets heartbeats skip the queue of other requests.
func (t *Transport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.hbMu.Lock()
	t.hb = cb
	t.hbMu.Unlock()
}

// Close stops serving and drops every stream.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	out, inbound := t.out, t.inbound
	t.pool, t.out, t.inbound = nil, nil, nil
	t.mu.Unlock()
	t.h.RemoveStreamHandler(ProtocolID)
	// Calls and pipelines still waiting on their streams fail now, not at
	// their deadlines: Raft waits for them when it shuts down.
	for s := range out {
		_ = s.s.Reset()
	}
	for s := range inbound {
		_ = s.Reset()
	}
	return nil
}

// AppendEntries sends entries (or a heartbeat) and waits for the answer.
func (t *Transport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.call(target, "append entries", t.timeout,
		func(b []byte) []byte { return appendAppendRequest(b, args) },
		func(w *bufio.Writer) error { return writeEntryData(w, args.Entries) },
		func(d *wire.Decoder) { readAppendResponse(d, resp) }, true)
}

// RequestVote asks target for its vote.
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.call(target, "request vote", t.timeout,
		func(b []byte) []byte { return appendVoteRequest(b, args) }, nil,
		func(d *wire.Decoder) { readVoteResponse(d, resp) }, true)
}

// RequestPreVote asks target whether it would vote.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, "request pre-vote", t.timeout,
		func(b []byte) []byte { return appendPreVoteRequest(b, args) }, nil,
		func(d *wire.Decoder) { readPreVoteResponse(d, resp) }, true)
}

// TimeoutNow asks target to start an election at once.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, "timeout now", t.timeout,
		func(b []byte) []byte { return appendTimeoutNowRequest(b, args) }, nil,
		func(d *wire.Decoder) { readTimeoutNowResponse(d, resp) }, true)
}

// InstallSnapshot sends a snapshot of args.Size bytes read from data. Its
// deadline grows with the size; the stream is not reused after it.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	timeout := t.timeout
	if scaled := t.timeout * time.Duration(args.Size/snapshotScale); scaled > timeout {
		timeout = scaled
	}
	return t.call(target, "install snapshot", timeout,
		func(b []byte) []byte { return appendSnapshotRequest(b, args) },
		func(w *bufio.Writer) error {
			n, err := io.Copy(w, io.LimitReader(data, args.Size))
			if err == nil && n != args.Size {
				err = fmt.Errorf("snapshot ended after %d of %d bytes", n, args.Size)
			}
			return err
		},
		func(d *wire.Decoder) { readSnapshotResponse(d, resp) }, false)
}

// call sends one request over a pooled stream and decodes its answer. A
// stream whose exchange failed is reset; one that carried a snapshot is
// closed; the others go back to the pool.
func (t *Transport) call(target raft.ServerAddress, what string, timeout time.Duration,
	encode func([]byte) []byte, body func(*bufio.Writer) error, decode func(*wire.Decoder), reuse bool) error {
	s, err := t.acquire(target)
	if err != nil {
		return err
	}
	_ = s.s.SetDeadline(time.Now().Add(timeout))
	err = s.roundTrip(encode, body, decode)
	var remote RemoteError
	switch {
	case err == nil, errors.As(err, &remote):
		if reuse {
			_ = s.s.SetDeadline(time.Time{})
			t.release(s)
		} else {
			t.drop(s, false)
		}
		if err != nil {
			return fmt.Errorf("raftp2p: %s to %s: %w", what, target, err)
		}
		return nil
	default:
		t.drop(s, true)
		return fmt.Errorf("raftp2p: %s to %s: %w", what, target, err)
	}
}

// acquire takes an idle stream to target from the pool or opens one.
func (t *Transport) acquire(target raft.ServerAddress) (*stream, error) {
	pid, err := peer.Decode(string(target))
	if err != nil {
		return nil, fmt.Errorf("raftp2p: address %q is not a peer ID: %w", target, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, raft.ErrTransportShutdown
	}
	if ss := t.pool[pid]; len(ss) > 0 {
		s := ss[len(ss)-1]
		t.pool[pid] = ss[:len(ss)-1]
		t.mu.Unlock()
		return s, nil
	}
	t.mu.Unlock()
	return t.open(pid)
}

// open opens a new Raft stream to pid.
func (t *Transport) open(pid peer.ID) (*stream, error) {
	// A coordinator that started after this one left a dial backoff behind:
	// Raft retries on its own schedule, so forget the backoff and dial.
	if b, ok := t.h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		b.Backoff().Clear(pid)
	}
	if t.ctx.Err() != nil {
		return nil, raft.ErrTransportShutdown
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	ns, err := t.h.NewStream(ctx, pid, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("raftp2p: dial %s: %w", pid, err)
	}
	s := newStream(ns)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = ns.Reset()
		return nil, raft.ErrTransportShutdown
	}
	t.out[s] = struct{}{}
	return s, nil
}

// drop ends an outgoing stream: closed, or reset after a failure.
func (t *Transport) drop(s *stream, reset bool) {
	t.mu.Lock()
	if t.out != nil {
		delete(t.out, s)
	}
	t.mu.Unlock()
	if reset {
		_ = s.s.Reset()
	} else {
		_ = s.s.Close()
	}
}

// release puts an idle stream back into its peer's pool, or closes it if
// the pool is full or the transport closed.
func (t *Transport) release(s *stream) {
	pid := s.s.Conn().RemotePeer()
	t.mu.Lock()
	if !t.closed && len(t.pool[pid]) < t.maxPool {
		t.pool[pid] = append(t.pool[pid], s)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.drop(s, false)
}

// handle serves one incoming Raft stream until it ends.
func (t *Transport) handle(ns network.Stream) {
	remote := ns.Conn().RemotePeer()
	if t.allow != nil && !t.allow(remote) {
		t.log.Warn("raft stream from a peer outside the committee refused", "peer", remote)
		_ = ns.Reset()
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = ns.Reset()
		return
	}
	t.inbound[ns] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if t.inbound != nil {
			delete(t.inbound, ns)
		}
		t.mu.Unlock()
	}()
	s := newStream(ns)
	for {
		// allow may change its mind (a committee that stops taking a
		// leader's entries, to elect another): asked on every request.
		if t.allow != nil && !t.allow(remote) {
			_ = ns.Reset()
			return
		}
		keep, err := t.serveOne(s)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, raft.ErrTransportShutdown) {
				t.log.Debug("raft stream dropped", "peer", remote, "err", err)
			}
			_ = ns.Reset()
			return
		}
		if !keep {
			_ = ns.Close()
			return
		}
	}
}

// serveOne reads one request, hands it to Raft and writes Raft's answer.
// keep is false after a snapshot (its stream is not reused).
func (t *Transport) serveOne(s *stream) (keep bool, err error) {
	frame, err := s.readFrame()
	if err != nil {
		return false, err
	}
	d := wire.NewDecoder(frame, ErrMalformed)
	rpc := raft.RPC{}
	var (
		appendReq *raft.AppendEntriesRequest
		sizes     []int
		heartbeat bool
	)
	keep = true
	switch typ := d.Byte("message type"); typ {
	case msgAppend:
		appendReq, sizes = readAppendRequest(d)
		rpc.Command = appendReq
	case msgVote:
		rpc.Command = readVoteRequest(d)
	case msgPreVote:
		rpc.Command = readPreVoteRequest(d)
	case msgTimeoutNow:
		rpc.Command = readTimeoutNowRequest(d)
	case msgSnapshot:
		req := readSnapshotRequest(d)
		rpc.Command = req
		rpc.Reader = io.LimitReader(s.r, req.Size)
		keep = false
	default:
		d.Failf("unknown message type %d", typ)
	}
	if err := d.End(); err != nil {
		return false, err
	}
	if appendReq != nil {
		if err := readEntryData(s.r, appendReq.Entries, sizes); err != nil {
			return false, err
		}
		leader := appendReq.Addr
		if len(leader) == 0 {
			leader = appendReq.Leader
		}
		heartbeat = appendReq.Term != 0 && leader != nil && appendReq.PrevLogEntry == 0 &&
			appendReq.PrevLogTerm == 0 && len(appendReq.Entries) == 0 && appendReq.LeaderCommitIndex == 0
	}
	respCh := make(chan raft.RPCResponse, 1)
	rpc.RespChan = respCh
	dispatched := false
	if heartbeat {
		t.hbMu.Lock()
		fn := t.hb
		t.hbMu.Unlock()
		if fn != nil {
			fn(rpc)
			dispatched = true
		}
	}
	if !dispatched {
		select {
		case t.consumer <- rpc:
		case <-t.ctx.Done():
			return false, raft.ErrTransportShutdown
		}
	}
	var resp raft.RPCResponse
	select {
	case resp = <-respCh:
	case <-t.ctx.Done():
		return false, raft.ErrTransportShutdown
	}
	out, err := appendResponse(s.wbuf[:0], resp)
	if err != nil {
		return false, err
	}
	s.wbuf = out
	_ = s.s.SetWriteDeadline(time.Now().Add(t.timeout))
	if err := s.writeFrame(out); err != nil {
		return false, err
	}
	if err := s.w.Flush(); err != nil {
		return false, err
	}
	_ = s.s.SetWriteDeadline(time.Time{})
	return keep, nil
}

// stream is one Raft stream with its buffers.
type stream struct {
	s    network.Stream
	r    *bufio.Reader
	w    *bufio.Writer
	rbuf []byte // the frame last read
	wbuf []byte // the frame being written (a pipeline writes while it reads)
}

func newStream(s network.Stream) *stream {
	return &stream{s: s, r: bufio.NewReaderSize(s, bufSize), w: bufio.NewWriterSize(s, bufSize)}
}

func (s *stream) writeFrame(b []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := s.w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))]); err != nil {
		return err
	}
	_, err := s.w.Write(b)
	return err
}

// readFrame reads a frame into the stream's buffer; it is valid until the
// next read.
func (s *stream) readFrame() ([]byte, error) {
	n, err := binary.ReadUvarint(s.r)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated frame length", ErrMalformed)
		}
		return nil, err
	}
	if n > maxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes is over the %d-byte limit", ErrMalformed, n, maxFrame)
	}
	if cap(s.rbuf) < int(n) {
		s.rbuf = make([]byte, n)
	}
	s.rbuf = s.rbuf[:n]
	if _, err := io.ReadFull(s.r, s.rbuf); err != nil {
		return nil, fmt.Errorf("raftp2p: read frame: %w", err)
	}
	return s.rbuf, nil
}

// send writes a request frame, then whatever body follows it, and flushes.
func (s *stream) send(encode func([]byte) []byte, body func(*bufio.Writer) error) error {
	s.wbuf = encode(s.wbuf[:0])
	if err := s.writeFrame(s.wbuf); err != nil {
		return err
	}
	if body != nil {
		if err := body(s.w); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// roundTrip sends a request and decodes the answer.
func (s *stream) roundTrip(encode func([]byte) []byte, body func(*bufio.Writer) error, decode func(*wire.Decoder)) error {
	if err := s.send(encode, body); err != nil {
		return err
	}
	frame, err := s.readFrame()
	if err != nil {
		return err
	}
	return readResponse(frame, decode)
}

// AppendEntriesPipeline opens a stream to target on which appends are sent
// without waiting for the answers to the ones before.
func (t *Transport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	pid, err := peer.Decode(string(target))
	if err != nil {
		return nil, fmt.Errorf("raftp2p: address %q is not a peer ID: %w", target, err)
	}
	s, err := t.open(pid)
	if err != nil {
		return nil, err
	}
	p := &pipeline{
		t:        t,
		s:        s,
		inflight: make(chan *appendFuture, maxInflight),
		done:     make(chan raft.AppendFuture, maxInflight),
		stop:     make(chan struct{}),
	}
	go p.decode()
	return p, nil
}

// pipeline is one follower's append stream.
type pipeline struct {
	t        *Transport
	s        *stream
	inflight chan *appendFuture
	done     chan raft.AppendFuture
	stop     chan struct{}
	once     sync.Once
}

// AppendEntries sends an append; its future completes when the answer
// comes back (in order) and is then delivered on Consumer.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	f := &appendFuture{start: time.Now(), req: args, resp: resp, ready: make(chan struct{})}
	_ = p.s.s.SetWriteDeadline(time.Now().Add(p.t.timeout))
	err := p.s.send(func(b []byte) []byte { return appendAppendRequest(b, args) },
		func(w *bufio.Writer) error { return writeEntryData(w, args.Entries) })
	if err != nil {
		return nil, fmt.Errorf("raftp2p: pipelined append to %s: %w", p.s.s.Conn().RemotePeer(), err)
	}
	select {
	case p.inflight <- f:
		return f, nil
	case <-p.stop:
		return nil, raft.ErrPipelineShutdown
	}
}

// Consumer delivers the appends whose answers came back.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.done }

// Close drops the stream; appends still in flight fail.
func (p *pipeline) Close() error {
	p.once.Do(func() {
		close(p.stop)
		p.t.drop(p.s, true)
	})
	return nil
}

// decode reads the answers in the order the appends went out.
func (p *pipeline) decode() {
	for {
		var f *appendFuture
		select {
		case f = <-p.inflight:
		case <-p.stop:
			return
		}
		_ = p.s.s.SetReadDeadline(time.Now().Add(p.t.timeout))
		frame, err := p.s.readFrame()
		if err == nil {
			err = readResponse(frame, func(d *wire.Decoder) { readAppendResponse(d, f.resp) })
		}
		if err != nil {
			err = fmt.Errorf("raftp2p: pipelined append to %s: %w", p.s.s.Conn().RemotePeer(), err)
		}
		f.err = err
		close(f.ready)
		select {
		case p.done <- f:
		case <-p.stop:
			return
		}
	}
}

// appendFuture is one pipelined append.
type appendFuture struct {
	start time.Time
	req   *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	err   error
	ready chan struct{}
}

func (f *appendFuture) Error() error                          { <-f.ready; return f.err }
func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
