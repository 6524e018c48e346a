package bitswap

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/time/rate"
)

// WithUploadLimit caps the bytes per second the server sends, over all
// peers together: an operator lends idle bandwidth, not the whole uplink.
// Blocks wait their turn in bitswap's per-peer send queues (the server's
// outstanding-bytes bound applies backpressure), so the limit costs no
// memory. 0 means no limit.
func WithUploadLimit(bytesPerSecond int64) Option {
	return func(c *config) error {
		if bytesPerSecond < 0 {
			return fmt.Errorf("bitswap: upload limit must not be negative, got %d", bytesPerSecond)
		}
		c.uploadLimit = bytesPerSecond
		return nil
	}
}

// uploadBurst is the most bytes the limiter lets out at once: one message.
const uploadBurst = DefaultTargetMessageSize + 512<<10

// uplink meters outgoing block bytes with a token bucket.
type uplink struct {
	l *rate.Limiter

	mu     sync.Mutex
	credit int // bytes waited for but not sent (see refund)
}

func newUplink(bytesPerSecond int64) *uplink {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &uplink{l: rate.NewLimiter(rate.Limit(bytesPerSecond), uploadBurst)}
}

// wait blocks until n bytes may leave, or ctx ends.
func (u *uplink) wait(ctx context.Context, n int) error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	used := min(u.credit, n)
	u.credit -= used
	u.mu.Unlock()
	n -= used
	for n > 0 {
		k := min(n, uploadBurst)
		if err := u.l.WaitN(ctx, k); err != nil {
			return fmt.Errorf("bitswap: upload limit: %w", err)
		}
		n -= k
	}
	return nil
}

// refund gives back n bytes a sender waited for and then did not send (the
// block was cancelled meanwhile): the next sender uses them without
// waiting, so the upload's time is not lost. At most a burst is kept.
func (u *uplink) refund(n int) {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.credit = min(u.credit+n, uploadBurst)
	u.mu.Unlock()
}
