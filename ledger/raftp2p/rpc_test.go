package raftp2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pair is two transports on connected hosts; b's Raft is played by the
// test through b's consumer.
func pair(t *testing.T, opts ...Option) (a, b *Transport, ha, hb host.Host) {
	t.Helper()
	ha, hb = newHost(t), newHost(t)
	t.Cleanup(func() { _ = ha.Close(); _ = hb.Close() })
	ha.Peerstore().AddAddrs(hb.ID(), hb.Addrs(), time.Hour)
	hb.Peerstore().AddAddrs(ha.ID(), ha.Addrs(), time.Hour)
	a, b = NewTransport(ha, WithTimeout(5*time.Second)), NewTransport(hb, append([]Option{WithTimeout(5 * time.Second)}, opts...)...)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b, ha, hb
}

// answer serves n requests on tr's consumer with fn and returns what it saw.
func answer(tr *Transport, n int, fn func(rpc raft.RPC) (any, error)) <-chan []raft.RPC {
	out := make(chan []raft.RPC, 1)
	go func() {
		var seen []raft.RPC
		defer func() { out <- seen }()
		for i := 0; i < n; i++ {
			select {
			case rpc := <-tr.Consumer():
				seen = append(seen, rpc)
				rpc.Respond(fn(rpc))
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	return out
}

func TestTransportCarriesEveryRPC(t *testing.T) {
	a, b, _, hb := pair(t)
	target := raft.ServerAddress(hb.ID().String())
	r := rand.New(rand.NewSource(2))
	app := randAppend(r, 100)
	// One entry of several megabytes, read through many buffer fills.
	big := make([]byte, 5<<20+7)
	r.Read(big)
	app.Entries = append(app.Entries, &raft.Log{Index: 9, Term: 2, Type: raft.LogCommand, Data: big})
	app.PrevLogEntry = 1 // not a heartbeat
	vote := &raft.RequestVoteRequest{RPCHeader: randHeader(r), Term: 7, Candidate: []byte("c"), LastLogIndex: 3, LastLogTerm: 2}
	pre := &raft.RequestPreVoteRequest{RPCHeader: randHeader(r), Term: 8, LastLogIndex: 4, LastLogTerm: 3}
	now := &raft.TimeoutNowRequest{RPCHeader: randHeader(r)}
	snapData := bytes.Repeat([]byte("snapshot"), 100000)
	snap := &raft.InstallSnapshotRequest{RPCHeader: randHeader(r), SnapshotVersion: 1, Term: 9, LastLogIndex: 10, LastLogTerm: 9,
		Configuration: []byte("conf"), ConfigurationIndex: 5, Size: int64(len(snapData))}

	var gotSnap []byte
	seen := answer(b, 6, func(rpc raft.RPC) (any, error) {
		switch req := rpc.Command.(type) {
		case *raft.AppendEntriesRequest:
			return &raft.AppendEntriesResponse{Term: req.Term, LastLog: 42, Success: true}, nil
		case *raft.RequestVoteRequest:
			return &raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil
		case *raft.RequestPreVoteRequest:
			return &raft.RequestPreVoteResponse{Term: req.Term, Granted: true}, nil
		case *raft.TimeoutNowRequest:
			return nil, errors.New("refused for the test")
		case *raft.InstallSnapshotRequest:
			var err error
			gotSnap, err = io.ReadAll(rpc.Reader)
			return &raft.InstallSnapshotResponse{Term: req.Term, Success: err == nil}, err
		}
		return nil, errors.New("unexpected request")
	})

	var ar raft.AppendEntriesResponse
	if err := a.AppendEntries("b", target, app, &ar); err != nil {
		t.Fatal(err)
	}
	if !ar.Success || ar.LastLog != 42 || ar.Term != app.Term {
		t.Fatalf("append response %+v", ar)
	}
	var vr raft.RequestVoteResponse
	if err := a.RequestVote("b", target, vote, &vr); err != nil || !vr.Granted || vr.Term != 7 {
		t.Fatalf("vote: %v %+v", err, vr)
	}
	var pr raft.RequestPreVoteResponse
	if err := a.RequestPreVote("b", target, pre, &pr); err != nil || !pr.Granted || pr.Term != 8 {
		t.Fatalf("pre-vote: %v %+v", err, pr)
	}
	var nr raft.TimeoutNowResponse
	var remote RemoteError
	if err := a.TimeoutNow("b", target, now, &nr); !errors.As(err, &remote) || remote != "refused for the test" {
		t.Fatalf("timeout now: got %v, want the remote error", err)
	}
	var sr raft.InstallSnapshotResponse
	if err := a.InstallSnapshot("b", target, snap, &sr, bytes.NewReader(snapData)); err != nil || !sr.Success {
		t.Fatalf("snapshot: %v %+v", err, sr)
	}
	if !bytes.Equal(gotSnap, snapData) {
		t.Fatalf("snapshot arrived with %d of %d bytes", len(gotSnap), len(snapData))
	}
	// The stream that answered with an error is reused.
	if err := a.RequestVote("b", target, vote, &vr); err != nil {
		t.Fatal(err)
	}

	rpcs := <-seen
	if len(rpcs) != 6 {
		t.Fatalf("b's Raft saw %d requests, want 6", len(rpcs))
	}
	gotApp := rpcs[0].Command.(*raft.AppendEntriesRequest)
	for i, e := range gotApp.Entries {
		w := app.Entries[i]
		if e.Index != w.Index || e.Term != w.Term || e.Type != w.Type || !bytes.Equal(e.Data, w.Data) ||
			!bytes.Equal(e.Extensions, w.Extensions) || !e.AppendedAt.Equal(w.AppendedAt) {
			t.Fatalf("entry %d arrived changed", i)
		}
	}
	if len(gotApp.Entries) != len(app.Entries) || gotApp.Term != app.Term || gotApp.LeaderCommitIndex != app.LeaderCommitIndex {
		t.Fatalf("append arrived changed")
	}
	for i, want := range []any{vote, pre, now} {
		if got := rpcs[i+1].Command; !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d arrived as %+v, want %+v", i+1, got, want)
		}
	}
}

func TestTransportPipelineAnswersInOrder(t *testing.T) {
	a, b, _, hb := pair(t)
	const n = 300
	seen := answer(b, n, func(rpc raft.RPC) (any, error) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		return &raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry, Success: true}, nil
	})
	p, err := a.AppendEntriesPipeline("b", raft.ServerAddress(hb.ID().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			req := &raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i), Entries: []*raft.Log{{Index: uint64(i), Data: bytes.Repeat([]byte{byte(i)}, i*100)}}}
			if _, err := p.AppendEntries(req, &raft.AppendEntriesResponse{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 1; i <= n; i++ {
		select {
		case f := <-p.Consumer():
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
			if f.Request().PrevLogEntry != uint64(i) || f.Response().LastLog != uint64(i) {
				t.Fatalf("answer %d: request %d, response %d", i, f.Request().PrevLogEntry, f.Response().LastLog)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer %d within 10s", i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, rpc := range <-seen {
		e := rpc.Command.(*raft.AppendEntriesRequest).Entries[0]
		if !bytes.Equal(e.Data, bytes.Repeat([]byte{byte(i + 1)}, (i+1)*100)) {
			t.Fatalf("entry %d arrived changed", i+1)
		}
	}
}

func TestTransportHeartbeatSkipsTheQueue(t *testing.T) {
	a, b, _, hb := pair(t)
	beats := make(chan raft.RPC, 1)
	b.SetHeartbeatHandler(func(rpc raft.RPC) {
		beats <- rpc
		rpc.Respond(&raft.AppendEntriesResponse{Term: 3, Success: true}, nil)
	})
	// Nobody reads b's consumer: a heartbeat is answered all the same.
	beat := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte("leader")}, Term: 3}
	var resp raft.AppendEntriesResponse
	if err := a.AppendEntries("b", raft.ServerAddress(hb.ID().String()), beat, &resp); err != nil || !resp.Success {
		t.Fatalf("heartbeat: %v %+v", err, resp)
	}
	select {
	case <-beats:
	default:
		t.Fatal("the heartbeat handler did not see the heartbeat")
	}
}

func TestTransportRefusesStrangersAndGarbage(t *testing.T) {
	var member peer.ID
	a, b, ha, hb := pair(t, WithAllow(func(p peer.ID) bool { return p == member }))
	target := raft.ServerAddress(hb.ID().String())
	vote := &raft.RequestVoteRequest{Term: 1}
	// a is not a member yet: its request is refused and b's Raft sees nothing.
	if err := a.RequestVote("b", target, vote, &raft.RequestVoteResponse{}); err == nil {
		t.Fatal("a stranger's vote request was answered")
	}
	select {
	case rpc := <-b.Consumer():
		t.Fatalf("b's Raft saw %T from a stranger", rpc.Command)
	default:
	}

	member = ha.ID()
	// Garbage on a raw stream: b drops that stream and serves the next.
	s, err := ha.NewStream(context.Background(), hb.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte{3, msgVote, 0xff, 0xff})
	_ = s.CloseWrite()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("b answered a malformed request")
	}
	seen := answer(b, 1, func(rpc raft.RPC) (any, error) { return &raft.RequestVoteResponse{Term: 1, Granted: true}, nil })
	var vr raft.RequestVoteResponse
	if err := a.RequestVote("b", target, vote, &vr); err != nil || !vr.Granted {
		t.Fatalf("after garbage: %v %+v", err, vr)
	}
	<-seen
}

func TestTransportClose(t *testing.T) {
	a, b, _, hb := pair(t)
	target := raft.ServerAddress(hb.ID().String())
	// A request b's Raft never answers fails when b closes.
	failsOnClose(t, a, b, target, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.RequestVote("b", target, &raft.RequestVoteRequest{}, &raft.RequestVoteResponse{}); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("after close: got %v", err)
	}
	if _, err := a.AppendEntriesPipeline("b", target); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("pipeline after close: got %v", err)
	}
}

// A call still waiting for its answer when its own transport closes fails
// then, not at its deadline: Raft waits for its calls when it shuts down.
func TestTransportCloseEndsCallsInFlight(t *testing.T) {
	a, b, _, hb := pair(t)
	target := raft.ServerAddress(hb.ID().String())
	a.timeout = time.Minute
	failsOnClose(t, a, b, target, a)
}

// failsOnClose sends a vote request from a that b's Raft never answers,
// closes closing, and wants the request to fail within 10 s.
func failsOnClose(t *testing.T, a, b *Transport, target raft.ServerAddress, closing *Transport) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		errc <- a.RequestVote("b", target, &raft.RequestVoteRequest{Term: 1}, &raft.RequestVoteResponse{})
	}()
	select {
	case <-b.Consumer():
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not arrive")
	}
	if err := closing.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("an unanswered request succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request waited on after a transport closed")
	}
}
