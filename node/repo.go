package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/dht"
)

// Files in a repo directory.
const (
	ConfigFile   = "config.json"  // human-editable settings
	IdentityFile = "identity.key" // the Ed25519 key, mode 0600
	BlocksDir    = "blocks"       // the badger block store
	APIFile      = "api"          // written by a running daemon: its control API URL
	APITokenFile = "api.token"    // the control API's bearer token, mode 0600
	GenesisFile  = "genesis.json" // the ledger network's genesis, when the box joined one
)

// ErrNoRepo says a repo directory has not been initialised.
var ErrNoRepo = errors.New("node: no ore repo")

// FileConfig is the human-editable config.json of a repo.
type FileConfig struct {
	PeerID    string   `json:"peer_id"`
	Role      string   `json:"role"`
	Listen    []string `json:"listen"`
	API       string   `json:"api"`
	Bootstrap []string `json:"bootstrap"`
	Quota     string   `json:"quota"`
	DHTMode   string   `json:"dht_mode"`
	Profile   string   `json:"profile"`
	Gateway   string   `json:"gateway,omitempty"` // HTTP address when the role is gateway
	// GatewayMetrics also serves /metrics on the gateway's public address
	// (it is always on the API address).
	GatewayMetrics bool `json:"gateway_metrics,omitempty"`
	// GatewayDomains are the subdomain gateway's hostnames ({cid}.ipfs.{domain});
	// absent: "localhost".
	GatewayDomains []string `json:"gateway_domains,omitempty"`
	// GatewayTLSCert and GatewayTLSKey are PEM files: set, the gateway
	// serves HTTPS.
	GatewayTLSCert string `json:"gateway_tls_cert,omitempty"`
	GatewayTLSKey  string `json:"gateway_tls_key,omitempty"`
	// GatewayClientRate (requests per second) and GatewayClientCap
	// (requests in flight) are the gateway's limits per client address;
	// absent: the gateway's defaults (100/s, 16). A gateway behind a
	// reverse proxy sees one client, and a test suite is one client too.
	GatewayClientRate float64 `json:"gateway_client_rate,omitempty"`
	GatewayClientCap  int     `json:"gateway_client_cap,omitempty"`
	// DNSResolver is the DNS server ("host:port") DNSLink names are looked
	// up at; absent: the system's resolver.
	DNSResolver string `json:"dns_resolver,omitempty"`
	// Denylists are files in the compact denylist format (IPIP-383, the
	// bad-bits list): content the box neither serves nor fetches.
	Denylists []string `json:"denylists,omitempty"`
	Genesis   string   `json:"genesis,omitempty"` // the ledger network's genesis file, relative to the repo
	// UploadLimit caps the bytes per second the box serves ("2 MiB"; empty:
	// no limit).
	UploadLimit string `json:"upload_limit,omitempty"`
	// DataCap caps the bytes the box serves in a calendar month ("500 GiB";
	// empty: no cap): a home line's monthly allowance.
	DataCap string `json:"data_cap,omitempty"`
	// Dashboard is the address of the web dashboard (default
	// DefaultDashboard, loopback; "off" serves none).
	Dashboard string `json:"dashboard,omitempty"`
	// DashboardCert and DashboardKey, PEM files (relative to the repo or
	// absolute), make the dashboard serve HTTPS: for a LAN address, so
	// that its login link and cookie do not cross the LAN in clear.
	DashboardCert string `json:"dashboard_cert,omitempty"`
	DashboardKey  string `json:"dashboard_key,omitempty"`
	// FreeRate and FreeDaily are the free tier for peers that do not sign
	// receipts (Kubo, Helia): "2 MiB" a second and "8 GiB" a day by default
	// (256 KiB and 1 GiB on the small profile); FreeRate "off" switches it
	// off.
	FreeRate  string `json:"free_rate,omitempty"`
	FreeDaily string `json:"free_daily,omitempty"`
	// PortMap asks the home router to forward the listen ports (UPnP IGD,
	// NAT-PMP/PCP); absent means on. Set it to false when the ports are
	// forwarded by hand or UPnP is not wanted on the network.
	PortMap *bool `json:"port_map,omitempty"`
	// RelayService relays the signalling (hole punching) of boxes behind
	// NATs while AutoNAT finds this box public; absent means on.
	RelayService *bool `json:"relay_service,omitempty"`
	// ComputeShare is how many jobs the box runs for other peers at once
	// (cores it lends; 0 or absent: none). Its own jobs (ore fn run, the
	// gateway) run whatever it says.
	ComputeShare int `json:"compute_share,omitempty"`
	// ComputeMemory bounds the memory the box's jobs hold at once, a size
	// like "512 MiB" (absent: a quarter of the RAM, at most 256 MiB on the
	// small profile).
	ComputeMemory string `json:"compute_memory,omitempty"`
}

// DefaultFileConfig is what `ore init` writes.
func DefaultFileConfig() FileConfig {
	return FileConfig{
		Role:      string(RoleBox),
		Listen:    append([]string(nil), DefaultListenAddrs...),
		API:       "127.0.0.1:4501",
		Bootstrap: []string{},
		Quota:     "10 GiB",
		DHTMode:   "auto",
		Profile:   string(ProfileAuto),
	}
}

// Init creates a repo in dir with a new Ed25519 identity and cfg as its
// config (PeerID is filled in). It refuses a directory that already holds a
// repo, so a key is never overwritten.
func Init(dir string, cfg FileConfig) (peer.ID, error) {
	if _, err := os.Stat(filepath.Join(dir, IdentityFile)); err == nil {
		return "", fmt.Errorf("node: %s already holds an ore repo: use it, or pick another directory with --repo", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("node: create repo %s: %w", dir, err)
	}
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return "", fmt.Errorf("node: generate identity: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("node: encode identity: %w", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("node: derive peer ID: %w", err)
	}
	cfg.PeerID = id.String()
	if _, err := cfg.Options(); err != nil {
		return "", err
	}
	if err := writeFileAtomic(filepath.Join(dir, IdentityFile), raw, 0o600); err != nil {
		return "", err
	}
	if _, _, err := EnsureAPIToken(dir); err != nil {
		return "", err
	}
	if err := WriteConfig(dir, cfg); err != nil {
		return "", err
	}
	return id, nil
}

// WriteConfig replaces the repo's config file.
func WriteConfig(dir string, cfg FileConfig) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("node: encode config: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ConfigFile), append(b, '\n'), 0o600)
}

// LoadConfig reads the repo's config file.
func LoadConfig(dir string) (FileConfig, error) {
	var cfg FileConfig
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, fmt.Errorf("%w in %s: run `ore init` first", ErrNoRepo, dir)
	}
	if err != nil {
		return cfg, fmt.Errorf("node: read config: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("node: %s is not valid: %w (fix it by hand or move it away and run `ore init`)", filepath.Join(dir, ConfigFile), err)
	}
	return cfg, nil
}

// Options turns the config file into node options.
func (fc FileConfig) Options() ([]Option, error) {
	role, err := ParseRole(fc.Role)
	if err != nil {
		return nil, err
	}
	mode, err := dht.ParseMode(fc.DHTMode)
	if err != nil {
		return nil, err
	}
	opts := []Option{WithRole(role), WithDHTMode(mode)}
	if fc.Gateway != "" {
		opts = append(opts, WithGatewayListen(fc.Gateway))
	}
	if fc.GatewayMetrics {
		opts = append(opts, WithGatewayMetrics(true))
	}
	if len(fc.Denylists) > 0 {
		opts = append(opts, WithDenylists(fc.Denylists...))
	}
	if fc.DNSResolver != "" {
		opts = append(opts, WithDNSResolver(fc.DNSResolver))
	}
	if fc.GatewayTLSCert != "" || fc.GatewayTLSKey != "" {
		opts = append(opts, WithGatewayTLS(fc.GatewayTLSCert, fc.GatewayTLSKey))
	}
	if fc.GatewayDomains != nil {
		opts = append(opts, WithGatewayDomains(fc.GatewayDomains...))
	}
	if fc.GatewayClientRate < 0 || fc.GatewayClientCap < 0 {
		return nil, fmt.Errorf("node: gateway_client_rate %v and gateway_client_cap %d must not be negative (absent: the defaults)", fc.GatewayClientRate, fc.GatewayClientCap)
	}
	if fc.GatewayClientRate > 0 || fc.GatewayClientCap > 0 {
		opts = append(opts, WithGatewayClientLimits(fc.GatewayClientRate, fc.GatewayClientCap))
	}
	if len(fc.Listen) > 0 {
		opts = append(opts, WithListenAddrs(fc.Listen...))
	}
	if len(fc.Bootstrap) > 0 {
		if _, err := ParsePeerAddrs(fc.Bootstrap); err != nil {
			return nil, fmt.Errorf("config bootstrap: %w", err)
		}
		opts = append(opts, WithBootstrapAddrs(fc.Bootstrap...))
	}
	if fc.Quota != "" {
		q, err := humanize.ParseBytes(fc.Quota)
		if err != nil || q == 0 || q > 1<<62 {
			return nil, fmt.Errorf("node: config quota %q is not a size like \"10 GiB\"", fc.Quota)
		}
		opts = append(opts, WithQuota(int64(q)))
	}
	if fc.UploadLimit != "" {
		u, err := humanize.ParseBytes(fc.UploadLimit)
		if err != nil || u > 1<<40 {
			return nil, fmt.Errorf("node: config upload_limit %q is not a rate like \"2 MiB\" (bytes per second)", fc.UploadLimit)
		}
		opts = append(opts, WithUploadLimit(int64(u)))
	}
	if fc.DataCap != "" {
		d, err := ParseDataCap(fc.DataCap)
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithDataCap(d))
	}
	if fc.FreeRate != "" || fc.FreeDaily != "" {
		var r, d uint64
		var err error
		switch {
		case fc.FreeRate == "off":
			r = 0
		case fc.FreeRate != "":
			if r, err = humanize.ParseBytes(fc.FreeRate); err != nil || r == 0 || r > 1<<40 {
				return nil, fmt.Errorf("node: config free_rate %q is not a rate like \"2 MiB\" (bytes per second) or \"off\"", fc.FreeRate)
			}
		}
		if fc.FreeDaily != "" {
			if d, err = humanize.ParseBytes(fc.FreeDaily); err != nil || d == 0 || d > 1<<50 {
				return nil, fmt.Errorf("node: config free_daily %q is not a size like \"8 GiB\"", fc.FreeDaily)
			}
		}
		rate := int64(r)
		if fc.FreeRate == "off" {
			rate = -1
		}
		opts = append(opts, WithFreeTier(rate, int64(d)))
	}
	if fc.PortMap != nil {
		opts = append(opts, WithPortMap(*fc.PortMap))
	}
	if fc.RelayService != nil {
		opts = append(opts, WithRelayService(*fc.RelayService))
	}
	if fc.ComputeShare != 0 {
		opts = append(opts, WithComputeService(fc.ComputeShare))
	}
	if fc.ComputeMemory != "" {
		m, err := humanize.ParseBytes(fc.ComputeMemory)
		if err != nil || m == 0 || m > 1<<50 {
			return nil, fmt.Errorf("node: config compute_memory %q is not a size like \"512 MiB\"", fc.ComputeMemory)
		}
		opts = append(opts, WithComputeMemory(int64(m)))
	}
	profile, err := ParseProfile(fc.Profile)
	if err != nil {
		return nil, err
	}
	opts = append(opts, WithProfile(profile))
	return opts, nil
}

// DefaultDashboard is where the daemon serves its web dashboard unless the
// config or --dashboard says otherwise: loopback, this machine only.
const DefaultDashboard = "127.0.0.1:4503"

// ParseDataCap reads a monthly data cap: a size like "500 GiB", or "0" or
// "off" for none.
func ParseDataCap(s string) (int64, error) {
	if s == "off" || s == "none" {
		return 0, nil
	}
	d, err := humanize.ParseBytes(s)
	if err != nil || d > 1<<62 {
		return 0, fmt.Errorf("node: data cap %q is not a size like \"500 GiB\" (bytes a month; 0 or off: no cap)", s)
	}
	return int64(d), nil
}

// LoadIdentity reads the repo's private key.
func LoadIdentity(dir string) (crypto.PrivKey, error) {
	p := filepath.Join(dir, IdentityFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: run `ore init` first", ErrNoRepo, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("node: read identity: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("node: %s is damaged: %w", p, err)
	}
	return k, nil
}

// WriteAPIFile records the control API address of a running daemon.
func WriteAPIFile(dir, url string) error {
	return writeFileAtomic(filepath.Join(dir, APIFile), []byte(url+"\n"), 0o600)
}

// ReadAPIFile returns the control API address of the daemon running on the
// repo, or an error saying none runs.
func ReadAPIFile(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, APIFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node: no ore daemon is running on %s: start one with `ore daemon`", dir)
	}
	if err != nil {
		return "", fmt.Errorf("node: read api file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// RemoveAPIFile removes the api file when the daemon stops.
func RemoveAPIFile(dir string) error {
	err := os.Remove(filepath.Join(dir, APIFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// apiTokenBytes is the control API token's entropy: 256 bits, so it cannot
// be guessed, only read from the repo.
const apiTokenBytes = 32

// EnsureAPIToken returns the repo's control API token, creating it (mode
// 0600) when the repo has none: `Init` makes one, and a repo made before the
// API required a token gets one when its daemon starts, so it keeps working.
// created says a new token was written.
func EnsureAPIToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, APITokenFile)
	raw := make([]byte, apiTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("node: generate control API token: %w", err)
	}
	tok := hex.EncodeToString(raw)
	// O_EXCL: never replace a token another process made meanwhile (that
	// one wins and is read back), since a running daemon holds it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		existing, err := ReadAPIToken(dir)
		return existing, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("node: write %s: %w", path, err)
	}
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("node: write %s: %w", path, err)
	}
	return tok, true, nil
}

// ReadAPIToken returns the repo's control API token, with an error that says
// what to do when it cannot be read.
func ReadAPIToken(dir string) (string, error) {
	path := filepath.Join(dir, APITokenFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("node: no control API token at %s: the daemon creates it when it starts (`ore daemon --repo %s`)", path, dir)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("node: cannot read the control API token %s: run this command as the user the daemon runs as (e.g. `sudo -u ore`): %w", path, err)
	case err != nil:
		return "", fmt.Errorf("node: read control API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) != apiTokenBytes {
		return "", fmt.Errorf("node: %s is damaged (want %d hex characters): delete it and restart the daemon, which writes a new one", path, 2*apiTokenBytes)
	}
	return tok, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	return nil
}
