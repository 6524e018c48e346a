package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/web"
)

const (
	apiDashboard = "/api/v0/dashboard/login"
	apiDataCap   = "/api/v0/config/data-cap"
)

// dashboardRoutes: a login link is minted through the control API, so only
// whoever holds the repo's token can log in to the dashboard; the data cap
// changes the box, so it is POST.
func (s *apiServer) dashboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+apiDashboard, func(w http.ResponseWriter, r *http.Request) {
		if s.dash == nil {
			http.Error(w, "this daemon serves no dashboard (\"dashboard\": \"off\" in config.json, or --dashboard off)", http.StatusNotFound)
			return
		}
		writeJSON(w, dashboardLogin{URL: s.dash.LoginURL()})
	})
	mux.HandleFunc("POST "+apiDataCap, func(w http.ResponseWriter, r *http.Request) {
		c, err := node.ParseDataCap(r.URL.Query().Get("cap"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.setDataCap(c); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, s.n.DataCap())
	})
}

type dashboardLogin struct {
	URL string `json:"url"`
}

// setDataCap applies a new cap to the running box and writes it to the
// repo's config.json, so the next start keeps it.
func (s *apiServer) setDataCap(bytes int64) error {
	if err := s.n.SetDataCap(bytes); err != nil {
		return err
	}
	return saveDataCap(s.repo, bytes)
}

func saveDataCap(repo string, bytes int64) error {
	fc, err := node.LoadConfig(repo)
	if err != nil {
		return err
	}
	fc.DataCap = ""
	if bytes > 0 {
		fc.DataCap = humanize.IBytes(uint64(bytes))
		if v, err := node.ParseDataCap(fc.DataCap); err != nil || v != bytes {
			fc.DataCap = fmt.Sprint(bytes) // IBytes rounds: keep the exact count
		}
	}
	return node.WriteConfig(repo, fc)
}

// startDashboard listens on addr (the config's or --dashboard's) and
// starts the dashboard. The default address falls back to a free port
// when another daemon on the machine holds it; an address the owner chose
// must be free.
func startDashboard(n *node.Node, repo string, fc node.FileConfig, addr string, chosen bool, warnings *web.Warnings, setCap func(int64) error, log *slog.Logger) (*web.Server, error) {
	if addr == "off" {
		return nil, nil
	}
	tlsCfg, err := dashboardTLS(repo, fc)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dashboard address %q: %v (want HOST:PORT, e.g. 127.0.0.1:4503, or off)", errUsage, addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil && !chosen && errors.Is(err, syscall.EADDRINUSE) {
		log.Info("the dashboard's default port is taken (another daemon?): listening on a free one; `ore dashboard` prints its link", "addr", addr)
		l, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w (set \"dashboard\" in config.json to a free address, or off)", err)
	}
	if ip := net.ParseIP(host); tlsCfg == nil && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Warn("the dashboard listens beyond this machine over plain HTTP: its login link and session cookie cross the LAN in clear; use it only on a network you trust, or set \"dashboard_cert\" and \"dashboard_key\" in config.json", "addr", l.Addr())
	}
	d, err := web.New(web.Config{Node: n, Listener: l, Warnings: warnings, SetDataCap: setCap, Logger: log.With("part", "web"), TLS: tlsCfg})
	if err != nil {
		l.Close()
		return nil, err
	}
	return d, nil
}

// dashboardTLS loads the dashboard's certificate and key, when the config
// names both.
func dashboardTLS(repo string, fc node.FileConfig) (*tls.Config, error) {
	if fc.DashboardCert == "" && fc.DashboardKey == "" {
		return nil, nil
	}
	if fc.DashboardCert == "" || fc.DashboardKey == "" {
		return nil, errors.New("dashboard: config.json names only one of \"dashboard_cert\" and \"dashboard_key\": HTTPS needs both")
	}
	path := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(repo, p)
	}
	cert, err := tls.LoadX509KeyPair(path(fc.DashboardCert), path(fc.DashboardKey))
	if err != nil {
		return nil, fmt.Errorf("dashboard: load the certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func cmdDashboard(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "dashboard", "[flags]")
	repo := repoFlag(e, fs)
	open := fs.Bool("open", true, "open the link in a browser when this machine has a display")
	_, c, err := daemonArgs(fs, repo, args, 0, "no arguments")
	if err != nil {
		return err
	}
	var l dashboardLogin
	if err := c.postJSON(ctx, apiDashboard, &l); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", l.URL)
	fmt.Fprintln(e.stderr, "a one-time login link: it works once, for 5 minutes, and logs the browser that opens it in for 12 hours")
	if *open && (e.getenv("DISPLAY") != "" || e.getenv("WAYLAND_DISPLAY") != "") {
		if p, err := exec.LookPath("xdg-open"); err == nil {
			cmd := exec.Command(p, l.URL)
			if err := cmd.Start(); err == nil {
				go cmd.Wait()
			}
		}
	}
	return nil
}

func cmdConfig(ctx context.Context, e *env, args []string) error {
	const usage = "usage: ore config data-cap [SIZE|off]   show or set the monthly data cap (content bytes sent and fetched a calendar month)"
	sub, rest, done, err := subcommand(e, usage, "a setting (data-cap)", args)
	if done {
		return err
	}
	if sub != "data-cap" {
		return fmt.Errorf("%w: unknown setting %q\n%s", errUsage, sub, usage)
	}
	fs := newFlags(e, "config data-cap", "[SIZE|off]")
	repo := repoFlag(e, fs)
	pos, err := parse(fs, rest)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: data-cap takes at most one SIZE", errUsage)
	}
	c, cerr := newClient(*repo)
	if len(pos) == 0 { // show
		if cerr != nil {
			fc, err := node.LoadConfig(*repo)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "data cap %s (the daemon is not running: no count to show)\n", capOrOff(fc.DataCap))
			return nil
		}
		var st statusInfo
		if err := c.getJSON(ctx, apiStatus, &st); err != nil {
			return err
		}
		printDataCap(e.stdout, st.DataCap)
		return nil
	}
	v, err := node.ParseDataCap(pos[0])
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if cerr != nil { // no daemon: the config alone
		if err := saveDataCap(*repo, v); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "data cap set to %s in config.json; the daemon applies it when it starts\n", capOrOff(pos[0]))
		return nil
	}
	var dc node.DataCapView
	if err := c.postJSON(ctx, apiDataCap+"?"+url.Values{"cap": {pos[0]}}.Encode(), &dc); err != nil {
		return err
	}
	printDataCap(e.stdout, dc)
	return nil
}

func capOrOff(s string) string {
	if s == "" || s == "0" || s == "off" {
		return "off"
	}
	return s
}

func printDataCap(w interface{ Write([]byte) (int, error) }, dc node.DataCapView) {
	ib := func(v int64) string { return humanize.IBytes(uint64(v)) }
	parts := fmt.Sprintf("served %s, gateway %s, fetched %s", ib(dc.Served), ib(dc.Gateway), ib(dc.Fetched))
	if dc.Cap <= 0 {
		fmt.Fprintf(w, "data cap  none; %s used in %s (%s)\n", ib(dc.Used), dc.Month, parts)
		return
	}
	line := fmt.Sprintf("data cap  %s of %s used in %s (%s), %s left", ib(dc.Used), ib(dc.Cap), dc.Month, parts, ib(dc.Left))
	if dc.Reached {
		line += ": reached, the box sends and fetches no content until the month ends"
	}
	fmt.Fprintln(w, line)
}

// dashboardAddr is where the daemon serves its dashboard: --dashboard,
// else the config's, else node.DefaultDashboard; chosen says the owner
// named it.
func dashboardAddr(flagValue string, fc node.FileConfig) (string, bool) {
	switch {
	case flagValue != "":
		return strings.TrimSpace(flagValue), true
	case fc.Dashboard != "":
		return fc.Dashboard, true
	}
	return node.DefaultDashboard, false
}
