package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

// LedgerSpec describes the ledger of a test network.
type LedgerSpec struct {
	Coordinators []int          // boxes that form the committee (3, 4 or 5; 4 and 5 get byzantine-safe finality)
	Balances     map[int]uint64 // initial balances of boxes (publishers)
	EpochLength  time.Duration  // default 10 s
	PricePerGiB  uint64         // default 1 ore (1e9 base units) per GiB
	Network      string         // default "ore-testnet"
	Rules        uint8          // the ledger's rules version (default: ledger.RulesLatest)
	// StorageRound is the epochs of a storage challenge round (rules 5;
	// default: the ledger's, 720): tests and demos set a few.
	StorageRound uint64
	// JobCheckPermille and JobChallengeEpochs are the jobs' sampling rate
	// and challenge window (rules 5; default: the ledger's).
	JobCheckPermille   uint16
	JobChallengeEpochs uint64
}

// WithLedger gives the network a genesis: the coordinators get the
// coordinator role, every box joins the ledger network.
func WithLedger(spec LedgerSpec) Option { return func(c *config) { c.ledger = &spec } }

// makeGenesis writes the genesis from the boxes' identities, with fixed
// loopback ports for the coordinators (their addresses are in the genesis).
func (nw *Network) makeGenesis(cfg *config) error {
	spec := cfg.ledger
	if spec.EpochLength == 0 {
		spec.EpochLength = 10 * time.Second
	}
	if spec.PricePerGiB == 0 {
		spec.PricePerGiB = 1_000_000_000
	}
	if spec.Network == "" {
		spec.Network = "ore-testnet"
	}
	ids := make([]peer.ID, len(nw.Dirs))
	for i, dir := range nw.Dirs {
		k, err := node.LoadIdentity(dir)
		if err != nil {
			return err
		}
		if ids[i], err = peer.IDFromPrivateKey(k); err != nil {
			return err
		}
	}
	if cfg.listen == nil {
		cfg.listen = make(map[int][]string)
	}
	var committee []ledger.Member
	for _, i := range spec.Coordinators {
		if i < 0 || i >= len(ids) {
			return fmt.Errorf("testnet: no box %d to be a coordinator", i)
		}
		port, err := FreePort()
		if err != nil {
			return err
		}
		addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
		cfg.listen[i] = []string{addr}
		if !cfg.tcpOnly {
			cfg.listen[i] = append(cfg.listen[i], "/ip4/127.0.0.1/udp/0/quic-v1")
		}
		committee = append(committee, ledger.Member{ID: ids[i], Addrs: []string{addr}})
		WithBoxOptions(i, node.WithRole(node.RoleCoordinator))(cfg)
	}
	balances := make(map[peer.ID]uint64)
	for i, amount := range spec.Balances {
		if i < 0 || i >= len(ids) {
			return fmt.Errorf("testnet: no box %d to hold a balance", i)
		}
		balances[ids[i]] = amount
	}
	g, err := ledger.NewGenesis(spec.Network, time.Now().Truncate(time.Second), committee, balances, spec.PricePerGiB)
	if err != nil {
		return fmt.Errorf("testnet: genesis: %w", err)
	}
	g.EpochLength = spec.EpochLength
	if spec.Rules != 0 {
		g.Rules = spec.Rules
	}
	g.StorageRound = spec.StorageRound
	g.JobCheckPermille, g.JobChallengeEpochs = spec.JobCheckPermille, spec.JobChallengeEpochs
	if err := g.Validate(); err != nil {
		return fmt.Errorf("testnet: genesis: %w", err)
	}
	nw.Genesis = g
	cfg.nodeOpts = append([]node.Option{node.WithGenesis(g)}, cfg.nodeOpts...)
	return nil
}

// FreePort returns a loopback TCP port that is free now, for a listener
// whose address must be known before it listens (a coordinator's, which
// goes into the genesis).
//
// The port comes from below the kernel's ephemeral range: in the window
// before the listener binds it, a port the kernel handed out for "port 0"
// could be handed out again to any other listener of this process or of
// the test packages `go test ./...` runs beside it (a daemon once failed
// to start so: "address already in use"); below the range only an
// explicit bind takes it.
func FreePort() (int, error) {
	low := 32768 // Linux's default ip_local_port_range starts here
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				low = n
			}
		}
	}
	for range 100 {
		port := 1024 + rand.IntN(low-1024)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("testnet: no free loopback TCP port below %d in 100 tries", low)
}

// Leader waits until a coordinator leads the committee and returns its box.
func (nw *Network) Leader(ctx context.Context) (int, error) {
	for {
		for i, n := range nw.Nodes {
			if c := n.Committee(); c != nil && c.Leader() {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("testnet: no committee leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
