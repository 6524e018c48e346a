package node

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ipv4After is how much later than go-libp2p's ranking (which dials a
// public IPv4 address 250 ms after the IPv6 ones) a box with a global
// IPv6 address dials a peer's public IPv4 addresses when the peer has
// public IPv6 ones too.
//
// The rule: a box with a global IPv6 address connects over IPv6 where it
// can. Its connections' family decides what the other boxes see of it: a
// dual-stack home box whose IPv4 is behind a NAT and whose IPv6 address
// needs none is reachable over IPv6, but AutoNAT v1 dials back the address
// a connection comes from, and identify reports it, so a box connected
// over IPv4 is found private and its NAT's kind is taken for its own
// (AutoNAT v2, which tests every address, confirms the IPv6 one only
// after minutes: it asks one peer once in 2 minutes). With 250 ms, a
// loaded machine lost the race: in the NAT drill the dual-stack box's
// first connections went over IPv4 in 3 runs of 6 on a 2-core machine
// with a load of 2 to 7, and it stayed private. A peer whose IPv6
// address does not answer costs one more second to connect.
const ipv4After = time.Second

// v6Ranker is the box's dial ranker: go-libp2p's, with a peer's public
// IPv4 addresses dialled ipv4After later while the box has a global IPv6
// address (set by the host once it listens) and the peer announces a
// public IPv6 address.
type v6Ranker struct {
	global atomic.Bool // the box listens on a global IPv6 address
}

func (r *v6Ranker) rank(addrs []ma.Multiaddr) []network.AddrDelay {
	out := swarm.DefaultDialRanker(addrs)
	if !r.global.Load() || !hasPublicIPv6(addrs) {
		return out
	}
	for i := range out {
		if isPublicIPv4(out[i].Addr) {
			out[i].Delay += ipv4After
		}
	}
	return out
}

// hasPublicIPv6 says whether addrs hold a direct (not relayed) public
// IPv6 address.
func hasPublicIPv6(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if isDirect(a) && manet.IsPublicAddr(a) && a[0].Code() == ma.P_IP6 {
			return true
		}
	}
	return false
}

func isPublicIPv4(a ma.Multiaddr) bool {
	return isDirect(a) && len(a) > 0 && a[0].Code() == ma.P_IP4 && manet.IsPublicAddr(a)
}

func isDirect(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err != nil && len(a) > 0
}

// globalIPv6 says whether one of the box's listen addresses (as the
// network resolved them to the interfaces' addresses) is a global
// unicast IPv6 address.
func globalIPv6(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if len(a) == 0 || a[0].Code() != ma.P_IP6 {
			continue
		}
		ip := net.ParseIP(a[0].Value())
		if ip != nil && ip.IsGlobalUnicast() && manet.IsPublicAddr(a) {
			return true
		}
	}
	return false
}
