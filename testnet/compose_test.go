package testnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

// The compose layout is checked without docker: testnet/e2e.sh runs it in
// containers where a Docker engine answers.
func TestPrepareCompose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tn")
	c, err := PrepareCompose(ComposeSpec{Dir: dir, Boxes: 4, Subnet: "10.9.8.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != ComposeCoordinators+1+1+4 {
		t.Fatalf("%d nodes, want %d", len(c.Nodes), ComposeCoordinators+6)
	}
	g, err := ledger.LoadGenesis(filepath.Join(dir, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if crashed, byz := g.Tolerates(); len(g.Committee) != 4 || g.FinalityRule() != ledger.FinalityBFT || crashed != 1 || byz != 1 {
		t.Fatalf("committee of %d, finality rule %d, tolerates %d crashed %d byzantine; want 4, %d, 1, 1",
			len(g.Committee), g.FinalityRule(), crashed, byz, ledger.FinalityBFT)
	}
	compose, err := os.ReadFile(filepath.Join(dir, ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]bool{}
	for _, n := range c.Nodes {
		if ips[n.IP] || !strings.HasPrefix(n.IP, "10.9.8.") {
			t.Errorf("node %s has address %s", n.Name, n.IP)
		}
		ips[n.IP] = true
		// Every repo is a box's repo with the shared genesis.
		fc, err := node.LoadConfig(c.Repo(n.Name))
		if err != nil {
			t.Fatal(err)
		}
		if fc.PeerID != n.Peer || fc.Genesis != node.GenesisFile {
			t.Errorf("%s: config %+v", n.Name, fc)
		}
		if _, err := fc.Options(); err != nil {
			t.Errorf("%s: %v", n.Name, err)
		}
		ng, err := ledger.LoadGenesis(filepath.Join(c.Repo(n.Name), node.GenesisFile))
		if err != nil || ng.Hash() != g.Hash() {
			t.Errorf("%s: genesis differs (%v)", n.Name, err)
		}
		for _, want := range []string{"  " + n.Name + ":", "container_name: " + c.Container(n.Name), "ipv4_address: " + n.IP, "./nodes/" + n.Name + ":/data"} {
			if !strings.Contains(string(compose), want) {
				t.Errorf("compose file lacks %q", want)
			}
		}
		switch n.Role {
		case ComposeCoordinator:
			if fc.Role != string(node.RoleCoordinator) {
				t.Errorf("%s has role %s", n.Name, fc.Role)
			}
			found := false
			for _, m := range g.Committee {
				found = found || (m.ID.String() == n.Peer && strings.Contains(m.Addrs[0], "/ip4/"+n.IP+"/"))
			}
			if !found {
				t.Errorf("coordinator %s at %s is not in the genesis committee %v", n.Name, n.IP, g.Committee)
			}
		case ComposePublisher:
			if len(g.Balances) != 1 || g.Balances[0].Account.String() != n.Peer {
				t.Errorf("the publisher holds no deposit: %v", g.Balances)
			}
		case ComposeGateway:
			if fc.Role != string(node.RoleGateway) || !strings.HasPrefix(fc.Gateway, "0.0.0.0:") {
				t.Errorf("gateway config %+v", fc)
			}
		}
	}
	if !strings.Contains(string(compose), `"127.0.0.1::8080"`) {
		t.Error("the gateway's port is not published on loopback")
	}
	if _, err := os.Stat(filepath.Join(c.BuildDir(), "Dockerfile")); err != nil {
		t.Error(err)
	}
	// The state file round-trips; a second up on the same directory is refused.
	back, err := LoadCompose(dir)
	if err != nil || len(back.Nodes) != len(c.Nodes) || back.Nodes[4] != c.Nodes[4] {
		t.Fatalf("LoadCompose: %v %+v", err, back)
	}
	if _, err := PrepareCompose(ComposeSpec{Dir: dir}); err == nil {
		t.Error("a second testnet in the same directory was laid out")
	}
}

func TestPrepareComposeRefusesBadInput(t *testing.T) {
	for _, spec := range []ComposeSpec{
		{Subnet: "10.9.8.0/28"},
		{Subnet: "fd00::/64"},
		{Subnet: "nonsense"},
		{Boxes: 500},
		{Boxes: -1},
	} {
		spec.Dir = t.TempDir()
		if _, err := PrepareCompose(spec); err == nil {
			t.Errorf("%+v accepted", spec)
		}
	}
	if _, err := LoadCompose(t.TempDir()); err == nil {
		t.Error("LoadCompose of an empty directory")
	}
}
