package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/orecdn/ore/node"
)

//go:embed assets
var assets embed.FS

// Config is what a dashboard serves and where.
type Config struct {
	// Node is the box whose views the dashboard shows.
	Node *node.Node
	// Listener is the dashboard's own listener (never the gateway's nor
	// the control API's).
	Listener net.Listener
	// Warnings is the daemon's ring of recent warnings (nil: none shown).
	Warnings *Warnings
	// SetDataCap applies a new monthly data cap and saves it in the repo's
	// config (nil: the dashboard shows the cap but cannot change it).
	SetDataCap func(bytes int64) error
	// Logger logs logins and changes.
	Logger *slog.Logger
	// SampleEvery is the traffic history's interval (default 10 s).
	SampleEvery time.Duration
	// Names are host names, besides localhost and the machine's name, that
	// the dashboard answers to (the Host check refuses others).
	Names []string
	// TLS, if set, serves HTTPS (a dashboard on a LAN address: the login
	// link and the session cookie then never cross the LAN in clear, and
	// the cookie is marked Secure).
	TLS *tls.Config
}

// Server is a running dashboard.
type Server struct {
	cfg   Config
	n     *node.Node
	auth  *auth
	hosts hostGuard
	hist  history
	chain *chain
	reps  replicas
	srv   *http.Server
	page  *pageTemplates

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts the dashboard on cfg.Listener; Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil || cfg.Listener == nil {
		return nil, errors.New("web: a dashboard needs a node and a listener")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 10 * time.Second
	}
	pt, err := parsePages()
	if err != nil {
		return nil, err
	}
	names := append([]string(nil), cfg.Names...)
	if h, err := os.Hostname(); err == nil {
		names = append(names, h, h+".local")
	}
	s := &Server{cfg: cfg, n: cfg.Node, auth: newAuth(time.Now), hosts: newHostGuard(cfg.Listener.Addr(), names...), page: pt}
	if g := cfg.Node.Genesis(); g != nil {
		s.chain = newChain(cfg.Node.ID(), g, cfg.Node.LedgerBlocksFrom)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		l := cfg.Listener
		if cfg.TLS != nil {
			l = tls.NewListener(l, cfg.TLS)
		}
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Warn("the dashboard stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.follow()
	}()
	return s, nil
}

// follow samples traffic and reads the chain and the replicas in the
// background, so a page view waits on none of it.
func (s *Server) follow() {
	sample := time.NewTicker(s.cfg.SampleEvery)
	defer sample.Stop()
	chainEvery := s.n.Network().EpochLength
	chainEvery = min(max(chainEvery, 2*time.Second), 30*time.Second)
	readChain := time.NewTimer(0)
	defer readChain.Stop()
	readReps := time.NewTimer(time.Second)
	defer readReps.Stop()
	s.sample()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-sample.C:
			s.sample()
		case <-readChain.C:
			if s.chain != nil {
				ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
				if err := s.chain.refresh(ctx); err != nil && s.ctx.Err() == nil {
					s.cfg.Logger.Debug("dashboard: read the chain", "err", err)
				}
				cancel()
			}
			readChain.Reset(chainEvery)
		case <-readReps.C:
			if s.chain != nil {
				s.reps.refresh(s.ctx, s.n, s.chain.figures().Roots)
			}
			readReps.Reset(replicasNew)
		}
	}
}

func (s *Server) sample() {
	if bs, err := s.n.Exchange().Stats(); err == nil {
		s.hist.add(time.Now(), bs.DataSent, bs.DataReceived)
	}
}

// Addr is the dashboard's listen address.
func (s *Server) Addr() net.Addr { return s.cfg.Listener.Addr() }

// LoginURL makes a one-time login link: it works once, for loginTTL, and
// starts a session in the browser that opens it. Adding &tab=publisher
// (or &tab=coordinator) lands on that tab.
func (s *Server) LoginURL() string {
	return s.BaseURL() + "/login?token=" + s.auth.newLogin()
}

// BaseURL is the dashboard's address as a URL a browser on this machine
// (loopback) or on the LAN (a specific or any address) opens.
func (s *Server) BaseURL() string {
	a := s.cfg.Listener.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = lanAddress()
	}
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// lanAddress is the machine's first global unicast IPv4 address (where a
// dashboard listening on every address is reached from the LAN), else
// loopback.
func lanAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && ip.IP.IsGlobalUnicast() {
				return ip.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// Close stops the dashboard and its background reads.
func (s *Server) Close() error {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	s.wg.Wait()
	return err
}

// Handler is the dashboard's HTTP handler, every guard in place.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /{$}", s.authed(s.ownerPage))
	mux.HandleFunc("GET /publisher", s.authed(s.publisherPage))
	mux.HandleFunc("GET /coordinator", s.authed(s.coordinatorPage))
	mux.HandleFunc("GET /api/owner", s.authed(s.ownerJSON))
	mux.HandleFunc("GET /api/publisher", s.authed(s.publisherJSON))
	mux.HandleFunc("GET /api/coordinator", s.authed(s.coordinatorJSON))
	mux.HandleFunc("GET /chart/{name}", s.authed(s.chart))
	mux.HandleFunc("POST /datacap", s.authed(s.changing(s.setDataCap)))
	mux.HandleFunc("POST /logout", s.authed(s.changing(s.logout)))
	return s.guard(mux)
}

// guard checks the Host of every request and sets the headers every
// answer carries: nothing is framed, sniffed, cached or sent as a
// referrer, and the page runs only its own script and style.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts.ok(r.Host) {
			http.Error(w, fmt.Sprintf("the ore dashboard answers only requests addressed to its own address, not Host %q", r.Host), http.StatusForbidden)
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

type sessionKey struct{}

// authed refuses a request without a live session.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, _, ok := s.auth.session(r)
		if !ok {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_ = s.page.login.Execute(w, nil)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	}
}

func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey{}).(session)
	return s
}

// changing guards a request that changes something: it comes from the
// dashboard's own page (Origin) and carries the session's CSRF token.
func (s *Server) changing(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if !sameOrigin(r) {
			http.Error(w, "the ore dashboard takes changes only from its own page (Origin)", http.StatusForbidden)
			return
		}
		if !csrfOK(r, sessionOf(r)) {
			http.Error(w, "missing or wrong CSRF token: reload the dashboard and try again", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// login consumes a one-time token, starts a session and sends the browser
// to a URL without the token (so it stays in no history or bookmark).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.auth.useLogin(r.URL.Query().Get("token")) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = s.page.login.Execute(w, "This login link was used already, has expired or is wrong.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.auth.newSession(), Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	s.cfg.Logger.Info("dashboard login", "from", r.RemoteAddr)
	// Only the dashboard's own tabs: a link cannot send the browser away.
	next := "/"
	switch r.URL.Query().Get("tab") {
	case "publisher":
		next = "/publisher"
	case "coordinator":
		next = "/coordinator"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if _, h, ok := s.auth.session(r); ok {
		s.auth.endSession(h)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) setDataCap(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SetDataCap == nil {
		http.Error(w, "this dashboard cannot change the data cap", http.StatusNotImplemented)
		return
	}
	v := strings.TrimSpace(r.PostFormValue("cap"))
	c, err := node.ParseDataCap(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.cfg.SetDataCap(c); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.cfg.Logger.Info("dashboard: data cap changed", "bytes_per_month", c, "from", r.RemoteAddr)
	http.Redirect(w, r, "/#cap", http.StatusSeeOther)
}
