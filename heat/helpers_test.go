package heat

import (
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

const testNetwork = "ore-test"

// party is a real Ed25519 identity.
type party struct {
	key crypto.PrivKey
	id  peer.ID
}

func newParty(t testing.TB) party {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return party{k, id}
}

func newParties(t testing.TB, n int) []party {
	out := make([]party, n)
	for i := range out {
		out[i] = newParty(t)
	}
	return out
}

// root returns a distinct CID for each name.
func root(t testing.TB, name any) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(fmt.Sprint(name)), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// longRoot returns a CID of about MaxCIDLen bytes (an identity multihash).
func longRoot(t testing.TB, i int) cid.Cid {
	t.Helper()
	data := make([]byte, MaxCIDLen-8)
	copy(data, fmt.Sprint(i))
	h, err := mh.Sum(data, mh.IDENTITY, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}
