package dagstream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Client defaults.
const (
	// DefaultReadTimeout bounds the wait for the server's next frame. It
	// is above DefaultHoldTimeout: a server whose gate holds a block ends
	// the stream itself, with a reason.
	DefaultReadTimeout = DefaultHoldTimeout + 10*time.Second
	// DefaultBatchBytes bounds a batch handed to the Sink. Blocks are
	// handed on as soon as the sink is free, so a batch is large only
	// when the network is faster than the store.
	DefaultBatchBytes = 8 << 20
	// batchQueue is how many verified blocks wait for the sink at most:
	// past it the client stops reading, and the stream's flow control
	// stops the server.
	batchQueue = 64
	readBuffer = 64 << 10
)

// Opener opens streams to peers (a libp2p host is one).
type Opener interface {
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
}

// Sink stores verified blocks (a batch at a time, in walk order).
type Sink interface {
	Put(ctx context.Context, bs []blocks.Block) error
}

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithReadTimeout sets how long the client waits for a frame.
func WithReadTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("dagstream: read timeout must be positive, got %s", d)
		}
		c.readTimeout = d
		return nil
	}
}

// WithMaxBlocks bounds the blocks of one stream (node.WithMaxFetchBlocks).
func WithMaxBlocks(n int64) ClientOption {
	return func(c *Client) error {
		if n <= 0 {
			return fmt.Errorf("dagstream: max blocks must be positive, got %d", n)
		}
		c.maxBlocks = n
		return nil
	}
}

// WithBatchBytes bounds a batch handed to the sink.
func WithBatchBytes(n int) ClientOption {
	return func(c *Client) error {
		if n <= 0 {
			return fmt.Errorf("dagstream: batch bytes must be positive, got %d", n)
		}
		c.batchBytes = n
		return nil
	}
}

// Client fetches DAGs over bulk streams.
type Client struct {
	open        Opener
	readTimeout time.Duration
	maxBlocks   int64
	batchBytes  int
}

// NewClient fetches through open.
func NewClient(open Opener, opts ...ClientOption) (*Client, error) {
	if open == nil {
		return nil, errors.New("dagstream: a client needs a stream opener")
	}
	c := &Client{open: open, readTimeout: DefaultReadTimeout, maxBlocks: DefaultMaxBlocks, batchBytes: DefaultBatchBytes}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Result is what a Get received and verified.
type Result struct {
	Blocks int64
	Bytes  int64
}

// Get asks from for req's DAG and hands every block to sink as it
// arrives, verified: it hashes to its CID, and its CID is the next one
// the walk of the blocks verified before it yields (see walker). received,
// if not nil, is called for each verified block before the sink gets it,
// with whether it is a leaf (it has no links to walk).
//
// It returns when the walk is done and the server closed the stream, or
// with an error: a *RefusedError (errors.Is ErrRefused: the server
// answered that it will not send, or no more), a *LieError (ErrLied: drop
// the source), the sink's error, or the stream's. Whatever the error, the
// blocks verified before it were handed to the sink.
func (c *Client) Get(ctx context.Context, from peer.ID, req Request, sink Sink, received func(b blocks.Block, leaf bool)) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.open.NewStream(ctx, from, ProtocolID)
	if err != nil {
		return Result{}, fmt.Errorf("dagstream: open a stream to %s: %w", from, err)
	}
	stopped := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stopped()
	_ = st.SetWriteDeadline(time.Now().Add(requestTimeout))
	if _, err := st.Write(req.marshal()); err != nil {
		_ = st.Reset()
		return Result{}, fmt.Errorf("dagstream: send request to %s: %w", from, err)
	}
	// The write side stays open: the server reads it to learn when the
	// client gives up (a reset) while it waits on its gate.

	queue := make(chan blocks.Block, batchQueue)
	sinkErr := make(chan error, 1)
	go func() {
		err := c.drain(ctx, queue, sink)
		if err != nil {
			cancel() // a sink that fails (a full store) stops the stream
		}
		sinkErr <- err
	}()
	res, rerr := c.read(ctx, st, req, queue, received)
	close(queue)
	serr := <-sinkErr
	if rerr != nil {
		_ = st.Reset()
	} else {
		_ = st.Close()
	}
	switch {
	case serr != nil:
		return res, fmt.Errorf("dagstream: store blocks of %s: %w", req.Root, serr)
	case rerr != nil && ctx.Err() != nil && !errors.Is(rerr, ErrLied) && !errors.Is(rerr, ErrRefused):
		return res, fmt.Errorf("dagstream: get %s from %s: %w", req.Root, from, ctx.Err())
	}
	return res, rerr
}

// drain hands queued blocks to sink: whatever is queued when the sink is
// free, up to batchBytes a batch. After a sink error it drops the rest
// (Get returns that error).
func (c *Client) drain(ctx context.Context, queue <-chan blocks.Block, sink Sink) error {
	var err error
	for b := range queue {
		if err != nil {
			continue
		}
		batch := []blocks.Block{b}
		size := len(b.RawData())
	more:
		for size < c.batchBytes {
			select {
			case nb, ok := <-queue:
				if !ok {
					break more
				}
				batch = append(batch, nb)
				size += len(nb.RawData())
			default:
				break more
			}
		}
		err = sink.Put(ctx, batch)
	}
	return err
}

// frame is one frame as frames read it: a block's bytes, a stop code, or
// why reading ended (io.EOF: the stream closed cleanly).
type frame struct {
	data []byte
	stop Code
	err  error
}

// frameAhead is how many frames are read ahead of their verification:
// the next frame's bytes come off the stream while a block is hashed.
const frameAhead = 4

// frames reads frames from br until the stream ends or fails, or done
// closes. Frames are checked for size and form here; what they hold is
// checked by read, in order.
func (c *Client) frames(st network.Stream, br *bufio.Reader, out chan<- frame, done <-chan struct{}) {
	defer close(out)
	send := func(f frame) bool {
		select {
		case out <- f:
			return true
		case <-done:
			return false
		}
	}
	for {
		_ = st.SetReadDeadline(time.Now().Add(c.readTimeout))
		n, err := readUvarint(br)
		if err != nil {
			send(frame{err: err})
			return
		}
		if n == 0 {
			code, err := br.ReadByte()
			if err != nil {
				send(frame{err: fmt.Errorf("dagstream: read stop code: %w", err)})
				return
			}
			send(frame{stop: Code(code)})
			return
		}
		if n-1 > MaxBlockSize {
			send(frame{err: &LieError{Reason: fmt.Sprintf("frame of %d bytes, more than a block's %d", n-1, MaxBlockSize)}})
			return
		}
		data := make([]byte, n-1)
		if _, err := io.ReadFull(br, data); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			send(frame{err: fmt.Errorf("dagstream: read a block: %w", err)})
			return
		}
		if !send(frame{data: data}) {
			return
		}
	}
}

// read reads the status, then verifies each frame's block and queues it
// for the sink.
func (c *Client) read(ctx context.Context, st network.Stream, req Request, queue chan<- blocks.Block, received func(blocks.Block, bool)) (Result, error) {
	var res Result
	br := bufio.NewReaderSize(st, readBuffer)
	_ = st.SetReadDeadline(time.Now().Add(c.readTimeout))
	status, err := br.ReadByte()
	if err != nil {
		return res, fmt.Errorf("dagstream: read the answer: %w", err)
	}
	if Code(status) != Ok {
		if Code(status) >= numCodes {
			return res, &LieError{Reason: fmt.Sprintf("unknown answer %d", status)}
		}
		return res, &RefusedError{Code: Code(status)}
	}
	in := make(chan frame, frameAhead)
	done := make(chan struct{})
	var reading sync.WaitGroup
	reading.Add(1)
	go func() { defer reading.Done(); c.frames(st, br, in, done) }()
	clean := false
	defer func() {
		close(done)
		if !clean {
			_ = st.Reset() // ends a read under way
		}
		reading.Wait()
	}()
	w := newWalker(req, c.maxBlocks)
	lie := func(format string, args ...any) error {
		return &LieError{Blocks: res.Blocks, Reason: fmt.Sprintf(format, args...)}
	}
	// ended maps how reading ended before the walk did.
	ended := func(f frame) error {
		var le *LieError
		switch {
		case errors.As(f.err, &le):
			le.Blocks = res.Blocks
			return le
		case errors.Is(f.err, errFrameHeader):
			return lie("%v", f.err)
		case errors.Is(f.err, io.EOF):
			return fmt.Errorf("dagstream: the stream ended after %d blocks, before the DAG's end: %w", res.Blocks, io.ErrUnexpectedEOF)
		case f.err != nil:
			return fmt.Errorf("dagstream: read frame %d: %w", res.Blocks+1, f.err)
		case f.stop == Ok || f.stop >= numCodes:
			return lie("stop frame with code %d", byte(f.stop))
		}
		return &RefusedError{Code: f.stop, Blocks: res.Blocks}
	}
	for {
		it, ok, err := w.next()
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		var f frame
		select {
		case f = <-in:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		if f.data == nil {
			return res, ended(f)
		}
		data := f.data
		got, err := it.c.Prefix().Sum(data)
		if err != nil {
			return res, fmt.Errorf("dagstream: hash block %d (%s): %w", res.Blocks+1, it.c, err)
		}
		if !got.Equals(it.c) {
			return res, lie("block %d hashes to %s, not to %s, the next block of the DAG", res.Blocks+1, got, it.c)
		}
		b, err := blocks.NewBlockWithCid(data, it.c)
		if err != nil {
			return res, fmt.Errorf("dagstream: block %s: %w", it.c, err)
		}
		links, err := w.visited(it, data)
		if err != nil {
			return res, fmt.Errorf("dagstream: walk %s: %w", req.Root, err)
		}
		res.Blocks++
		res.Bytes += int64(len(data))
		if received != nil {
			received(b, links == 0)
		}
		select {
		case queue <- b:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	// The walk is done: the server must close the stream now.
	var f frame
	select {
	case f = <-in:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	switch {
	case f.data != nil || f.err == nil:
		return res, lie("data after the DAG's last block")
	case !errors.Is(f.err, io.EOF):
		return res, fmt.Errorf("dagstream: read the stream's end: %w", f.err)
	}
	clean = true // the reader saw the end and returned
	return res, nil
}

var errFrameHeader = errors.New("dagstream: a frame header longer than a 64-bit uvarint")

// readUvarint is binary.ReadUvarint with an error of its own for a
// header no uvarint encoder writes (a lie, not a broken stream).
func readUvarint(br io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := br.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return x, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return x, errFrameHeader
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return x, errFrameHeader
}
