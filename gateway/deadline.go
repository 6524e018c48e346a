package gateway

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// deadlineWriter bounds how long a response may wait on its reader, on
// every path (the local fast path and boxo's handler write through it).
// A write to a client that does not read blocks once the socket buffers
// are full, and with no deadline it blocks forever, holding a gateway slot
// and the client's share of the per-client cap: a few hundred such readers
// took every slot of a gateway. So before each write (and flush) it sets
// the connection's write deadline to
//
//	now + min(WriteTimeout, WriteTimeout + (sent+len(p))/MinSendRate - blocked)
//
// where sent is the bytes written so far and blocked the time spent inside
// writes so far. The first term cuts a reader that stops for WriteTimeout;
// the second one that trickles (reads a few bytes a second, just enough to
// finish each write in time) once it falls below MinSendRate on average.
// Only the time blocked in writes counts, never the time the gateway itself
// spends fetching blocks, so a slow box never cuts a fast client. A write
// that misses the deadline fails, net/http closes the connection, the
// handler returns and its slot is free.
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	minRate  float64 // bytes per second; 0: no rate rule
	sent     int64
	blocked  time.Duration
	noDL     bool   // the writer has no connection deadlines (a recorder)
	expired  bool   // a write hit the deadline (reported once)
	onExpire func() // called at the first write that hit the deadline
	now      func() time.Time
}

// newDeadlineWriter arms the deadline for the response's first bytes (its
// header, when it has no body). now is the clock (time.Now).
func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration, minRate float64, now func() time.Time, onExpire func()) *deadlineWriter {
	d := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout, minRate: minRate,
		onExpire: onExpire, now: now}
	d.arm(d.now(), 0)
	return d
}

// arm sets the deadline for writing n more bytes from now.
func (d *deadlineWriter) arm(now time.Time, n int) {
	if d.noDL {
		return
	}
	wait := d.timeout
	if d.minRate > 0 {
		allowed := d.timeout + time.Duration(float64(d.sent+int64(n))/d.minRate*float64(time.Second))
		wait = min(wait, allowed-d.blocked)
	}
	if err := d.rc.SetWriteDeadline(now.Add(wait)); errors.Is(err, http.ErrNotSupported) {
		d.noDL = true
	}
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	start := d.now()
	d.arm(start, len(p))
	k, err := d.ResponseWriter.Write(p)
	d.blocked += d.now().Sub(start)
	d.sent += int64(k)
	d.check(err)
	return k, err
}

func (d *deadlineWriter) Flush() {
	start := d.now()
	d.arm(start, 0)
	err := d.rc.Flush()
	d.blocked += d.now().Sub(start)
	d.check(err)
}

// finish re-arms the deadline for what net/http writes after the handler
// returns (the buffered tail, the last chunk): a deadline left in the past
// would fail it, one left unset would let a reader hold the connection.
func (d *deadlineWriter) finish() { d.arm(d.now(), 0) }

func (d *deadlineWriter) check(err error) {
	if err != nil && !d.expired && errors.Is(err, os.ErrDeadlineExceeded) {
		d.expired = true
		if d.onExpire != nil {
			d.onExpire()
		}
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// fileSender sends n bytes of a file from its offset to the client with
// sendfile, through the same rules as Write. It fails with errNoSendFile,
// having sent nothing, when the writer beneath cannot take a file (a
// recorder, HTTP/2).
type fileSender interface {
	sendFile(f *os.File, n int64) (int64, error)
}

var errNoSendFile = errors.New("gateway: the response writer cannot send a file")

// sendFile hands the file to net/http's response, whose ReadFrom sends it
// with sendfile on a TCP connection (and copies it on any other), under
// the deadline for n more bytes.
func (d *deadlineWriter) sendFile(f *os.File, n int64) (int64, error) {
	rf, ok := d.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return 0, errNoSendFile
	}
	start := d.now()
	d.arm(start, int(n))
	k, err := rf.ReadFrom(&io.LimitedReader{R: f, N: n})
	d.blocked += d.now().Sub(start)
	d.sent += k
	d.check(err)
	if err == nil && k < n {
		err = io.ErrUnexpectedEOF // the file is shorter than its record said
	}
	return k, err
}
