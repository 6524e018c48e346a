package testnet

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

//go:embed Dockerfile compose.yml.tmpl
var composeFiles embed.FS

// Files of a compose testnet's directory.
const (
	ComposeStateFile = "testnet.json" // the Compose description, written by PrepareCompose
	ComposeFile      = "compose.yml"  // the docker compose file
	composeBuildDir  = "build"        // docker build context: Dockerfile and the ore binary
	composeNodesDir  = "nodes"        // one repo per node, bind-mounted at /data
)

// Roles of compose testnet nodes. A publisher is a box with a deposit in
// the genesis.
const (
	ComposeCoordinator = "coordinator"
	ComposePublisher   = "publisher"
	ComposeGateway     = "gateway"
	ComposeBox         = "box"
)

// ComposeCoordinators is the size of a compose testnet's committee.
const ComposeCoordinators = 4

// p2pPort is where every container listens for libp2p (TCP and QUIC);
// GatewayHTTPPort is the gateway's HTTP port inside its container.
const (
	p2pPort         = 4001
	GatewayHTTPPort = 8080
)

// ComposeSpec says what testnet PrepareCompose lays out.
type ComposeSpec struct {
	Dir         string        // the testnet's directory (created; must not hold a testnet)
	Boxes       int           // boxes besides the coordinators, gateway and publisher (default 6)
	Subnet      string        // the private network, an IPv4 /24 or larger (default 10.213.7.0/24)
	EpochLength time.Duration // default 5 s
	Project     string        // compose project, network and container name prefix (default "ore-testnet")
	Image       string        // image tag (default "ore-testnet:latest")
	GatewayPort int           // host loopback port of the gateway (0: docker picks a free one)
	User        string        // "uid:gid" the containers run as (default: this process's)
	Deposit     uint64        // the publisher's genesis balance in base units (default 10,000 ore)
}

// ComposeNode is one container of a compose testnet.
type ComposeNode struct {
	Name string `json:"name"`
	Role string `json:"role"`
	IP   string `json:"ip"`
	Peer string `json:"peer"`
}

// Compose is a laid-out compose testnet: what `ore testnet` commands read
// from the testnet's directory.
type Compose struct {
	Dir         string        `json:"-"`
	Project     string        `json:"project"`
	Image       string        `json:"image"`
	Subnet      string        `json:"subnet"`
	GatewayPort int           `json:"gateway_port,omitempty"`
	User        string        `json:"user"`
	Network     string        `json:"network"` // the ledger network ID
	Nodes       []ComposeNode `json:"nodes"`
}

// ErrNoCompose says a directory holds no compose testnet.
var ErrNoCompose = errors.New("testnet: no compose testnet")

// PrepareCompose lays out a compose testnet in spec.Dir: one repo per node
// (identity, config, the shared genesis), the compose file and the docker
// build context (the caller copies the ore binary to BinaryPath). It does
// not touch docker.
func PrepareCompose(spec ComposeSpec) (*Compose, error) {
	if spec.Dir == "" {
		return nil, fmt.Errorf("testnet: compose needs a directory")
	}
	if spec.Boxes == 0 {
		spec.Boxes = 6
	}
	if spec.Subnet == "" {
		spec.Subnet = "10.213.7.0/24"
	}
	if spec.EpochLength == 0 {
		spec.EpochLength = 5 * time.Second
	}
	if spec.Project == "" {
		spec.Project = "ore-testnet"
	}
	if spec.Image == "" {
		spec.Image = "ore-testnet:latest"
	}
	if spec.User == "" {
		spec.User = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	if spec.Deposit == 0 {
		spec.Deposit = 10_000 * 1_000_000_000
	}
	prefix, err := netip.ParsePrefix(spec.Subnet)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() > 24 {
		return nil, fmt.Errorf("testnet: subnet %q is not an IPv4 network of /24 or larger", spec.Subnet)
	}
	prefix = prefix.Masked()
	if spec.Boxes < 1 || spec.Boxes > 150 {
		return nil, fmt.Errorf("testnet: %d boxes: a compose testnet has 1 to 150", spec.Boxes)
	}
	if _, err := os.Stat(filepath.Join(spec.Dir, ComposeStateFile)); err == nil {
		return nil, fmt.Errorf("testnet: %s already holds a testnet: take it down first (`ore testnet down`)", spec.Dir)
	}
	c := &Compose{Dir: spec.Dir, Project: spec.Project, Image: spec.Image, Subnet: prefix.String(),
		GatewayPort: spec.GatewayPort, User: spec.User, Network: spec.Project}

	// Addresses: .10+ coordinators, .20 publisher, .30 gateway, .101+ boxes
	// (.1 is docker's gateway).
	ip := func(n int) string {
		a := prefix.Addr().As4()
		a[3] += byte(n)
		return netip.AddrFrom4(a).String()
	}
	// A committee of 4: under byzantine-safe finality (what NewGenesis
	// picks for it) one coordinator may crash or lie.
	for i := range ComposeCoordinators {
		c.Nodes = append(c.Nodes, ComposeNode{Name: fmt.Sprintf("coord%d", i), Role: ComposeCoordinator, IP: ip(10 + i)})
	}
	c.Nodes = append(c.Nodes, ComposeNode{Name: "pub", Role: ComposePublisher, IP: ip(20)},
		ComposeNode{Name: "gw", Role: ComposeGateway, IP: ip(30)})
	for i := range spec.Boxes {
		c.Nodes = append(c.Nodes, ComposeNode{Name: fmt.Sprintf("box%d", i+1), Role: ComposeBox, IP: ip(101 + i)})
	}

	if err := os.MkdirAll(filepath.Join(spec.Dir, composeBuildDir), 0o755); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	// Identities first: the genesis names the coordinators and the publisher.
	var committee []ledger.Member
	balances := map[peer.ID]uint64{}
	for i := range c.Nodes {
		nd := &c.Nodes[i]
		fc := node.DefaultFileConfig()
		fc.Listen = []string{fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", p2pPort), fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", p2pPort)}
		fc.DHTMode = "server" // every container is reachable on the private network
		fc.Quota = "2 GiB"
		fc.Role = string(node.RoleBox)
		switch nd.Role {
		case ComposeCoordinator:
			fc.Role = string(node.RoleCoordinator)
		case ComposeGateway:
			fc.Role = string(node.RoleGateway)
			fc.Gateway = fmt.Sprintf("0.0.0.0:%d", GatewayHTTPPort)
		}
		fc.Genesis = node.GenesisFile
		id, err := node.Init(c.repo(nd.Name), fc)
		if err != nil {
			return nil, err
		}
		nd.Peer = id.String()
		switch nd.Role {
		case ComposeCoordinator:
			committee = append(committee, ledger.Member{ID: id, Addrs: []string{
				fmt.Sprintf("/ip4/%s/tcp/%d", nd.IP, p2pPort), fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", nd.IP, p2pPort)}})
		case ComposePublisher:
			balances[id] = spec.Deposit
		}
	}
	g, err := ledger.NewGenesis(c.Network, time.Now().Truncate(time.Second), committee, balances, 1_000_000_000)
	if err != nil {
		return nil, fmt.Errorf("testnet: genesis: %w", err)
	}
	g.EpochLength = spec.EpochLength
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("testnet: genesis: %w", err)
	}
	if err := g.Save(filepath.Join(spec.Dir, node.GenesisFile)); err != nil {
		return nil, err
	}
	for _, nd := range c.Nodes {
		if err := g.Save(filepath.Join(c.repo(nd.Name), node.GenesisFile)); err != nil {
			return nil, err
		}
	}
	compose, err := c.Render()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(spec.Dir, ComposeFile), compose, 0o644); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	dockerfile, err := composeFiles.ReadFile("Dockerfile")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.BuildDir(), "Dockerfile"), dockerfile, 0o644); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	return c, c.save()
}

// LoadCompose reads the testnet laid out in dir.
func LoadCompose(dir string) (*Compose, error) {
	b, err := os.ReadFile(filepath.Join(dir, ComposeStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: start one with `ore testnet up`", ErrNoCompose, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	c := &Compose{Dir: dir}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("testnet: %s is damaged (%v): remove the directory and its containers by hand", filepath.Join(dir, ComposeStateFile), err)
	}
	return c, nil
}

func (c *Compose) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, ComposeStateFile), append(b, '\n'), 0o644)
}

// Render returns the compose file of the testnet.
func (c *Compose) Render() ([]byte, error) {
	tmpl, err := template.ParseFS(composeFiles, "compose.yml.tmpl")
	if err != nil {
		return nil, fmt.Errorf("testnet: compose template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("testnet: compose template: %w", err)
	}
	return b.Bytes(), nil
}

func (c *Compose) repo(name string) string { return filepath.Join(c.Dir, composeNodesDir, name) }

// Repo is the host directory of a node's repo (mounted at /data).
func (c *Compose) Repo(name string) string { return c.repo(name) }

// BuildDir is the docker build context; the ore binary goes to BinaryPath.
func (c *Compose) BuildDir() string { return filepath.Join(c.Dir, composeBuildDir) }

// BinaryPath is where the static ore binary for the image goes.
func (c *Compose) BinaryPath() string { return filepath.Join(c.BuildDir(), "ore") }

// Container is the docker container name of a node.
func (c *Compose) Container(name string) string { return c.Project + "-" + name }

// Node looks a node up by name.
func (c *Compose) Node(name string) (ComposeNode, error) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = n.Name
	}
	return ComposeNode{}, fmt.Errorf("testnet: no node %q (the nodes are %v)", name, names)
}

// ByPeer returns the name of the node with peer ID id, or "".
func (c *Compose) ByPeer(id string) string {
	for _, n := range c.Nodes {
		if n.Peer == id {
			return n.Name
		}
	}
	return ""
}
