package heat

import (
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/orecdn/ore/internal/testkit"
)

const testNetwork = "ore-test"

// party is a real Ed25519 identity.
type party = testkit.Party

var newParty = testkit.NewParty

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
