package web

import (
	"sync"
	"time"
)

// maxSamples bounds the traffic history: 360 samples, an hour at the
// default 10 s.
const maxSamples = 360

// Sample is the bytes the box served and fetched over one interval
// (bitswap's counters, the ones `ore status` prints, differenced).
type Sample struct {
	Time     int64  `json:"unix"`
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
}

// history keeps the last maxSamples samples of two growing counters.
type history struct {
	mu       sync.Mutex
	samples  []Sample
	lastSent uint64
	lastRecv uint64
	primed   bool
}

// add records the counters at t; the first call only primes them.
func (h *history) add(t time.Time, sent, recv uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.primed {
		s := Sample{Time: t.Unix()}
		if sent >= h.lastSent {
			s.Sent = sent - h.lastSent
		}
		if recv >= h.lastRecv {
			s.Received = recv - h.lastRecv
		}
		h.samples = append(h.samples, s)
		if len(h.samples) > maxSamples {
			h.samples = append(h.samples[:0], h.samples[len(h.samples)-maxSamples:]...)
		}
	}
	h.lastSent, h.lastRecv, h.primed = sent, recv, true
}

func (h *history) list() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Sample(nil), h.samples...)
}
