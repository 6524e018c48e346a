package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/tar"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/web"
)

func cmdInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "init", "[flags]")
	repo := repoFlag(e, fs)
	bootstrap := fs.String("bootstrap", "", "comma-separated multiaddrs (with /p2p/ID) of boxes to join")
	quota := fs.String("quota", "10 GiB", "storage quota for blocks")
	upload := fs.String("upload-limit", "", "bytes per second the box serves to others, e.g. 2MiB (default: no limit)")
	profile := fs.String("profile", "auto", "auto (small under 2 GiB of RAM), default, or small for boxes with about 1 GiB of RAM")
	dhtMode := fs.String("dht", "auto", "DHT mode: auto, server or client")
	listen := fs.String("listen", strings.Join(node.DefaultListenAddrs, ","), "comma-separated listen multiaddrs")
	api := fs.String("api", "127.0.0.1:4501", "control API address (loopback only)")
	genesis := fs.String("genesis", "", "genesis file of the ledger network to join (copied into the repo)")
	role := fs.String("role", "box", "box, gateway or coordinator (a member of the genesis committee)")
	portMap := fs.Bool("port-map", true, "ask the home router to forward the listen ports (UPnP IGD, NAT-PMP)")
	dataCap := fs.String("data-cap", "", "content bytes the box sends and fetches a calendar month (bitswap, gateway, fetches), e.g. 500GiB (default: no cap)")
	dashboard := fs.String("dashboard", "", "web dashboard address (default "+node.DefaultDashboard+", loopback; a LAN address for a headless box; off)")
	computeShare := fs.Int("compute-share", 0, "jobs (functions over content) the box runs for other peers at once: the cores it lends (0: none)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	cfg := node.DefaultFileConfig()
	cfg.Quota, cfg.Profile, cfg.DHTMode, cfg.API, cfg.UploadLimit = *quota, *profile, *dhtMode, *api, *upload
	cfg.Listen = splitList(*listen)
	cfg.Bootstrap = splitList(*bootstrap)
	cfg.Role = *role
	cfg.DataCap, cfg.Dashboard = *dataCap, *dashboard
	cfg.ComputeShare = *computeShare
	if !*portMap {
		cfg.PortMap = portMap
	}
	var g *ledger.Genesis
	if *genesis != "" {
		if g, err = ledger.LoadGenesis(*genesis); err != nil {
			return err
		}
		cfg.Genesis = node.GenesisFile
	}
	id, err := node.Init(*repo, cfg)
	if err != nil {
		return err
	}
	if g != nil {
		if err := g.Save(filepath.Join(*repo, node.GenesisFile)); err != nil {
			return err
		}
		if node.Role(*role) == node.RoleCoordinator && !g.IsMember(id) {
			fmt.Fprintf(e.stderr, "warning: %s is not in the genesis committee; as a coordinator it will not start\n", id)
		}
	}
	fmt.Fprintf(e.stdout, "initialised ore repo %s\npeer ID %s\nnext: `ore daemon --repo %s`\n", *repo, id, *repo)
	return nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdDaemon(ctx context.Context, e *env, args []string) error {
	return runDaemon(ctx, e, "daemon", args, false)
}

// runDaemon runs a box until ctx ends; gatewayRole adds the HTTP gateway
// (`ore gateway`) whatever the config's role says.
func runDaemon(ctx context.Context, e *env, name string, args []string, gatewayRole bool) error {
	fs := newFlags(e, name, "[flags]")
	repo := repoFlag(e, fs)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	dashFlag := fs.String("dashboard", "", "web dashboard address (default: the config's \"dashboard\", else "+node.DefaultDashboard+"; off: none)")
	gwListen, gwMetrics, gwDomains := new(string), new(bool), new(string)
	tlsCert, tlsKey := new(string), new(string)
	if gatewayRole {
		tlsCert = fs.String("tls-cert", "", "serve the gateway over HTTPS with this PEM certificate (chain) file (default: the config's \"gateway_tls_cert\"); read again when it changes")
		tlsKey = fs.String("tls-key", "", "the certificate's PEM key file (default: the config's \"gateway_tls_key\")")
		gwDomains = fs.String("domain", "", "comma-separated hostnames served as subdomain gateways ({cid}.ipfs.{domain}; /ipfs/{cid} there redirects to it); \"none\" for none (default: the config's \"gateway_domains\", else localhost)")
		gwListen = fs.String("listen", "", "gateway HTTP address (default: the config's \"gateway\", else 127.0.0.1:8080)")
		gwMetrics = fs.Bool("gateway-metrics", false, "also serve /metrics on the gateway's public address (they are always on the API address; default: the config's \"gateway_metrics\")")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q", errUsage, *logLevel)
	}
	warnings := web.NewWarnings()
	log := slog.New(warnings.Handler(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})))
	fc, err := node.LoadConfig(*repo)
	if err != nil {
		return err
	}
	applyRuntimeProfile(fc, log)
	opts, err := fc.Options()
	if err != nil {
		return err
	}
	if fc.Genesis != "" {
		g, err := ledger.LoadGenesis(filepath.Join(*repo, fc.Genesis))
		if err != nil {
			return err
		}
		opts = append(opts, node.WithGenesis(g))
		if len(fc.Bootstrap) == 0 {
			// The committee's addresses are in the genesis: join through them.
			for _, m := range g.Committee {
				if ai, err := m.AddrInfo(); err == nil {
					opts = append(opts, node.WithBootstrapPeers(ai))
				}
			}
		}
	}
	if gatewayRole {
		opts = append(opts, node.WithRole(node.RoleGateway))
		if *gwListen != "" {
			opts = append(opts, node.WithGatewayListen(*gwListen))
		}
		if *gwMetrics {
			opts = append(opts, node.WithGatewayMetrics(true))
		}
		if *tlsCert != "" || *tlsKey != "" {
			opts = append(opts, node.WithGatewayTLS(*tlsCert, *tlsKey))
		}
		if *gwDomains != "" {
			var ds []string
			for _, d := range strings.Split(*gwDomains, ",") {
				if d = strings.TrimSpace(d); d != "" && d != "none" {
					ds = append(ds, d)
				}
			}
			opts = append(opts, node.WithGatewayDomains(ds...))
		}
	}
	token, created, err := node.EnsureAPIToken(*repo)
	if err != nil {
		return err
	}
	tokenPath := filepath.Join(*repo, node.APITokenFile)
	if created {
		log.Info("created the control API token (a repo made before the API required one)", "file", tokenPath)
	}
	if fi, err := os.Stat(tokenPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the control API token is readable by other users: whoever reads it controls the box; chmod 600 it", "file", tokenPath, "mode", fi.Mode().Perm())
	}
	l, err := listenLoopback(fc.API)
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := node.New(ctx, append(opts, node.WithRepo(*repo), node.WithLogger(log))...)
	if err != nil {
		return err
	}
	defer n.Close()
	if n.Role() == node.RoleCoordinator {
		coordinatorGC()
	}

	api := &apiServer{n: n, repo: *repo, guard: apiGuard{token: token, tokenPath: tokenPath, hosts: apiHosts(l.Addr(), fc.API)}}
	dashAddr, chosen := dashboardAddr(*dashFlag, fc)
	if api.dash, err = startDashboard(n, *repo, fc, dashAddr, chosen, warnings, api.setDataCap, log); err != nil {
		return err
	}
	if api.dash != nil {
		defer api.dash.Close()
	}
	srv := &http.Server{Handler: api.handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }} // SIGTERM cancels adds and gets in flight
	apiURL := "http://" + l.Addr().String()
	if err := node.WriteAPIFile(*repo, apiURL); err != nil {
		return err
	}
	defer node.RemoveAPIFile(*repo)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	log.Info("daemon ready", "api", apiURL, "api_token", tokenPath, "peer", n.ID(), "addrs", n.P2PAddrs())
	fmt.Fprintf(e.stdout, "peer ID %s\nAPI %s\n", n.ID(), apiURL)
	for _, a := range n.P2PAddrs() {
		fmt.Fprintf(e.stdout, "listening %s\n", a)
	}
	if u := n.GatewayURL(); u != "" {
		fmt.Fprintf(e.stdout, "gateway %s/ipfs/{cid}\n", u)
	}
	if api.dash != nil {
		fmt.Fprintf(e.stdout, "dashboard %s (log in with the link `ore dashboard` prints)\n", api.dash.BaseURL())
	}
	fmt.Fprintln(e.stdout, "ore daemon ready")

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		return fmt.Errorf("control API stopped: %w", err)
	}
	// Requests in flight were cancelled with ctx; one still reading its body
	// (an add) gets a second, then its connection is cut.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return n.Close()
}

func cmdAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "add", "[flags] PATH")
	repo := repoFlag(e, fs)
	quiet := fs.Bool("q", false, "print only the root CID")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "one PATH"); err != nil {
		return err
	}
	path := pos[0]
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	f, err := files.NewSerialFile(path, true, st)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	total, _ := f.Size()
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	body := files.NewMultiFileReader(files.NewSliceDirectory([]files.DirEntry{files.FileEntry(filepath.Base(path), f)}), true, false)
	bar := newProgress(e.stderr, "add")
	counted := &countReader{r: body, onRead: func(n int64) { bar.update(n, total, "") }}
	if *quiet {
		counted.onRead = nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+apiAdd, counted)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+body.Boundary())
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	line, err := readStream(resp.Body, nil)
	if err != nil {
		return withHint(*repo, err)
	}
	res := line.Added
	if res == nil {
		return errors.New("the daemon sent no result")
	}
	if *quiet {
		fmt.Fprintln(e.stdout, res.Root)
		return nil
	}
	bar.done(res.Bytes, total, "")
	fmt.Fprintf(e.stdout, "added %s %s (%s)\n", res.Root, filepath.Base(path), humanize.IBytes(uint64(res.Bytes)))
	if !res.Provided {
		fmt.Fprintf(e.stderr, "warning: not announced in the DHT yet (%s); the box retries on its own\n", res.ProvideErr)
	}
	return nil
}

type countReader struct {
	r      io.Reader
	n      int64
	onRead func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	if c.onRead != nil {
		c.onRead(c.n)
	}
	return k, err
}

func cmdGet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "get", "[flags] CID|/ipfs/CID|/ipns/NAME")
	repo := repoFlag(e, fs)
	out := fs.String("o", "", "where to write the file or directory (default: the CID)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	ticket := fs.String("ticket", "", "fetch under this ticket (from `ore ticket`): the boxes that serve it are paid by its publisher")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "one CID"); err != nil {
		return err
	}
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	root, err := resolveArg(ctx, c, pos[0])
	if err != nil {
		return withHint(*repo, err)
	}
	if *out == "" {
		*out = root.String()
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("%s already exists: remove it or pick another with -o", *out)
	}
	q := url.Values{"cid": {root.String()}, "timeout": {timeout.String()}}
	if *ticket != "" {
		q.Set("ticket", *ticket)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+apiFetch+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	bar := newProgress(e.stderr, "get")
	line, err := readStream(resp.Body, func(p node.FetchProgress) {
		bar.update(p.Bytes, p.Total, fmt.Sprintf("%d providers", p.Providers))
	})
	resp.Body.Close()
	if err != nil {
		return withHint(*repo, err)
	}
	res := line.Fetched
	if res == nil {
		return errors.New("the daemon sent no result")
	}
	detail := fmt.Sprintf("%d blocks, %s from the network", res.Blocks, humanize.IBytes(uint64(res.Fetched)))
	if res.FirstByte > 0 {
		detail += fmt.Sprintf(", first byte after %.2f s", res.FirstByte.Seconds())
	}
	bar.done(res.Bytes, res.Bytes, detail)

	req, err = http.NewRequestWithContext(ctx, http.MethodGet, c.base+apiCat+"?"+url.Values{"cid": {root.String()}}.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err = c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	ex := &tar.Extractor{Path: *out}
	if err := ex.Extract(resp.Body); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	fmt.Fprintf(e.stdout, "saved %s to %s\n", root, *out)
	return nil
}

func cmdPeers(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "peers", "[flags]")
	repo := repoFlag(e, fs)
	_, c, err := daemonArgs(fs, repo, args, 0, "no arguments")
	if err != nil {
		return err
	}
	var peers []peerInfo
	if err := c.getJSON(ctx, apiPeers, &peers); err != nil {
		return err
	}
	if len(peers) == 0 {
		fmt.Fprintln(e.stdout, "no peers connected (check the bootstrap list in the repo's config.json)")
	}
	for _, p := range peers {
		line := p.Addr + "/p2p/" + p.Peer
		if p.Traffic != nil {
			line += fmt.Sprintf("  sent %s  received %s", humanize.IBytes(uint64(p.Traffic.BytesSent)), humanize.IBytes(uint64(p.Traffic.BytesReceived)))
		}
		fmt.Fprintln(e.stdout, line)
	}
	return nil
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[flags]")
	repo := repoFlag(e, fs)
	asJSON := fs.Bool("json", false, "print JSON")
	_, c, err := daemonArgs(fs, repo, args, 0, "no arguments")
	if err != nil {
		return err
	}
	var st statusInfo
	if err := c.getJSON(ctx, apiStatus, &st); err != nil {
		return err
	}
	w := e.stdout
	if *asJSON {
		return json.NewEncoder(w).Encode(st)
	}
	fmt.Fprintf(w, "peer      %s (%s)\n", st.Peer, st.Role)
	for _, a := range st.Addrs {
		fmt.Fprintf(w, "address   %s\n", a)
	}
	fmt.Fprintf(w, "network   %d peers connected, DHT %s with %d peers\n", st.Peers, st.DHTMode, st.DHTPeers)
	printReach(w, st.Reach)
	fmt.Fprintf(w, "storage   %s of %s used\n", humanize.IBytes(uint64(st.StoreUsed)), humanize.IBytes(uint64(st.StoreQuota)))
	printDataCap(w, st.DataCap)
	fmt.Fprintf(w, "traffic   sent %s in %d blocks, received %s in %d blocks\n",
		humanize.IBytes(st.BytesSent), st.BlocksSent, humanize.IBytes(st.BytesRecvd), st.BlocksRecvd)
	fmt.Fprintf(w, "receipts  network %s, epoch %d; last hour: %d countersigned as server (%s), %d held as client (%s)\n",
		st.Network, st.Epoch, st.ServedReceipts, humanize.IBytes(st.ServedBytes), st.ReceivedReceipts, humanize.IBytes(st.ReceivedBytes))
	if l := st.Ledger; l != nil {
		switch {
		case l.Error != "":
			fmt.Fprintf(w, "ledger    unavailable: %s\n", l.Error)
		default:
			fmt.Fprintf(w, "ledger    height %d, balance %s, escrow %s, state %s…\n", l.Height, formatOre(l.Balance), formatOre(l.Escrow), l.StateHash[:16])
		}
		for _, r := range l.Storage {
			last := "none yet"
			if r.LastRound >= 0 {
				last = fmt.Sprintf("round %d", r.LastRound)
			}
			line := fmt.Sprintf("          stores %s (%s): %s per epoch proven, %d proofs (last %s), %d missed, earned %s",
				r.Root, humanize.IBytes(r.Bytes), formatOre(r.PerEpoch), r.Proofs, last, r.Misses, formatOre(r.Earned))
			if r.Revoked {
				line += "; REVOKED: " + r.Why
			}
			fmt.Fprintln(w, line)
		}
		if l.IsLeader {
			fmt.Fprintln(w, "          this coordinator leads the committee")
		} else if l.Leader != "" {
			fmt.Fprintf(w, "          committee leader %s\n", l.Leader)
		}
		if c := l.Coordinator; c != nil {
			fmt.Fprintf(w, "chain     head %d (epoch %d, %d signatures), final to %d; finality %s: %d of %d members sign a block, tolerates %d crashed or %d lying\n",
				c.Head, c.HeadEpoch, c.HeadSigs, c.Final, c.Rule, c.Quorum, c.Members, c.Crashed, c.Byzantine)
			fmt.Fprintf(w, "pools     %d transactions and %d receipts wait for a block; %d receipts refused (pool full)\n",
				c.TxPool, c.ReceiptPool, c.ReceiptsRefused)
		}
	}
	fmt.Fprintf(w, "pinned    %d roots\n", len(st.Pins))
	for _, p := range st.Pins {
		fmt.Fprintf(w, "          %s\n", p)
	}
	fmt.Fprintf(w, "stored    %d roots whole or under order (heat: requests through this box and bytes it served, decayed)\n", len(st.Roots))
	for _, r := range st.Roots {
		line := fmt.Sprintf("          %s  %9s  %6.1f req  %9s served", r.Root, humanize.IBytes(uint64(r.Size)), r.Requests, humanize.IBytes(uint64(r.Served)))
		if r.Pinned {
			line += "  pinned"
		}
		if r.Order != "" {
			line += fmt.Sprintf("  order %s until epoch %d", r.Order, r.Until)
		}
		fmt.Fprintln(w, line)
	}
	if len(st.Targets) > 0 || st.TargetEpoch > 0 {
		fmt.Fprintf(w, "replicas  the committee's targets (planned in epoch %d): %d roots\n", st.TargetEpoch, len(st.Targets))
		for _, t := range st.Targets {
			fmt.Fprintf(w, "          %s  %s  %.1f req  target %d, %d hold it, %d ordered, until epoch %d\n",
				t.Root, t.Reason, t.Requests, t.Replicas, t.Holders, t.Ordered, t.Until)
		}
	}
	return nil
}

// printReach prints how the internet reaches the box.
func printReach(w io.Writer, r node.Reachability) {
	line := fmt.Sprintf("reach     %s (AutoNAT: %s", r.State, r.AutoNAT)
	if r.NATTCP != "" || r.NATUDP != "" {
		line += fmt.Sprintf("; NAT: tcp %s, udp %s", orUnknown(r.NATTCP), orUnknown(r.NATUDP))
	}
	fmt.Fprintln(w, line+")")
	for _, a := range r.Reachable {
		fmt.Fprintf(w, "          reachable at %s\n", a)
	}
	switch {
	case !r.PortMap:
		fmt.Fprintln(w, "          port mapping off (\"port_map\": false in config.json)")
	case len(r.Mappings) > 0:
		for _, m := range r.Mappings {
			fmt.Fprintf(w, "          mapped by the router: %s -> %s\n", m.External, m.Listen)
		}
	case r.Router == "none":
		fmt.Fprintln(w, "          no UPnP/NAT-PMP router answered: no port mapped")
	case r.Router == "found":
		fmt.Fprintln(w, "          the router answers UPnP/NAT-PMP but mapped nothing yet")
	default:
		fmt.Fprintln(w, "          asking the router for port mappings (UPnP/NAT-PMP)")
	}
	if len(r.Relays) > 0 {
		fmt.Fprintf(w, "          relays %s\n", strings.Join(r.Relays, ", "))
	}
	if r.RelayService {
		fmt.Fprintln(w, "          relays signalling for boxes behind NATs (128 KiB, 2 min per connection)")
	}
	if hp := r.HolePunch; hp.Attempts > 0 || hp.DirectDials > 0 {
		fmt.Fprintf(w, "          hole punching: %d of %d succeeded; direct dials back: %d of %d\n", hp.Successes, hp.Attempts, hp.DirectDialsOK, hp.DirectDials)
	}
	if b := r.Bytes; b != (node.PathBytes{}) {
		ib := func(n uint64) string { return humanize.IBytes(n) }
		fmt.Fprintf(w, "          blocks received %s direct (%s of them hole punched), %s relayed; sent %s direct (%s hole punched), %s relayed\n",
			ib(b.ReceivedDirect+b.ReceivedHolePunched), ib(b.ReceivedHolePunched), ib(b.ReceivedRelayed),
			ib(b.SentDirect+b.SentHolePunched), ib(b.SentHolePunched), ib(b.SentRelayed))
	}
	switch r.Report {
	case "symmetric-nat":
		fmt.Fprintln(w, "          heat reports say: behind a symmetric NAT (the committee orders this box no replicas that boxes behind NATs would need)")
	case "":
	default:
		fmt.Fprintf(w, "          heat reports say: %s\n", r.Report)
	}
	if r.Advice != "" {
		fmt.Fprintf(w, "          what to do: %s\n", r.Advice)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
