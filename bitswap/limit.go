package bitswap

import (
	"context"
	"fmt"

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
type uplink struct{ l *rate.Limiter }

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
	for n > 0 {
		k := min(n, uploadBurst)
		if err := u.l.WaitN(ctx, k); err != nil {
			return fmt.Errorf("bitswap: upload limit: %w", err)
		}
		n -= k
	}
	return nil
}
