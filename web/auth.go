package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Login and session limits.
const (
	// loginTTL is how long a one-time login link works (it is printed on
	// the owner's terminal and opened at once).
	loginTTL = 5 * time.Minute
	// maxLogins bounds the unused links kept; a new one pushes out the
	// oldest.
	maxLogins = 16
	// sessionTTL is how long a session lasts from its login.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept; a new login pushes out the
	// oldest.
	maxSessions = 64
	// secretBytes is the entropy of a login token, a session ID and a
	// CSRF token: 256 bits, never guessed.
	secretBytes = 32

	sessionCookie = "ore_session"
	csrfField     = "csrf"
	csrfHeader    = "X-Ore-CSRF"
)

// auth holds the one-time login tokens and the sessions. Only hashes of
// login tokens and session IDs are kept, so a memory dump or a timing
// difference in a map look-up tells nothing about a live secret.
type auth struct {
	now func() time.Time

	mu       sync.Mutex
	logins   map[[32]byte]time.Time // token hash -> expiry
	sessions map[[32]byte]session   // session ID hash -> session
}

type session struct {
	expires time.Time
	created time.Time
	csrf    string // the session's CSRF token, sent in forms and headers
}

func newAuth(now func() time.Time) *auth {
	return &auth{now: now, logins: map[[32]byte]time.Time{}, sessions: map[[32]byte]session{}}
}

func secret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic("web: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// newLogin makes a one-time login token.
func (a *auth) newLogin() string {
	tok := secret()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for h, exp := range a.logins {
		if !now.Before(exp) {
			delete(a.logins, h)
		}
	}
	if len(a.logins) >= maxLogins {
		var oldest [32]byte
		var at time.Time
		for h, exp := range a.logins {
			if at.IsZero() || exp.Before(at) {
				oldest, at = h, exp
			}
		}
		delete(a.logins, oldest)
	}
	a.logins[hashOf(tok)] = now.Add(loginTTL)
	return tok
}

// useLogin consumes a login token: true once, for a live token.
func (a *auth) useLogin(tok string) bool {
	if len(tok) != 2*secretBytes {
		return false
	}
	h := hashOf(tok)
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.logins[h]
	delete(a.logins, h) // used or expired: gone either way
	return ok && a.now().Before(exp)
}

// newSession starts a session and returns its ID.
func (a *auth) newSession() string {
	id := secret()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for h, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, h)
		}
	}
	if len(a.sessions) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for h, s := range a.sessions {
			if at.IsZero() || s.created.Before(at) {
				oldest, at = h, s.created
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[hashOf(id)] = session{created: now, expires: now.Add(sessionTTL), csrf: secret()}
	return id
}

// session returns the request's live session, if its cookie names one.
func (a *auth) session(r *http.Request) (session, [32]byte, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 2*secretBytes {
		return session{}, [32]byte{}, false
	}
	h := hashOf(c.Value)
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[h]
	if !ok {
		return session{}, h, false
	}
	if !a.now().Before(s.expires) {
		delete(a.sessions, h)
		return session{}, h, false
	}
	return s, h, true
}

func (a *auth) endSession(h [32]byte) {
	a.mu.Lock()
	delete(a.sessions, h)
	a.mu.Unlock()
}

// hostGuard answers only requests addressed to the listener: a page on a
// DNS name rebound to the box's address sends that name as its Host. An IP
// literal cannot be rebound, so any IP literal with the listener's port
// passes (a box on 0.0.0.0 is reached at whichever of its addresses),
// and so does localhost and the machine's own name.
type hostGuard struct {
	port  string
	names map[string]bool // lower-case host names (no port) that pass
}

func newHostGuard(l net.Addr, extra ...string) hostGuard {
	_, port, _ := net.SplitHostPort(l.String())
	g := hostGuard{port: port, names: map[string]bool{"localhost": true}}
	for _, n := range extra {
		if n = strings.ToLower(strings.TrimSuffix(n, ".")); n != "" {
			g.names[n] = true
		}
	}
	return g
}

func (g hostGuard) ok(host string) bool {
	h, port, err := net.SplitHostPort(host)
	if err != nil || port != g.port {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	return g.names[strings.ToLower(h)]
}

// sameOrigin checks that a request that changes something comes from the
// dashboard's own page: its Origin is this scheme and Host (a browser
// always sends Origin with a POST), or, from an engine that sends none,
// Sec-Fetch-Site says same-origin. A request with neither is refused.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil {
			return false
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host) && u.Path == "" && u.RawQuery == ""
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// csrfOK checks the session's CSRF token, sent in a form field or a header,
// in constant time.
func csrfOK(r *http.Request, s session) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
