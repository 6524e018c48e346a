package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A refunded block frees its room in the peer's credit window.
func TestRefundFreesTheCreditWindow(t *testing.T) {
	n := newTestBox(t, WithCreditWindow(2<<20))
	s := n.pod
	p := peer.ID("client")
	const block = 512 << 10
	for i := 0; i < 4; i++ {
		if !s.Allow(p, block) {
			t.Fatalf("block %d of a 2 MiB window refused", i)
		}
	}
	if s.Allow(p, block) {
		t.Fatal("a full window let a fifth block through")
	}
	s.Refund(p, block) // one of the four did not leave
	if !s.Allow(p, block) {
		t.Fatal("a refunded block's room must be free again")
	}
	s.Refund("stranger", block) // nothing counted: no effect, no panic
	s.Refund(p, 8*block)
	if !s.Allow(p, block) {
		t.Fatal("debt cannot go below zero; the window must be empty")
	}
}
