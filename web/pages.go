package web

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/dustin/go-humanize"
)

type pageTemplates struct {
	owner, publisher, coordinator, login *template.Template
}

var funcs = template.FuncMap{
	"bytes":   func(v any) string { return humanize.IBytes(toU64(v)) },
	"ore":     func(v uint64) string { return formatOre(v) },
	"ago":     func(unix int64) string { return humanize.Time(time.Unix(unix, 0)) },
	"clock":   func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"dur":     func(s int64) string { return (time.Duration(s) * time.Second).String() },
	"date":    func(unix int64) string { return time.Unix(unix, 0).Local().Format("2006-01-02") },
	"pct":     func(a, b int64) string { return pct(a, b) },
	"traffic": trafficChart,
	"figures": figureChart,
	"rate":    func(v float64) string { return humanize.IBytes(uint64(v)) + "/s" },
	"short": func(s string) string {
		if len(s) > 20 {
			return s[:8] + "…" + s[len(s)-8:]
		}
		return s
	},
	"int64": func(v any) int64 { return int64(min(toU64(v), 1<<62)) },
	"add":   func(a, b uint64) uint64 { return a + b },
	"f1":    func(v float64) string { return fmt.Sprintf("%.1f", v) },
}

func toU64(v any) uint64 {
	switch x := v.(type) {
	case int64:
		return uint64(max(x, 0))
	case uint64:
		return x
	case int:
		return uint64(max(x, 0))
	case float64:
		return uint64(max(x, 0))
	}
	return 0
}

func pct(a, b int64) string {
	if b <= 0 {
		return "0"
	}
	return fmt.Sprintf("%.0f", min(100, 100*float64(a)/float64(b)))
}

func parsePages() (*pageTemplates, error) {
	parse := func(files ...string) (*template.Template, error) {
		t, err := template.New("page.html").Funcs(funcs).ParseFS(assets, files...)
		if err != nil {
			return nil, fmt.Errorf("web: templates: %w", err)
		}
		return t, nil
	}
	var p pageTemplates
	var err error
	if p.owner, err = parse("assets/page.html", "assets/owner.html"); err != nil {
		return nil, err
	}
	if p.publisher, err = parse("assets/page.html", "assets/publisher.html"); err != nil {
		return nil, err
	}
	if p.coordinator, err = parse("assets/page.html", "assets/coordinator.html"); err != nil {
		return nil, err
	}
	if p.login, err = template.New("login.html").ParseFS(assets, "assets/login.html"); err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	return &p, nil
}

// pageData is what page.html renders around a tab.
type pageData struct {
	Tab  string
	CSRF string
	Peer string
	View any
	// Coordinator: the box is a committee member (the tab is shown).
	Coordinator bool
}

// render writes a tab: the whole page, or only its <main> when the page's
// script asks for a refresh (X-Ore-Partial).
func (s *Server) render(w http.ResponseWriter, r *http.Request, t *template.Template, tab string, view any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	name := "page.html"
	if r.Header.Get("X-Ore-Partial") == "1" {
		name = "main"
	}
	d := pageData{Tab: tab, CSRF: sessionOf(r).csrf, Peer: s.n.ID().String(), View: view, Coordinator: s.n.Committee() != nil}
	if err := t.ExecuteTemplate(w, name, d); err != nil {
		s.cfg.Logger.Debug("dashboard: render", "tab", tab, "err", err)
	}
}

func (s *Server) ownerPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.owner(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, r, s.page.owner, "owner", v)
}

func (s *Server) publisherPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, s.page.publisher, "publisher", s.publisher(r.Context()))
}

func (s *Server) coordinatorPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.coordinator(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, r, s.page.coordinator, "coordinator", v)
}
