package main

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// The control API's guards, outermost first. The API listens on loopback
// only, but every local user and every web page open in a local browser can
// reach loopback: a request must come from no browser, name the API's own
// address as its Host, and carry the repo's token.

// apiGuard holds what the guards check a request against.
type apiGuard struct {
	token     string          // the bearer token, from REPO/api.token
	tokenPath string          // where the token lives, for the 401 message
	hosts     map[string]bool // the Host headers the API answers (lower case)
}

// apiHosts are the Host headers the API at listen answers: its port on
// 127.0.0.1, localhost and [::1], the address it listens on, and the
// address as configured (unless the configured port is 0, which no client
// dials). Any other name is a page that a DNS name rebound to loopback.
func apiHosts(listen net.Addr, configured string) map[string]bool {
	hosts := map[string]bool{strings.ToLower(listen.String()): true}
	if _, port, err := net.SplitHostPort(listen.String()); err == nil {
		for _, h := range []string{"127.0.0.1", "localhost", "::1"} {
			hosts[net.JoinHostPort(h, port)] = true
		}
	}
	if _, port, err := net.SplitHostPort(configured); err == nil && port != "0" {
		hosts[strings.ToLower(configured)] = true
	}
	return hosts
}

// wrap puts the guards in front of h.
func (g apiGuard) wrap(h http.Handler) http.Handler {
	return rejectBrowsers(g.checkHost(g.requireToken(h)))
}

// rejectBrowsers refuses requests a web page could forge: the API is for
// the CLI on this machine only, and browsers send Origin or Sec-Fetch-Site
// with every request a page makes.
func rejectBrowsers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" {
			http.Error(w, "the ore control API does not serve browsers", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host that is not the API's own address: a page on
// evil.example whose name was rebound to 127.0.0.1 sends
// Host: evil.example:PORT, and a browser that shows no Origin (a plain GET
// or an old engine) passes rejectBrowsers.
func (g apiGuard) checkHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.hosts[strings.ToLower(r.Host)] {
			http.Error(w, fmt.Sprintf("the ore control API answers only requests addressed to its own loopback address, not Host %q", r.Host), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// requireToken refuses a request without `Authorization: Bearer TOKEN`:
// other local users can reach loopback but cannot read the repo's token
// file (mode 0600). The comparison takes constant time, so the time of a
// refusal says nothing about how much of a guess was right.
func (g apiGuard) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(g.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ore"`)
			http.Error(w, fmt.Sprintf("the ore control API needs the token in %s: send `Authorization: Bearer <token>` (the ore CLI does, run as the user that owns the repo)", g.tokenPath), http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
