package dagstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/bitswap"
	"github.com/orecdn/ore/store"
)

// serve starts a server on h with bs's blocks.
func serve(t *testing.T, h host.Host, srv *Server) {
	t.Helper()
	h.SetStreamHandler(ProtocolID, srv.HandleStream)
	t.Cleanup(func() { _ = srv.Close() })
}

func TestWholeDAGInWalkOrder(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 600<<10, 1)
	srv, err := NewServer(bs, always)
	if err != nil {
		t.Fatal(err)
	}
	sv.SetStreamHandler(ProtocolID, srv.HandleStream)
	t.Cleanup(func() { _ = srv.Close() })
	cli, err := NewClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	var leaves, seen int
	res, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, func(b blocks.Block, leaf bool) {
		seen++
		if leaf {
			leaves++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := walkOrder(t, bs, Request{Root: root})
	sameBlocks(t, sink.blocks(), want)
	if res.Blocks != int64(len(want)) || seen != len(want) {
		t.Fatalf("result counts %d blocks, the hook saw %d, the DAG has %d", res.Blocks, seen, len(want))
	}
	if leaves != 150 { // 600 KiB of 4 KiB leaves
		t.Fatalf("%d leaves reported, want 150", leaves)
	}
}

// Leaves of directWrite bytes and more leave the server straight, not
// through its buffer, between inner nodes and a short last leaf that go
// through it: the client still gets every block, in walk order.
//
// Over ore's store (a BlockReader: each block read into the stream's one
// buffer, after its frame header's room) as over a plain blockstore.
func TestLargeAndSmallBlocksInterleaved(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, bs := range []blockstore.Blockstore{newStore(), st} {
		_, reads := bs.(BlockReader)
		t.Run(fmt.Sprintf("reader=%v", reads), func(t *testing.T) { largeAndSmall(t, bs) })
	}
}

func largeAndSmall(t *testing.T, bs blockstore.Blockstore) {
	cl, sv := pair(t)
	_, root := testFileChunked(t, bs, 3<<20+5000, 11, directWrite+4096, 4)
	srv, err := NewServer(bs, always)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, sv, srv)
	cli, err := NewClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	want := walkOrder(t, bs, Request{Root: root})
	var large, small int
	for _, b := range want {
		if len(b.RawData()) >= directWrite {
			large++
		} else {
			small++
		}
	}
	if large == 0 || small < 2 {
		t.Fatalf("the DAG has %d large and %d small blocks: the test needs both", large, small)
	}
	sink := &memSink{}
	if _, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, nil); err != nil {
		t.Fatal(err)
	}
	sameBlocks(t, sink.blocks(), want)
}

// A range fetches the blocks that hold its bytes (and the nodes above
// them) and no other: the file's bytes there read back from them alone.
func TestRangeFetchesOnlyItsBlocks(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	data, root := testFile(t, bs, 600<<10, 2)
	srv, _ := NewServer(bs, always)
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	for _, r := range []struct{ off, n uint64 }{{0, 1}, {100_000, 50_000}, {600<<10 - 10, 10}, {4096, 4096}, {300_000, 0}} {
		sink := &memSink{}
		req := Request{Root: root, Offset: r.off, Length: r.n}
		res, err := cli.Get(context.Background(), sv.ID(), req, sink, nil)
		if err != nil {
			t.Fatal(err)
		}
		end := r.off + r.n
		if r.n == 0 {
			end = uint64(len(data))
		}
		leaves := (end+4095)/4096 - r.off/4096
		got := newStore()
		for _, b := range sink.blocks() {
			if err := got.Put(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		inner := res.Blocks - int64(leaves)
		if inner < 1 || inner > 40 {
			t.Fatalf("range %+v: %d blocks for %d leaves", r, res.Blocks, leaves)
		}
		dag := merkledag.NewDAGService(blockservice.New(got, nil))
		nd, err := dag.Get(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := uio.NewDagReader(context.Background(), nd, dag)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Seek(int64(r.off), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, end-r.off)
		if _, err := io.ReadFull(rd, buf); err != nil {
			t.Fatalf("range %+v: read from the fetched blocks: %v", r, err)
		}
		if !bytes.Equal(buf, data[r.off:end]) {
			t.Fatalf("range %+v: bytes differ", r)
		}
	}
}

func TestNotHeldRefusesAtOnce(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 64<<10, 3)
	srv, _ := NewServer(bs, func(context.Context, cid.Cid) bool { return false })
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	sink := &memSink{}
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != NotHeld || !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want a NotHeld refusal", err)
	}
	if len(sink.blocks()) != 0 {
		t.Fatal("a refusal stored blocks")
	}
}

// A server that does not speak the protocol fails the Get at once.
func TestNoProtocol(t *testing.T) {
	cl, sv := pair(t)
	cli, _ := NewClient(cl)
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: cid.MustParse("bafkqaaa")}, &memSink{}, nil)
	if err == nil || errors.Is(err, ErrLied) {
		t.Fatalf("got %v, want an error opening the stream", err)
	}
}

// A block below the root that the store lost ends the stream with Missing
// after the blocks before it, which the client keeps.
func TestMissingBlockStops(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 200<<10, 4)
	order := walkOrder(t, bs, Request{Root: root})
	if err := bs.DeleteBlock(context.Background(), order[5].Cid()); err != nil {
		t.Fatal(err)
	}
	srv, _ := NewServer(bs, always)
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	sink := &memSink{}
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != Missing || re.Blocks != 5 {
		t.Fatalf("got %v, want Missing after 5 blocks", err)
	}
	sameBlocks(t, sink.blocks(), order[:5])
}

// liar serves a scripted answer: Ok, then the frames write makes.
func liar(t *testing.T, h host.Host, write func(w io.Writer)) {
	t.Helper()
	h.SetStreamHandler(ProtocolID, func(st network.Stream) {
		defer st.Close()
		if _, err := readRequest(bufio.NewReader(st)); err != nil {
			_ = st.Reset()
			return
		}
		bw := bufio.NewWriter(st)
		_ = bw.WriteByte(byte(Ok))
		write(bw)
		_ = bw.Flush()
	})
}

func writeFrame(w io.Writer, data []byte) {
	_, _ = w.Write(appendFrameHeader(nil, len(data)))
	_, _ = w.Write(data)
}

// Every way a server can lie is caught at its first wrong frame, and
// nothing from it on is stored.
func TestLyingServerCaughtAtFirstWrongBlock(t *testing.T) {
	bs := newStore()
	_, root := testFile(t, bs, 200<<10, 5)
	order := walkOrder(t, bs, Request{Root: root})
	stray := blocks.NewBlock([]byte("a block of no DAG"))
	flipped := append([]byte(nil), order[3].RawData()...)
	flipped[len(flipped)/2] ^= 1
	cases := []struct {
		name  string
		write func(w io.Writer)
		good  int // verified blocks before the lie
	}{
		{"wrong bytes", func(w io.Writer) {
			for _, b := range order[:3] {
				writeFrame(w, b.RawData())
			}
			writeFrame(w, flipped)
		}, 3},
		{"wrong order", func(w io.Writer) {
			for _, b := range order[:4] {
				writeFrame(w, b.RawData())
			}
			writeFrame(w, order[5].RawData())
			writeFrame(w, order[4].RawData())
		}, 4},
		{"block not linked", func(w io.Writer) {
			for _, b := range order[:2] {
				writeFrame(w, b.RawData())
			}
			writeFrame(w, stray.RawData())
		}, 2},
		{"oversize frame", func(w io.Writer) {
			writeFrame(w, order[0].RawData())
			_, _ = w.Write(appendFrameHeader(nil, MaxBlockSize+1))
			_, _ = w.Write(make([]byte, 1024))
		}, 1},
		{"frame header overflows", func(w io.Writer) {
			writeFrame(w, order[0].RawData())
			_, _ = w.Write(bytes.Repeat([]byte{0xff}, 11))
		}, 1},
		{"stop frame saying ok", func(w io.Writer) {
			writeFrame(w, order[0].RawData())
			_, _ = w.Write(appendStop(nil, Ok))
		}, 1},
		{"data after the end", func(w io.Writer) {
			for _, b := range order {
				writeFrame(w, b.RawData())
			}
			writeFrame(w, order[1].RawData())
		}, len(order)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, sv := pair(t)
			liar(t, sv, tc.write)
			cli, _ := NewClient(cl)
			sink := &memSink{}
			_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, nil)
			var le *LieError
			if !errors.As(err, &le) || !errors.Is(err, ErrLied) {
				t.Fatalf("got %v, want a lie", err)
			}
			if le.Blocks != int64(tc.good) {
				t.Fatalf("lie caught after %d blocks, want %d: %v", le.Blocks, tc.good, err)
			}
			sameBlocks(t, sink.blocks(), order[:tc.good])
		})
	}
}

// A server that closes the stream early is no liar (it may have failed),
// and the client keeps what came.
func TestEarlyCloseIsNotALie(t *testing.T) {
	bs := newStore()
	_, root := testFile(t, bs, 100<<10, 6)
	order := walkOrder(t, bs, Request{Root: root})
	cl, sv := pair(t)
	liar(t, sv, func(w io.Writer) {
		for _, b := range order[:4] {
			writeFrame(w, b.RawData())
		}
	})
	cli, _ := NewClient(cl)
	sink := &memSink{}
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, nil)
	if err == nil || errors.Is(err, ErrLied) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want an unexpected end", err)
	}
	sameBlocks(t, sink.blocks(), order[:4])
}

// Malformed and oversize requests get BadRequest.
func TestBadRequests(t *testing.T) {
	bs := newStore()
	srv, _ := NewServer(bs, always)
	good := Request{Root: cid.MustParse("bafkqaaa")}.marshal()
	for name, req := range map[string][]byte{
		"oversize":      append([]byte{0x80, 0x04}, make([]byte, 512)...),
		"empty":         {0},
		"bad version":   {3, 2, 0, 0},
		"cid overruns":  {3, 1, 40, 1},
		"trailing":      append(append([]byte{good[0] + 1}, good[1:]...), 0),
		"not a cid":     {5, 1, 2, 0xff, 0xff, 0},
		"truncated CID": {3, 1, 1, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			cl, sv := pair(t)
			sv.SetStreamHandler(ProtocolID, srv.HandleStream)
			st, err := cl.NewStream(context.Background(), sv.ID(), ProtocolID)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, _ = st.Write(req)
			_ = st.CloseWrite()
			_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 1)
			if _, err := io.ReadFull(st, b); err != nil || Code(b[0]) != BadRequest {
				t.Fatalf("answer %v (%v), want bad request", b, err)
			}
		})
	}
}

// A client that stops reading loses its stream after the write timeout:
// the server frees its slot (and its block and walk).
func TestStalledReaderIsDropped(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 24<<20, 7) // more than the stream's window
	done := make(chan error, 1)
	srv, _ := NewServer(bs, always, WithTimeouts(300*time.Millisecond, time.Second),
		WithStreamDone(func(_ peer.ID, err error) { done <- err }))
	serve(t, sv, srv)
	st, err := cl.NewStream(context.Background(), sv.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	if _, err := st.Write(Request{Root: root}.marshal()); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the server sent a whole 24 MiB DAG to a reader that read nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server still writes to a reader that stopped")
	}
	if n := srv.Streams(); n != 0 {
		t.Fatalf("%d streams still counted", n)
	}
}

// heldGate lets budget bytes through, then holds until more budget is
// given (as the credit window does until a receipt pays).
type heldGate struct {
	mu     chan struct{} // a one-slot lock
	budget int
	held   chan struct{} // gets a value at every Hold
	sent   int
}

func newHeldGate(budget int) *heldGate {
	g := &heldGate{mu: make(chan struct{}, 1), budget: budget, held: make(chan struct{}, 1024)}
	return g
}

func (g *heldGate) Allow(_ peer.ID, _ cid.Cid, size int) bool {
	g.mu <- struct{}{}
	defer func() { <-g.mu }()
	if size > g.budget {
		select {
		case g.held <- struct{}{}:
		default:
		}
		return false
	}
	g.budget -= size
	g.sent += size
	return true
}

func (g *heldGate) give(n int) {
	g.mu <- struct{}{}
	g.budget += n
	<-g.mu
}

var _ bitswap.Gate = (*heldGate)(nil)

// The server asks the gate before each block, waits while it holds, and
// goes on after Release; the client gets everything, once.
func TestGateHoldsUntilRelease(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 100<<10, 8)
	order := walkOrder(t, bs, Request{Root: root})
	total := 0
	for _, b := range order {
		total += len(b.RawData())
	}
	g := newHeldGate(total / 2)
	srv, _ := NewServer(bs, always, WithGate(g))
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	sink := &memSink{}
	got := make(chan error, 1)
	go func() {
		_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, sink, nil)
		got <- err
	}()
	select {
	case <-g.held:
	case err := <-got:
		t.Fatalf("the Get ended (%v) before the gate held", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the gate never held")
	}
	g.give(total)
	srv.Release(cl.ID())
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not go on after Release")
	}
	sameBlocks(t, sink.blocks(), order)
	if g.sent != total {
		t.Fatalf("the gate let %d bytes through, the DAG has %d", g.sent, total)
	}
}

// A gate that holds past the hold timeout ends the stream with Denied.
func TestGateHeldTooLong(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 100<<10, 9)
	srv, _ := NewServer(bs, always, WithGate(newHeldGate(10<<10)), WithTimeouts(time.Second, 200*time.Millisecond))
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, &memSink{}, nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != Denied || re.Blocks == 0 {
		t.Fatalf("got %v, want Denied after some blocks", err)
	}
}

// Past the per-peer stream limit the server answers Busy.
func TestStreamLimit(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 100<<10, 10)
	g := newHeldGate(0)
	srv, _ := NewServer(bs, always, WithGate(g), WithStreamLimits(1, 4))
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := cli.Get(ctx, sv.ID(), Request{Root: root}, &memSink{}, nil)
		first <- err
	}()
	select {
	case <-g.held: // the first stream is being served
	case <-time.After(10 * time.Second):
		t.Fatal("the first stream never reached the gate")
	}
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, &memSink{}, nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != Busy {
		t.Fatalf("second stream: %v, want Busy", err)
	}
	cancel()
	<-first
}

// A sink error ends the Get with it.
func TestSinkError(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 100<<10, 11)
	srv, _ := NewServer(bs, always)
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	_, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, &memSink{err: errSinkFull}, nil)
	if !errors.Is(err, errSinkFull) {
		t.Fatalf("got %v, want the sink's error", err)
	}
}

// A client that gives up while the gate holds its next block frees its
// stream at once, not after the hold timeout.
func TestClientResetEndsHeldStream(t *testing.T) {
	cl, sv := pair(t)
	bs := newStore()
	_, root := testFile(t, bs, 100<<10, 12)
	g := newHeldGate(0)
	done := make(chan error, 1)
	srv, _ := NewServer(bs, always, WithGate(g), WithTimeouts(time.Minute, time.Hour),
		WithStreamDone(func(_ peer.ID, err error) { done <- err }))
	serve(t, sv, srv)
	cli, _ := NewClient(cl)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := cli.Get(ctx, sv.ID(), Request{Root: root}, &memSink{}, nil)
		got <- err
	}()
	select {
	case <-g.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the gate never held")
	}
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want canceled", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stream ended as if complete")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server still holds the stream of a client that left")
	}
}
