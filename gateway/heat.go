package gateway

import (
	"time"

	"github.com/orecdn/ore/heat"
)

// Heat counts requests and bytes per root CID with exponential decay (see
// heat.Counter, where the counter lives so that node and the committee can
// use it too).
type Heat = heat.Counter

// HeatEntry is a root's heat at some instant.
type HeatEntry = heat.Entry

// NewHeat returns a heat counter with the given half-life, keeping at most
// max roots.
func NewHeat(halfLife time.Duration, max int) *Heat { return heat.NewCounter(halfLife, max) }
