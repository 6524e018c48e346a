package gateway

import (
	"context"
	"net/http"

	"github.com/ipfs/go-cid"
)

// LocalDAGs is implemented by a backend that knows which DAGs it holds
// whole: requests for those are CPU work (reading, encoding, hashing a
// CAR or a listing), not waits on the network, and take a CPU permit.
type LocalDAGs interface {
	Complete(ctx context.Context, root cid.Cid) bool
}

// permitWriter holds one of the gateway's CPU permits while boxo's handler
// computes a response from local blocks, and gives it back while a write
// waits on the client: a slow reader of a large CAR must not hold the
// permit that the next request needs. With permits fewer than the cores,
// a handful of expensive requests (a CAR of a huge directory, a deep
// chain) leaves a core to the cheap ones: the local fast path takes no
// permit.
type permitWriter struct {
	http.ResponseWriter
	permits chan struct{}
	ctx     context.Context
	held    bool
}

// acquire waits for a permit, or for the request to end.
func (p *permitWriter) acquire() error {
	if p.held {
		return nil
	}
	select {
	case p.permits <- struct{}{}:
		p.held = true
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

func (p *permitWriter) release() {
	if p.held {
		<-p.permits
		p.held = false
	}
}

func (p *permitWriter) Write(b []byte) (int, error) {
	p.release()
	n, err := p.ResponseWriter.Write(b)
	if aerr := p.acquire(); err == nil {
		err = aerr
	}
	return n, err
}

func (p *permitWriter) Flush() {
	p.release()
	_ = http.NewResponseController(p.ResponseWriter).Flush()
	_ = p.acquire()
}

// Unwrap lets http.ResponseController reach the connection.
func (p *permitWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
