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
	// reasonMark opens a refusal that carries its reason code: 0, the
	// code's length (one byte), the code, then the text. Text never
	// starts with a NUL, so a refusal without the mark (from a build
	// before codes) still reads, as text with no code; and such a build
	// reading a coded refusal shows the code in its text.
	reasonMark = 0
	maxReason  = 64
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

// WriteResponse writes the countersigned receipt, or the refusal when
// refusal is not nil: its reason code (ReasonOf) and its text.
func WriteResponse(w io.Writer, r *Receipt, refusal error) error {
	if refusal != nil {
		code := string(ReasonOf(refusal))
		if len(code) > maxReason {
			code = ""
		}
		msg := append([]byte{reasonMark, byte(len(code))}, code...)
		msg = append(msg, refusal.Error()...)
		if len(msg) > maxErrorLen {
			msg = msg[:maxErrorLen]
		}
		if _, err := w.Write([]byte{statusRejected}); err != nil {
			return err
		}
		return writeFrame(w, msg)
	}
	if _, err := w.Write([]byte{statusOK}); err != nil {
		return err
	}
	return writeFrame(w, r.Marshal())
}

// ErrRefused is a server's refusal to countersign.
var ErrRefused = errors.New("pod: server refused the receipt")

// RefusedError is a server's refusal as a client reads it: the reason
// code the server sent ("" from a server that sends none) and its text.
// It wraps ErrRefused, and ReasonOf returns its reason.
type RefusedError struct {
	Reason Reason
	Text   string
}

func (e *RefusedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%v: %s", ErrRefused, e.Text)
	}
	return fmt.Sprintf("%v (%s): %s", ErrRefused, e.Reason, e.Text)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// ReadResponse reads what WriteResponse wrote: the countersigned receipt, or
// a *RefusedError.
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
		return nil, parseRefusal(b)
	}
	return nil, fmt.Errorf("%w: response status %d", ErrMalformed, status)
}

// parseRefusal reads a refusal's frame. A reason code the client does not
// know is kept as sent: a newer server may have rules this build lacks.
func parseRefusal(b []byte) error {
	if len(b) < 2 || b[0] != reasonMark {
		return &RefusedError{Text: string(b)}
	}
	n := int(b[1])
	if n > maxReason || len(b) < 2+n {
		return fmt.Errorf("%w: refusal with a reason code of %d bytes in %d", ErrMalformed, n, len(b))
	}
	return &RefusedError{Reason: Reason(b[2 : 2+n]), Text: string(b[2+n:])}
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
