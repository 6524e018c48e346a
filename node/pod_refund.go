package node

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/bitswap"
)

var _ bitswap.GateRefunder = (*podService)(nil)

// Refund takes back bytes Allow counted against p for a block that did not
// leave after all (p cancelled it while it waited for the uplink): p will
// never sign for them, and counted they would shrink its credit window
// until the debt ages out (MaxSkew epochs later).
func (s *podService) Refund(p peer.ID, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.debt[p]; d != nil {
		d.pay(int64(size), true)
	}
}
