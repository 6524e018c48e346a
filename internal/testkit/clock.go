package testkit

import (
	"sync"
	"time"
)

// Clock is a clock a test controls. It runs with the wall clock (shifted
// by an offset) until Freeze or Set stops it; then it stands still until
// Set, Advance or Run. Pass Now wherever code takes a clock.
//
// A frozen clock makes a test independent of the machine's speed: work
// that must finish within some epochs (receipts are valid for a few
// epochs after their own) finishes however long it takes, and the test
// moves time only when it means time to pass.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration // while running: Now is time.Now() + offset
	frozen bool
	at     time.Time // while frozen
}

// NewClock returns a running clock that reads the wall clock.
func NewClock() *Clock { return &Clock{} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return c.at
	}
	return time.Now().Add(c.offset)
}

// Freeze stops the clock where it is and returns that time.
func (c *Clock) Freeze() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		c.at, c.frozen = time.Now().Add(c.offset), true
	}
	return c.at
}

// Set stops the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.frozen = t, true
}

// Advance moves the clock d ahead, frozen or running.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.at = c.at.Add(d)
	} else {
		c.offset += d
	}
}

// Run starts a frozen clock again from where it stands.
func (c *Clock) Run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.offset, c.frozen = time.Until(c.at), false
	}
}
