package dagstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID names the bulk DAG protocol on libp2p streams.
const ProtocolID protocol.ID = "/ore/dag/1.0.0"

// Bounds of what crosses the wire.
const (
	// MaxBlockSize is the largest block a frame carries: bitswap's limit,
	// the most any IPFS tool puts in one block.
	MaxBlockSize = 2 << 20
	// MaxRequestSize bounds a request: a version, a CID (a few dozen
	// bytes; 128 for any hash function a box accepts) and a range.
	MaxRequestSize = 256
	wireVersion    = 1
)

// Code is a server's answer before the first block (Ok or why it refuses)
// and, in a stop frame, why it ends a stream before the DAG's last block.
type Code byte

// Codes on the wire.
const (
	Ok Code = iota
	// NotHeld: the server does not hold the whole DAG (the client asks
	// bitswap, which fetches from whoever holds each block).
	NotHeld
	// Busy: the server serves as many bulk streams as it allows, to this
	// client or to all.
	Busy
	// Denied: the server will not serve this content (its denylist, its
	// data cap) or will not serve this client more now (its send gate
	// refused, or held the next block past the hold timeout).
	Denied
	// BadRequest: the request was malformed.
	BadRequest
	// Missing: a block of the DAG is no longer in the server's store.
	Missing
	// TooLarge: the DAG passes a bound of the walk (links of a node,
	// blocks, pending links).
	TooLarge
	// Closing: the server shuts down.
	Closing
	numCodes
)

var codeNames = [...]string{"ok", "not held", "busy", "denied", "bad request", "block missing", "DAG too large", "closing"}

func (c Code) String() string {
	if c < numCodes {
		return codeNames[c]
	}
	return fmt.Sprintf("code %d", byte(c))
}

// Errors a client sees. A *RefusedError wraps ErrRefused; a *LieError
// wraps ErrLied.
var (
	// ErrRefused: the server answered, but will not (or no longer) send
	// the DAG. Nothing is wrong with it; bitswap fetches the rest.
	ErrRefused = errors.New("dagstream: refused")
	// ErrLied: the server sent bytes the DAG does not hold where it
	// does (a block that does not hash to the next CID, an oversize or
	// malformed frame, data past the DAG's last block). Drop the source.
	ErrLied = errors.New("dagstream: the server broke the protocol")
)

// RefusedError is a server's refusal, before or during the stream.
type RefusedError struct {
	Code   Code
	Blocks int64 // verified blocks that came before it
}

func (e *RefusedError) Error() string {
	if e.Blocks == 0 {
		return fmt.Sprintf("dagstream: the server refused: %s", e.Code)
	}
	return fmt.Sprintf("dagstream: the server stopped after %d blocks: %s", e.Blocks, e.Code)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// LieError says how a server broke the protocol.
type LieError struct {
	Blocks int64 // verified blocks that came before the lie
	Reason string
}

func (e *LieError) Error() string {
	return fmt.Sprintf("dagstream: the server lied after %d verified blocks: %s", e.Blocks, e.Reason)
}

func (e *LieError) Unwrap() error { return ErrLied }

// Request names a DAG and, optionally, the bytes of a file it wants.
//
// Length 0 asks for the whole DAG. Otherwise, below a UnixFS file node
// only the children that hold bytes of [Offset, Offset+Length) of that
// file are sent (and their inner nodes, which the client needs to verify
// them); every other node's children are all sent (see children).
type Request struct {
	Root   cid.Cid
	Offset uint64
	Length uint64
}

// span is the part of a node's bytes a walk wants: [off, end).
type span struct{ off, end uint64 }

var whole = span{0, math.MaxUint64}

func (r Request) span() span {
	if r.Length == 0 {
		return span{r.Offset, math.MaxUint64}
	}
	end := r.Offset + r.Length
	if end < r.Offset {
		end = math.MaxUint64
	}
	return span{r.Offset, end}
}

// marshal encodes r: uvarint size, then uvarint version, uvarint CID
// length, the CID, uvarint offset, uvarint length.
func (r Request) marshal() []byte {
	cb := r.Root.Bytes()
	body := binary.AppendUvarint(nil, wireVersion)
	body = binary.AppendUvarint(body, uint64(len(cb)))
	body = append(body, cb...)
	body = binary.AppendUvarint(body, r.Offset)
	body = binary.AppendUvarint(body, r.Length)
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

// readRequest reads and checks one request.
func readRequest(br *bufio.Reader) (Request, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return Request{}, fmt.Errorf("dagstream: read request size: %w", err)
	}
	if n == 0 || n > MaxRequestSize {
		return Request{}, fmt.Errorf("dagstream: request of %d bytes, want 1 to %d", n, MaxRequestSize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return Request{}, fmt.Errorf("dagstream: read request: %w", err)
	}
	field := func(name string) (uint64, error) {
		v, k := binary.Uvarint(body)
		if k <= 0 {
			return 0, fmt.Errorf("dagstream: request's %s is not a uvarint", name)
		}
		body = body[k:]
		return v, nil
	}
	v, err := field("version")
	if err != nil {
		return Request{}, err
	}
	if v != wireVersion {
		return Request{}, fmt.Errorf("dagstream: request version %d, this box speaks %d", v, wireVersion)
	}
	cl, err := field("CID length")
	if err != nil {
		return Request{}, err
	}
	if cl > uint64(len(body)) {
		return Request{}, fmt.Errorf("dagstream: request's CID of %d bytes overruns it", cl)
	}
	c, err := cid.Cast(body[:cl])
	if err != nil {
		return Request{}, fmt.Errorf("dagstream: request's CID: %w", err)
	}
	body = body[cl:]
	r := Request{Root: c}
	if r.Offset, err = field("offset"); err != nil {
		return Request{}, err
	}
	if r.Length, err = field("length"); err != nil {
		return Request{}, err
	}
	if len(body) != 0 {
		return Request{}, fmt.Errorf("dagstream: %d bytes after the request's fields", len(body))
	}
	return r, nil
}

// Frames after the status byte: uvarint(n+1) then n block bytes, or
// uvarint(0) then a Code (the server stops early). A stream that ends
// after the DAG's last block is complete.

func appendFrameHeader(b []byte, size int) []byte {
	return binary.AppendUvarint(b, uint64(size)+1)
}

func appendStop(b []byte, c Code) []byte {
	return append(binary.AppendUvarint(b, 0), byte(c))
}
