package gateway

import (
	"net"
	"net/netip"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// clientKey names the client a request comes from: its IPv4 address, or
// the /64 of its IPv6 address. One subscriber gets a whole /64 (RFC 6177)
// and picks addresses in it at will, so keying on whole IPv6 addresses
// would give one attacker 2^64 limiters. An IPv4-mapped IPv6 address is
// its IPv4 address.
func clientKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host // not an IP (a test's or a unix socket's address): itself
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// clients holds what the gateway keeps per client: a token bucket (the
// request rate) and the number of requests it has in flight (the
// per-client cap).
//
// The buckets sit in an LRU of bounded size: when it is full, the client
// seen least recently loses its bucket (and gets a full one if it comes
// back), so a flood of new addresses costs the clients being served now
// nothing. In-flight counts live apart, in a map holding only clients with
// a request in flight: evicting a bucket must never forget requests that
// are still running, or a client could exceed its cap by cycling the LRU.
type clients struct {
	rate      rate.Limit
	burst     int
	maxActive int

	mu      sync.Mutex
	buckets *simplelru.LRU[string, *rate.Limiter]
	active  map[string]int
}

func newClients(r rate.Limit, burst, maxActive, entries int) (*clients, error) {
	lru, err := simplelru.NewLRU[string, *rate.Limiter](entries, nil)
	if err != nil {
		return nil, err
	}
	return &clients{rate: r, burst: burst, maxActive: maxActive, buckets: lru, active: map[string]int{}}, nil
}

// allow takes a token from key's bucket, and marks key recently seen.
func (c *clients) allow(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.buckets.Get(key)
	if !ok {
		l = rate.NewLimiter(c.rate, c.burst)
		c.buckets.Add(key, l)
	}
	return l.Allow()
}

// enter counts a request of key in flight, unless key already has
// maxActive of them; leave must follow a true answer.
func (c *clients) enter(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active[key] >= c.maxActive {
		return false
	}
	c.active[key]++
	return true
}

func (c *clients) leave(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active[key] <= 1 {
		delete(c.active, key)
		return
	}
	c.active[key]--
}

// entries is the number of buckets held.
func (c *clients) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buckets.Len()
}
