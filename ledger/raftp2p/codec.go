package raftp2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/hashicorp/raft"

	"github.com/orecdn/ore/internal/wire"
)

// The messages of /ore/raft/1.0.0. A request is a frame whose first byte
// names the RPC; an AppendEntries frame lists its entries' metadata and is
// followed on the stream by each entry's data, raw; an InstallSnapshot frame
// is followed by the snapshot's Size bytes. A response is a frame whose first
// byte is respOK (the response's fields follow) or respErr (an error text).
// A frame is a uvarint length and that many bytes.
//
// Entry data travels outside the frame so that a block of tens of megabytes
// is read once into a buffer of its exact size: Raft's own transport decodes
// it with msgpack in 256 KiB steps, copying what it has read at every step.
const (
	msgAppend     byte = 1
	msgVote       byte = 2
	msgPreVote    byte = 3
	msgSnapshot   byte = 4
	msgTimeoutNow byte = 5

	respOK  byte = 0
	respErr byte = 1
)

const (
	// maxFrame bounds a frame: headers, entry metadata, configurations.
	maxFrame = 16 << 20
	// maxEntries bounds the entries of one AppendEntries (Raft sends at
	// most MaxAppendEntries, which it caps at 1024).
	maxEntries = 1 << 12
	// MaxEntryData bounds one log entry's data. The committee's log store
	// (raft-wal) takes entries up to 64 MiB.
	MaxEntryData = 64 << 20
	// maxField bounds a byte field of a header (IDs, addresses, the
	// deprecated peer lists, errors).
	maxField = 1 << 16
)

// ErrMalformed is wrapped by every error about a message that does not
// decode: the stream it came on is dropped.
var ErrMalformed = errors.New("raftp2p: malformed message")

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func readBool(d *wire.Decoder, what string) bool {
	switch d.Byte(what) {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Failf("%s is not a boolean", what)
		return false
	}
}

func appendRPCHeader(b []byte, h raft.RPCHeader) []byte {
	b = binary.AppendUvarint(b, uint64(h.ProtocolVersion))
	b = wire.AppendBytes(b, h.ID)
	return wire.AppendBytes(b, h.Addr)
}

func readRPCHeader(d *wire.Decoder) raft.RPCHeader {
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersion(d.Uvarint("protocol version")),
		ID:              d.Bytes(maxField, "server ID"),
		Addr:            d.Bytes(maxField, "server address"),
	}
}

// appendTime writes a time as a presence byte and its Unix nanoseconds.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.BigEndian.AppendUint64(append(b, 1), uint64(t.UnixNano()))
}

func readTime(d *wire.Decoder, what string) time.Time {
	if !readBool(d, what) {
		return time.Time{}
	}
	return time.Unix(0, int64(d.Uint64(what)))
}

// appendAppendRequest encodes an AppendEntries request's frame; the
// entries' data follow it on the stream (writeEntryData).
func appendAppendRequest(b []byte, r *raft.AppendEntriesRequest) []byte {
	b = append(b, msgAppend)
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = wire.AppendBytes(b, r.Leader)
	b = binary.AppendUvarint(b, r.PrevLogEntry)
	b = binary.AppendUvarint(b, r.PrevLogTerm)
	b = binary.AppendUvarint(b, r.LeaderCommitIndex)
	b = binary.AppendUvarint(b, uint64(len(r.Entries)))
	for _, e := range r.Entries {
		b = binary.AppendUvarint(b, e.Index)
		b = binary.AppendUvarint(b, e.Term)
		b = append(b, byte(e.Type))
		b = wire.AppendBytes(b, e.Extensions)
		b = appendTime(b, e.AppendedAt)
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
	}
	return b
}

// readAppendRequest decodes an AppendEntries frame (after its type byte)
// and returns the length of each entry's data, still to be read.
func readAppendRequest(d *wire.Decoder) (*raft.AppendEntriesRequest, []int) {
	r := &raft.AppendEntriesRequest{
		RPCHeader:         readRPCHeader(d),
		Term:              d.Uvarint("term"),
		Leader:            d.Bytes(maxField, "leader"),
		PrevLogEntry:      d.Uvarint("previous log index"),
		PrevLogTerm:       d.Uvarint("previous log term"),
		LeaderCommitIndex: d.Uvarint("leader commit index"),
	}
	n := d.Count(maxEntries, "entries")
	if n == 0 {
		return r, nil
	}
	r.Entries = make([]*raft.Log, n)
	sizes := make([]int, n)
	for i := range r.Entries {
		e := &raft.Log{
			Index:      d.Uvarint("entry index"),
			Term:       d.Uvarint("entry term"),
			Type:       raft.LogType(d.Byte("entry type")),
			Extensions: d.Bytes(maxFrame, "entry extensions"),
			AppendedAt: readTime(d, "entry time"),
		}
		size := d.Uvarint("entry size")
		if size > MaxEntryData {
			d.Failf("entry of %d bytes is over the %d-byte limit", size, MaxEntryData)
		}
		r.Entries[i], sizes[i] = e, int(size)
	}
	return r, sizes
}

// writeEntryData writes the entries' data after their frame.
func writeEntryData(w *bufio.Writer, entries []*raft.Log) error {
	for _, e := range entries {
		if _, err := w.Write(e.Data); err != nil {
			return err
		}
	}
	return nil
}

// readEntryData reads each entry's data into a buffer of its size.
func readEntryData(r io.Reader, entries []*raft.Log, sizes []int) error {
	for i, e := range entries {
		if sizes[i] == 0 {
			continue
		}
		e.Data = make([]byte, sizes[i])
		if _, err := io.ReadFull(r, e.Data); err != nil {
			return fmt.Errorf("raftp2p: read entry %d data: %w", e.Index, err)
		}
	}
	return nil
}

func appendAppendResponse(b []byte, r *raft.AppendEntriesResponse) []byte {
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = binary.AppendUvarint(b, r.LastLog)
	b = appendBool(b, r.Success)
	return appendBool(b, r.NoRetryBackoff)
}

func readAppendResponse(d *wire.Decoder, r *raft.AppendEntriesResponse) {
	r.RPCHeader = readRPCHeader(d)
	r.Term = d.Uvarint("term")
	r.LastLog = d.Uvarint("last log")
	r.Success = readBool(d, "success")
	r.NoRetryBackoff = readBool(d, "no retry backoff")
}

func appendVoteRequest(b []byte, r *raft.RequestVoteRequest) []byte {
	b = append(b, msgVote)
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = wire.AppendBytes(b, r.Candidate)
	b = binary.AppendUvarint(b, r.LastLogIndex)
	b = binary.AppendUvarint(b, r.LastLogTerm)
	return appendBool(b, r.LeadershipTransfer)
}

func readVoteRequest(d *wire.Decoder) *raft.RequestVoteRequest {
	return &raft.RequestVoteRequest{
		RPCHeader:          readRPCHeader(d),
		Term:               d.Uvarint("term"),
		Candidate:          d.Bytes(maxField, "candidate"),
		LastLogIndex:       d.Uvarint("last log index"),
		LastLogTerm:        d.Uvarint("last log term"),
		LeadershipTransfer: readBool(d, "leadership transfer"),
	}
}

func appendVoteResponse(b []byte, r *raft.RequestVoteResponse) []byte {
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = wire.AppendBytes(b, r.Peers)
	return appendBool(b, r.Granted)
}

func readVoteResponse(d *wire.Decoder, r *raft.RequestVoteResponse) {
	r.RPCHeader = readRPCHeader(d)
	r.Term = d.Uvarint("term")
	r.Peers = d.Bytes(maxFrame, "peers")
	r.Granted = readBool(d, "granted")
}

func appendPreVoteRequest(b []byte, r *raft.RequestPreVoteRequest) []byte {
	b = append(b, msgPreVote)
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = binary.AppendUvarint(b, r.LastLogIndex)
	return binary.AppendUvarint(b, r.LastLogTerm)
}

func readPreVoteRequest(d *wire.Decoder) *raft.RequestPreVoteRequest {
	return &raft.RequestPreVoteRequest{
		RPCHeader:    readRPCHeader(d),
		Term:         d.Uvarint("term"),
		LastLogIndex: d.Uvarint("last log index"),
		LastLogTerm:  d.Uvarint("last log term"),
	}
}

// A pre-vote's answer and a snapshot's are the same on the wire: a
// header, a term and whether it was granted (or installed).
func appendTermAnswer(b []byte, h raft.RPCHeader, term uint64, ok bool) []byte {
	b = appendRPCHeader(b, h)
	b = binary.AppendUvarint(b, term)
	return appendBool(b, ok)
}

func readTermAnswer(d *wire.Decoder, what string) (raft.RPCHeader, uint64, bool) {
	h := readRPCHeader(d)
	term := d.Uvarint("term")
	return h, term, readBool(d, what)
}

func appendPreVoteResponse(b []byte, r *raft.RequestPreVoteResponse) []byte {
	return appendTermAnswer(b, r.RPCHeader, r.Term, r.Granted)
}

func readPreVoteResponse(d *wire.Decoder, r *raft.RequestPreVoteResponse) {
	r.RPCHeader, r.Term, r.Granted = readTermAnswer(d, "granted")
}

func appendSnapshotRequest(b []byte, r *raft.InstallSnapshotRequest) []byte {
	b = append(b, msgSnapshot)
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, uint64(r.SnapshotVersion))
	b = binary.AppendUvarint(b, r.Term)
	b = wire.AppendBytes(b, r.Leader)
	b = binary.AppendUvarint(b, r.LastLogIndex)
	b = binary.AppendUvarint(b, r.LastLogTerm)
	b = wire.AppendBytes(b, r.Peers)
	b = wire.AppendBytes(b, r.Configuration)
	b = binary.AppendUvarint(b, r.ConfigurationIndex)
	return binary.AppendUvarint(b, uint64(r.Size))
}

func readSnapshotRequest(d *wire.Decoder) *raft.InstallSnapshotRequest {
	r := &raft.InstallSnapshotRequest{
		RPCHeader:          readRPCHeader(d),
		SnapshotVersion:    raft.SnapshotVersion(d.Uvarint("snapshot version")),
		Term:               d.Uvarint("term"),
		Leader:             d.Bytes(maxField, "leader"),
		LastLogIndex:       d.Uvarint("last log index"),
		LastLogTerm:        d.Uvarint("last log term"),
		Peers:              d.Bytes(maxFrame, "peers"),
		Configuration:      d.Bytes(maxFrame, "configuration"),
		ConfigurationIndex: d.Uvarint("configuration index"),
	}
	size := d.Uvarint("snapshot size")
	if size > math.MaxInt64 {
		d.Failf("snapshot size %d", size)
	}
	r.Size = int64(size)
	return r
}

func appendSnapshotResponse(b []byte, r *raft.InstallSnapshotResponse) []byte {
	return appendTermAnswer(b, r.RPCHeader, r.Term, r.Success)
}

func readSnapshotResponse(d *wire.Decoder, r *raft.InstallSnapshotResponse) {
	r.RPCHeader, r.Term, r.Success = readTermAnswer(d, "success")
}

func appendTimeoutNowRequest(b []byte, r *raft.TimeoutNowRequest) []byte {
	return appendRPCHeader(append(b, msgTimeoutNow), r.RPCHeader)
}

func readTimeoutNowRequest(d *wire.Decoder) *raft.TimeoutNowRequest {
	return &raft.TimeoutNowRequest{RPCHeader: readRPCHeader(d)}
}

func appendTimeoutNowResponse(b []byte, r *raft.TimeoutNowResponse) []byte {
	return appendRPCHeader(b, r.RPCHeader)
}

func readTimeoutNowResponse(d *wire.Decoder, r *raft.TimeoutNowResponse) {
	r.RPCHeader = readRPCHeader(d)
}

// appendResponse encodes what the local Raft answered to a request.
func appendResponse(b []byte, resp raft.RPCResponse) ([]byte, error) {
	if resp.Error != nil {
		return wire.AppendBytes(append(b, respErr), []byte(truncate(resp.Error.Error()))), nil
	}
	b = append(b, respOK)
	switch r := resp.Response.(type) {
	case *raft.AppendEntriesResponse:
		return appendAppendResponse(b, r), nil
	case *raft.RequestVoteResponse:
		return appendVoteResponse(b, r), nil
	case *raft.RequestPreVoteResponse:
		return appendPreVoteResponse(b, r), nil
	case *raft.InstallSnapshotResponse:
		return appendSnapshotResponse(b, r), nil
	case *raft.TimeoutNowResponse:
		return appendTimeoutNowResponse(b, r), nil
	default:
		return nil, fmt.Errorf("raftp2p: raft answered with a %T, which this transport cannot send", resp.Response)
	}
}

func truncate(s string) string {
	if len(s) > maxField {
		return s[:maxField]
	}
	return s
}

// RemoteError is an error the other coordinator's Raft answered with.
type RemoteError string

func (e RemoteError) Error() string { return string(e) }

// readResponse decodes a response frame into the caller's response; an
// error answered by the other side comes back as a RemoteError.
func readResponse(frame []byte, decode func(*wire.Decoder)) error {
	d := wire.NewDecoder(frame, ErrMalformed)
	switch d.Byte("response status") {
	case respOK:
		decode(d)
	case respErr:
		msg := d.String(maxField, "error")
		if err := d.End(); err != nil {
			return err
		}
		return RemoteError(msg)
	default:
		d.Failf("unknown response status")
	}
	return d.End()
}
