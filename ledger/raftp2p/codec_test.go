package raftp2p

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/orecdn/ore/internal/wire"
)

// randBytes returns nil or a random run of up to max bytes: the decoder
// gives nil for an empty field, so the generator never makes an empty
// non-nil one.
func randBytes(r *rand.Rand, max int) []byte {
	n := r.Intn(max + 1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	r.Read(b)
	return b
}

func randHeader(r *rand.Rand) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(r.Intn(4)), ID: randBytes(r, 60), Addr: randBytes(r, 60)}
}

func randTime(r *rand.Rand) time.Time {
	if r.Intn(3) == 0 {
		return time.Time{}
	}
	return time.Unix(0, r.Int63())
}

func randAppend(r *rand.Rand, maxData int) *raft.AppendEntriesRequest {
	req := &raft.AppendEntriesRequest{
		RPCHeader: randHeader(r), Term: r.Uint64(), Leader: randBytes(r, 40),
		PrevLogEntry: r.Uint64(), PrevLogTerm: r.Uint64(), LeaderCommitIndex: r.Uint64(),
	}
	for i := r.Intn(5); i > 0; i-- {
		req.Entries = append(req.Entries, &raft.Log{
			Index: r.Uint64(), Term: r.Uint64(), Type: raft.LogType(r.Intn(7)),
			Data: randBytes(r, maxData), Extensions: randBytes(r, 20), AppendedAt: randTime(r),
		})
	}
	return req
}

// TestCodecRoundTrips encodes random values of every message and decodes
// them back.
func TestCodecRoundTrips(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	decode := func(t *testing.T, b []byte, want byte) *wire.Decoder {
		t.Helper()
		d := wire.NewDecoder(b, ErrMalformed)
		if got := d.Byte("type"); got != want {
			t.Fatalf("type %d, want %d", got, want)
		}
		return d
	}
	same := func(t *testing.T, d *wire.Decoder, got, want any) {
		t.Helper()
		if err := d.End(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
		}
	}
	for i := 0; i < 300; i++ {
		app := randAppend(r, 3000)
		var stream bytes.Buffer
		w := bufio.NewWriter(&stream)
		if err := writeEntryData(w, app.Entries); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		d := decode(t, appendAppendRequest(nil, app), msgAppend)
		got, sizes := readAppendRequest(d)
		if err := readEntryData(&stream, got.Entries, sizes); err != nil {
			t.Fatal(err)
		}
		if stream.Len() != 0 {
			t.Fatalf("%d entry bytes left unread", stream.Len())
		}
		for _, e := range got.Entries { // times decode without a location or monotonic reading
			if !e.AppendedAt.IsZero() {
				e.AppendedAt = e.AppendedAt.In(time.Local)
			}
		}
		for _, e := range app.Entries {
			if !e.AppendedAt.IsZero() {
				e.AppendedAt = e.AppendedAt.In(time.Local)
			}
		}
		same(t, d, got, app)

		vote := &raft.RequestVoteRequest{RPCHeader: randHeader(r), Term: r.Uint64(), Candidate: randBytes(r, 40),
			LastLogIndex: r.Uint64(), LastLogTerm: r.Uint64(), LeadershipTransfer: r.Intn(2) == 0}
		d = decode(t, appendVoteRequest(nil, vote), msgVote)
		same(t, d, readVoteRequest(d), vote)

		pre := &raft.RequestPreVoteRequest{RPCHeader: randHeader(r), Term: r.Uint64(), LastLogIndex: r.Uint64(), LastLogTerm: r.Uint64()}
		d = decode(t, appendPreVoteRequest(nil, pre), msgPreVote)
		same(t, d, readPreVoteRequest(d), pre)

		snap := &raft.InstallSnapshotRequest{RPCHeader: randHeader(r), SnapshotVersion: raft.SnapshotVersion(r.Intn(3)),
			Term: r.Uint64(), Leader: randBytes(r, 40), LastLogIndex: r.Uint64(), LastLogTerm: r.Uint64(),
			Peers: randBytes(r, 100), Configuration: randBytes(r, 300), ConfigurationIndex: r.Uint64(), Size: r.Int63()}
		d = decode(t, appendSnapshotRequest(nil, snap), msgSnapshot)
		same(t, d, readSnapshotRequest(d), snap)

		now := &raft.TimeoutNowRequest{RPCHeader: randHeader(r)}
		d = decode(t, appendTimeoutNowRequest(nil, now), msgTimeoutNow)
		same(t, d, readTimeoutNowRequest(d), now)

		responses := []any{
			&raft.AppendEntriesResponse{RPCHeader: randHeader(r), Term: r.Uint64(), LastLog: r.Uint64(), Success: r.Intn(2) == 0, NoRetryBackoff: r.Intn(2) == 0},
			&raft.RequestVoteResponse{RPCHeader: randHeader(r), Term: r.Uint64(), Peers: randBytes(r, 100), Granted: r.Intn(2) == 0},
			&raft.RequestPreVoteResponse{RPCHeader: randHeader(r), Term: r.Uint64(), Granted: r.Intn(2) == 0},
			&raft.InstallSnapshotResponse{RPCHeader: randHeader(r), Term: r.Uint64(), Success: r.Intn(2) == 0},
			&raft.TimeoutNowResponse{RPCHeader: randHeader(r)},
		}
		for _, want := range responses {
			b, err := appendResponse(nil, raft.RPCResponse{Response: want})
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(want).Elem()).Interface()
			err = readResponse(b, func(d *wire.Decoder) {
				switch g := got.(type) {
				case *raft.AppendEntriesResponse:
					readAppendResponse(d, g)
				case *raft.RequestVoteResponse:
					readVoteResponse(d, g)
				case *raft.RequestPreVoteResponse:
					readPreVoteResponse(d, g)
				case *raft.InstallSnapshotResponse:
					readSnapshotResponse(d, g)
				case *raft.TimeoutNowResponse:
					readTimeoutNowResponse(d, g)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
		}
	}
}

func TestCodecErrorsAndLimits(t *testing.T) {
	b, err := appendResponse(nil, raft.RPCResponse{Error: errors.New("not the leader")})
	if err != nil {
		t.Fatal(err)
	}
	var remote RemoteError
	if err := readResponse(b, func(*wire.Decoder) { t.Fatal("decoded an error as a response") }); !errors.As(err, &remote) || remote != "not the leader" {
		t.Fatalf("got %v, want the remote error", err)
	}
	if _, err := appendResponse(nil, raft.RPCResponse{Response: "what"}); err == nil {
		t.Fatal("encoded an unknown response type")
	}

	// A frame that claims an entry over the limit is refused before any
	// data is read; so are truncated frames and unknown statuses.
	big := &raft.AppendEntriesRequest{Entries: []*raft.Log{{Index: 1}}}
	frame := appendAppendRequest(nil, big)
	frame = append(frame[:len(frame)-1], 0x80, 0x80, 0x80, 0x40) // size 128 MiB
	d := wire.NewDecoder(frame[1:], ErrMalformed)
	readAppendRequest(d)
	if err := d.End(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("entry over the limit: got %v", err)
	}
	ok := appendVoteRequest(nil, &raft.RequestVoteRequest{Term: 3, Candidate: []byte("c")})
	for cut := 1; cut < len(ok); cut++ {
		d := wire.NewDecoder(ok[1:cut], ErrMalformed)
		readVoteRequest(d)
		if err := d.End(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("vote cut at %d: got %v", cut, err)
		}
	}
	if err := readResponse([]byte{7}, func(*wire.Decoder) {}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown status: got %v", err)
	}
	bad := appendPreVoteResponse([]byte{respOK}, &raft.RequestPreVoteResponse{Granted: true})
	bad[len(bad)-1] = 2
	if err := readResponse(bad, func(d *wire.Decoder) { readPreVoteResponse(d, &raft.RequestPreVoteResponse{}) }); !errors.Is(err, ErrMalformed) {
		t.Fatalf("boolean 2: got %v", err)
	}
}
