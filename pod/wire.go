package pod

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolID is the libp2p protocol of the receipt exchange: the client
// writes a client-signed receipt; the server answers with the countersigned
// receipt or a refusal.
const ProtocolID = "/ore/pod/1.0.0"

const (
	statusOK       = 0
	statusRejected = 1
	maxErrorLen    = 512
)

// WriteRequest writes a client-signed receipt.
func WriteRequest(w io.Writer, r *Receipt) error {
	return writeFrame(w, r.Marshal())
}

// ReadRequest reads a receipt written by WriteRequest.
func ReadRequest(r io.Reader) (*Receipt, error) {
	b, err := readFrame(bufio.NewReader(r), MaxEncoded)
	if err != nil {
		return nil, err
	}
	return Unmarshal(b)
}

// WriteResponse writes the countersigned receipt, or the reason it was
// refused when refusal is not nil.
func WriteResponse(w io.Writer, r *Receipt, refusal error) error {
	if refusal != nil {
		msg := refusal.Error()
		if len(msg) > maxErrorLen {
			msg = msg[:maxErrorLen]
		}
		if _, err := w.Write([]byte{statusRejected}); err != nil {
			return err
		}
		return writeFrame(w, []byte(msg))
	}
	if _, err := w.Write([]byte{statusOK}); err != nil {
		return err
	}
	return writeFrame(w, r.Marshal())
}

// ErrRefused is a server's refusal to countersign.
var ErrRefused = errors.New("pod: server refused the receipt")

// ReadResponse reads what WriteResponse wrote: the countersigned receipt, or
// an error wrapping ErrRefused with the server's reason.
func ReadResponse(r io.Reader) (*Receipt, error) {
	br := bufio.NewReader(r)
	status, err := br.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("pod: read response: %w", err)
	}
	switch status {
	case statusOK:
		b, err := readFrame(br, MaxEncoded)
		if err != nil {
			return nil, err
		}
		return Unmarshal(b)
	case statusRejected:
		b, err := readFrame(br, maxErrorLen)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", ErrRefused, b)
	}
	return nil, fmt.Errorf("%w: response status %d", ErrMalformed, status)
}

func writeFrame(w io.Writer, b []byte) error {
	frame := binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen16), uint64(len(b)))
	_, err := w.Write(append(frame, b...))
	return err
}

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: frame length: %v", ErrMalformed, err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: frame of %d bytes, the limit is %d", ErrMalformed, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: frame: %v", ErrMalformed, err)
	}
	return b, nil
}
