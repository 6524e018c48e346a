package testkit

import (
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// Party is an Ed25519 key and the peer ID it makes: an account, a box, a
// client or a committee member.
type Party struct {
	Key crypto.PrivKey
	ID  peer.ID
}

// NewParty returns a party with a fresh random key.
func NewParty(t testing.TB) Party {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return partyOf(t, k)
}

// NewParties returns n parties whose keys come from seed: the same seed
// gives the same parties in every run.
func NewParties(t testing.TB, seed uint64, n int) []Party {
	t.Helper()
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	src := rand.NewChaCha8(s)
	ps := make([]Party, n)
	for i := range ps {
		k, _, err := crypto.GenerateEd25519Key(src)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = partyOf(t, k)
	}
	return ps
}

func partyOf(t testing.TB, k crypto.PrivKey) Party {
	t.Helper()
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return Party{Key: k, ID: id}
}

// Root returns a dag-pb CIDv1 named by s: a content root no store holds.
func Root(t testing.TB, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.DagProtobuf, h)
}
