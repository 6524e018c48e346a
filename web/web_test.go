package web

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orecdn/ore/dht"
	"github.com/orecdn/ore/node"
)

func startNode(t *testing.T, opts ...node.Option) *node.Node {
	t.Helper()
	dir := t.TempDir()
	if _, err := node.Init(dir, node.DefaultFileConfig()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.New(ctx, append([]node.Option{node.WithRepo(dir), node.WithListenAddrs("/ip4/127.0.0.1/tcp/0"),
		node.WithDHTMode(dht.ModeServer), node.WithPortMap(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// testDash is a dashboard on loopback with a data cap setter that records.
type testDash struct {
	*Server
	mu     sync.Mutex
	capSet []int64
}

func startDash(t *testing.T, n *node.Node) *testDash {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDash{}
	s, err := New(Config{Node: n, Listener: l, Warnings: NewWarnings(), SampleEvery: time.Second,
		SetDataCap: func(v int64) error {
			d.mu.Lock()
			d.capSet = append(d.capSet, v)
			d.mu.Unlock()
			return n.SetDataCap(v)
		}})
	if err != nil {
		t.Fatal(err)
	}
	d.Server = s
	t.Cleanup(func() { s.Close() })
	return d
}

// noRedirect is a client that shows redirects instead of following them.
func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login opens a one-time link with a fresh cookie jar and returns the
// logged-in client.
func login(t *testing.T, d *testDash) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	resp, _ := get(t, c, d.LoginURL())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	return c
}

func TestLoginLinkWorksOnceAndSetsAStrictCookie(t *testing.T) {
	d := startDash(t, startNode(t))
	base := d.BaseURL()
	plain := noRedirect(nil)
	for _, p := range []string{"/", "/publisher", "/api/owner", "/api/publisher", "/chart/traffic.svg"} {
		if resp, _ := get(t, plain, base+p); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without a session: %s, want 401", p, resp.Status)
		}
	}
	link := d.LoginURL()
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	resp, _ := get(t, c, link)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %s to %q, want 303 to / (no secret in the URL)", resp.Status, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("session cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("a cookie served over plain HTTP marked Secure would never come back: %q", sc)
	}
	resp, body := get(t, c, base+"/api/owner")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("owner view with a session: %s %s", resp.Status, body)
	}
	var v OwnerView
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Status.Peer != d.n.ID().String() {
		t.Fatalf("owner view: %v, peer %q", err, v.Status.Peer)
	}
	// The link is spent: a second browser (or the same) gets nothing.
	jar2, _ := cookiejar.New(nil)
	if resp, _ := get(t, noRedirect(jar2), link); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a used login link: %s, want 401", resp.Status)
	}
	// A forged token, too short or of the right length, gets nothing.
	for _, tok := range []string{"", "abc", strings.Repeat("0", 64)} {
		if resp, _ := get(t, noRedirect(nil), base+"/login?token="+tok); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login with %q: %s", tok, resp.Status)
		}
	}
	// A forged session cookie gets nothing.
	if resp, _ := get(t, plain, base+"/api/owner", "Cookie", sessionCookie+"="+strings.Repeat("a", 64)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged session: %s", resp.Status)
	}
}

func TestLoginAndSessionExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(func() time.Time { return now })
	tok := a.newLogin()
	now = now.Add(loginTTL)
	if a.useLogin(tok) {
		t.Fatal("an expired login link worked")
	}
	// Unused links are bounded: the oldest goes first.
	var toks []string
	for i := 0; i < maxLogins+1; i++ {
		toks = append(toks, a.newLogin())
		now = now.Add(time.Millisecond)
	}
	if len(a.logins) != maxLogins || a.useLogin(toks[0]) || !a.useLogin(toks[maxLogins]) {
		t.Fatalf("login bound: %d kept, the oldest must be gone and the newest work", len(a.logins))
	}
	id := a.newSession()
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
	if _, _, ok := a.session(r); !ok {
		t.Fatal("a new session is not live")
	}
	now = now.Add(sessionTTL)
	if _, _, ok := a.session(r); ok {
		t.Fatal("an expired session is live")
	}
	for i := 0; i < maxSessions+10; i++ {
		a.newSession()
		now = now.Add(time.Millisecond)
	}
	if len(a.sessions) > maxSessions {
		t.Fatalf("%d sessions kept, at most %d", len(a.sessions), maxSessions)
	}
}

func TestHostCheck(t *testing.T) {
	d := startDash(t, startNode(t))
	c := login(t, d)
	u, _ := url.Parse(d.BaseURL())
	_, port, _ := net.SplitHostPort(u.Host)
	for host, want := range map[string]int{
		"127.0.0.1:" + port:         http.StatusOK,
		"localhost:" + port:         http.StatusOK,
		"[::1]:" + port:             http.StatusOK,
		"evil.example:" + port:      http.StatusForbidden, // a DNS name rebound to the box
		"127.0.0.1:1":               http.StatusForbidden,
		"127.0.0.1":                 http.StatusForbidden,
		"localhost.evil.ex:" + port: http.StatusForbidden,
	} {
		// A Host that passes reaches the session check (the cookie jar
		// keeps the cookie by URL, so it may or may not come along).
		resp, _ := get(t, c, d.BaseURL()+"/api/owner", "Host", host)
		if (resp.StatusCode == http.StatusForbidden) != (want == http.StatusForbidden) {
			t.Errorf("Host %q: %s, want %d", host, resp.Status, want)
		}
	}
	// The login link too: a rebound page cannot spend one.
	if resp, _ := get(t, noRedirect(nil), d.LoginURL(), "Host", "evil.example:"+port); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login through a rebound name: %s", resp.Status)
	}
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestChangesNeedOriginAndCSRF(t *testing.T) {
	n := startNode(t)
	d := startDash(t, n)
	c := login(t, d)
	_, page := get(t, c, d.BaseURL()+"/")
	i := strings.Index(page, `data-csrf="`)
	if i < 0 {
		t.Fatal("the page carries no CSRF token")
	}
	csrf := page[i+len(`data-csrf="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	origin := d.BaseURL()
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"no origin", url.Values{"cap": {"1 GiB"}, csrfField: {csrf}}, nil, http.StatusForbidden},
		{"other origin", url.Values{"cap": {"1 GiB"}, csrfField: {csrf}}, []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", url.Values{"cap": {"1 GiB"}, csrfField: {csrf}}, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"no csrf", url.Values{"cap": {"1 GiB"}}, []string{"Origin", origin}, http.StatusForbidden},
		{"wrong csrf", url.Values{"cap": {"1 GiB"}, csrfField: {strings.Repeat("0", 64)}}, []string{"Origin", origin}, http.StatusForbidden},
		{"bad size", url.Values{"cap": {"lots"}, csrfField: {csrf}}, []string{"Origin", origin}, http.StatusBadRequest},
		{"good", url.Values{"cap": {"1 GiB"}, csrfField: {csrf}}, []string{"Origin", origin}, http.StatusSeeOther},
	} {
		if resp := post(t, c, d.BaseURL()+"/datacap", tc.form, tc.hdr...); resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
		}
	}
	d.mu.Lock()
	set := append([]int64(nil), d.capSet...)
	d.mu.Unlock()
	if len(set) != 1 || set[0] != 1<<30 || n.DataCap().Cap != 1<<30 {
		t.Fatalf("data cap changes applied: %v, node's cap %d; want exactly the good one, 1 GiB", set, n.DataCap().Cap)
	}
	// Without a session nothing changes, Origin and all.
	if resp := post(t, noRedirect(nil), d.BaseURL()+"/datacap", url.Values{"cap": {"off"}, csrfField: {csrf}}, "Origin", origin); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("change without a session: %s", resp.Status)
	}
	// Logging out ends the session.
	if resp := post(t, c, d.BaseURL()+"/logout", url.Values{csrfField: {csrf}}, "Origin", origin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	if resp, _ := get(t, c, d.BaseURL()+"/api/owner"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %s", resp.Status)
	}
}

func TestWarningsRingKeepsTheRecentOnes(t *testing.T) {
	w := NewWarnings()
	var sink strings.Builder
	log := slogNew(w, &sink)
	log.Info("not kept")
	for i := 0; i < maxWarnings+5; i++ {
		log.Warn("disk slow", "i", i)
	}
	log.With("part", "nat").Error("no router")
	got := w.Recent()
	if len(got) != maxWarnings {
		t.Fatalf("%d kept, want %d", len(got), maxWarnings)
	}
	if got[0].Message != "no router" || got[0].Level != "ERROR" || !strings.Contains(got[0].Attrs, "part=nat") {
		t.Fatalf("newest: %+v", got[0])
	}
	if got[1].Attrs != "i="+itoa(maxWarnings+4) {
		t.Fatalf("second newest: %+v", got[1])
	}
	if !strings.Contains(sink.String(), "not kept") {
		t.Fatal("the wrapped handler lost a record")
	}
}

// The page's script refreshes <main> with X-Ore-Partial: the answer is the
// tab's main alone, with its figures.
func TestPartialRefresh(t *testing.T) {
	d := startDash(t, startNode(t))
	c := login(t, d)
	for _, tab := range []struct{ path, id string }{{"/", `id="bytes-sent"`}, {"/publisher", `id="tickets"`}} {
		resp, body := get(t, c, d.BaseURL()+tab.path, "X-Ore-Partial", "1")
		if resp.StatusCode != http.StatusOK || strings.Contains(body, "<html") || strings.Contains(body, "<head") {
			t.Fatalf("partial %s: %s\n%s", tab.path, resp.Status, body)
		}
		if tab.path == "/" && !strings.Contains(body, tab.id) {
			t.Fatalf("partial %s lacks %s", tab.path, tab.id)
		}
	}
	// The script and style are served, from the binary.
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		if resp, body := get(t, noRedirect(nil), d.BaseURL()+p); resp.StatusCode != http.StatusOK || len(body) < 100 {
			t.Fatalf("%s: %s", p, resp.Status)
		}
	}
}
