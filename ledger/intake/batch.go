package intake

import (
	"context"
	"errors"
	"time"

	"github.com/orecdn/ore/pod"
)

// Batching: concurrent validations wait at most batchWait for company, then
// their signatures are checked together; a failed batch is checked one by
// one to find the bad receipts.
const (
	batchMax  = 64
	batchWait = time.Millisecond
)

type verifyReq struct {
	r    *pod.Receipt
	resp chan error
}

type batcher struct {
	reqs    chan verifyReq
	stopped chan struct{} // closed when run returns: no answer will come
}

func newBatcher() *batcher {
	return &batcher{reqs: make(chan verifyReq, batchMax*4), stopped: make(chan struct{})}
}

var errStopped = errors.New("intake: closed")

func (b *batcher) verify(ctx context.Context, r *pod.Receipt) error {
	req := verifyReq{r: r, resp: make(chan error, 1)}
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stopped:
		return errStopped
	}
	select {
	case err := <-req.resp:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stopped:
		return errStopped
	}
}

func (b *batcher) run(ctx context.Context) {
	defer close(b.stopped)
	for {
		var batch []verifyReq
		select {
		case <-ctx.Done():
			return
		case req := <-b.reqs:
			batch = append(batch, req)
		}
		timer := time.NewTimer(batchWait)
	fill:
		for len(batch) < batchMax {
			select {
			case req := <-b.reqs:
				batch = append(batch, req)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
		timer.Stop()
		verifyBatch(batch)
	}
}

func verifyBatch(batch []verifyReq) {
	rs := make([]*pod.Receipt, len(batch))
	for i, req := range batch {
		rs[i] = req.r
	}
	if ok, err := pod.BatchVerify(rs); err == nil && ok {
		for _, req := range batch {
			req.resp <- nil
		}
		return
	}
	for _, req := range batch {
		err := req.r.VerifyClient()
		if err == nil {
			err = req.r.VerifyServer()
		}
		if err != nil {
			err = &pod.RejectError{Reason: sigReason(err), Err: err}
		}
		req.resp <- err
	}
}

func sigReason(err error) pod.Reason {
	if errors.Is(err, pod.ErrMissingSignature) {
		return pod.ReasonMissingSig
	}
	return pod.ReasonBadSig
}
