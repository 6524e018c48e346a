package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/pod"
)

// sampleBlock is a block with every kind of transaction, signed by two
// members.
func sampleBlock(t testing.TB) (*fixture, *Block) {
	f := newFixture(t, 2, 1, 1, 1000)
	root := testRoot(t, "r")
	b, _ := f.build(t, f.s, 1,
		f.signed(t, f.s, NewDeposit(f.pubs[0].ID, 0, 100)),
		f.signed(t, f.s, NewRegister(f.pubs[0].ID, 2, root, 0)),
		f.signed(t, f.s, NewTransfer(f.pubs[1].ID, f.srvs[0].ID, 0, 7)),
		NewReceiptTx(receipt(t, f.srvs[0], f.clis[0], root, 1, 1<<20, nil)),
		f.signed(t, f.s, NewPrewarm(f.pubs[0].ID, 3, root, 8, 100)))
	for _, m := range f.com[:2] {
		if err := b.Sign(m.Key); err != nil {
			t.Fatal(err)
		}
	}
	return f, b
}

func TestBlockRoundTrip(t *testing.T) {
	_, b := sampleBlock(t)
	enc := b.Marshal()
	got, err := UnmarshalBlock(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), enc) || got.Hash() != b.Hash() || len(got.Txs) != 5 || len(got.Sigs) != 2 {
		t.Fatal("round trip changed the block")
	}
	for i := range b.Txs {
		txEnc := b.Txs[i].Marshal()
		tx, err := UnmarshalTx(txEnc)
		if err != nil || !bytes.Equal(tx.Marshal(), txEnc) || tx.ID() != b.Txs[i].ID() {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	bad := map[string][]byte{
		"empty":     nil,
		"truncated": enc[:len(enc)-1],
		"trailing":  append(append([]byte(nil), enc...), 0),
		"version":   append([]byte{2}, enc[1:]...),
	}
	// Signatures out of order.
	swapped := *got
	swapped.Sigs = []Signature{got.Sigs[1], got.Sigs[0]}
	bad["unsorted signatures"] = swapped.Marshal()
	for name, data := range bad {
		if _, err := UnmarshalBlock(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := UnmarshalTx([]byte{1, 9, 0}); !errors.Is(err, ErrMalformed) {
		t.Error("unknown kind accepted")
	}
}

func TestFinality(t *testing.T) {
	f, b := sampleBlock(t)
	if n := b.VerifySignatures(f.g); n != 2 || !b.Final(f.g) {
		t.Fatalf("2 of 3 signed: %d valid, final %v", n, b.Final(f.g))
	}
	one := *b
	one.Sigs = b.Sigs[:1]
	if one.Final(f.g) {
		t.Fatal("1 of 3 is final")
	}
	// Signing again replaces; an outsider's signature does not count.
	if err := one.Sign(f.com[0].Key); err != nil {
		t.Fatal(err)
	}
	if err := one.Sign(f.pubs[0].Key); err != nil {
		t.Fatal(err)
	}
	if n := one.VerifySignatures(f.g); n != 1 || len(one.Sigs) != 2 {
		t.Fatalf("%d valid of %d", n, len(one.Sigs))
	}
	// A signature of another header does not count.
	other := *b
	other.Sigs = append([]Signature(nil), b.Sigs...)
	other.Header.Time++
	if other.VerifySignatures(f.g) != 0 {
		t.Fatal("signatures survived a header change")
	}
	if f.g.Quorum() != 2 {
		t.Fatal("quorum of 3")
	}
}

func TestMerkle(t *testing.T) {
	for n := 0; n < 20; n++ {
		leaves := make([][32]byte, n)
		for i := range leaves {
			leaves[i][0], leaves[i][1] = byte(i), byte(n)
		}
		root := MerkleRoot(leaves)
		for i := range leaves {
			path, ok := MerkleProof(leaves, i)
			if !ok || !VerifyMerkleProof(root, leaves[i], i, n, path) {
				t.Fatalf("n=%d i=%d: proof fails", n, i)
			}
			if VerifyMerkleProof(root, leaves[(i+1)%n], i, n, path) && n > 1 {
				t.Fatalf("n=%d i=%d: proof of another leaf passes", n, i)
			}
		}
		if n > 1 && MerkleRoot(leaves[:n-1]) == root {
			t.Fatal("prefix shares the root")
		}
	}
	// No duplicated-last-leaf ambiguity.
	a := [][32]byte{{1}, {2}, {3}}
	if MerkleRoot(a) == MerkleRoot(append(a, [32]byte{3})) {
		t.Fatal("duplicated leaf shares the root")
	}
}

func TestGenesis(t *testing.T) {
	f := newFixture(t, 3, 0, 0, 500)
	data, err := json.MarshalIndent(f.g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGenesis(data)
	if err != nil {
		t.Fatal(err)
	}
	if g.Hash() != f.g.Hash() || g.Supply() != 1500 || g.EpochLength != 10*time.Second {
		t.Fatalf("round trip: %s", data)
	}
	p := g.Params()
	if p.Network != testNetwork || !p.GenesisTime.Equal(testTime) || p.MaxSkew != 3 || p.Validate() != nil {
		t.Fatalf("params %+v", p)
	}
	path := t.TempDir() + "/genesis.json"
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	if g2, err := LoadGenesis(path); err != nil || g2.Hash() != g.Hash() {
		t.Fatal(err)
	}
	// Order of the committee in the file does not change the hash.
	g3 := *g
	g3.Committee = []Member{g.Committee[2], g.Committee[0], g.Committee[1]}
	if g3.Hash() != g.Hash() {
		t.Fatal("hash depends on committee order")
	}
	g3.PricePerGiB++
	if g3.Hash() == g.Hash() {
		t.Fatal("hash ignores the price")
	}

	k, _, _ := crypto.GenerateSecp256k1Key(nil)
	secp, _ := peer.IDFromPrivateKey(k)
	bad := map[string]func(g *Genesis){
		"committee of 6": func(g *Genesis) {
			for i := range 3 {
				g.Committee = append(g.Committee, Member{ID: f.pubs[i].ID, Addrs: []string{"/ip4/1.2.3.4/tcp/1"}})
			}
		},
		"finality rule 9":  func(g *Genesis) { g.Finality = 9 },
		"committee of 2":   func(g *Genesis) { g.Committee = g.Committee[:2] },
		"duplicate member": func(g *Genesis) { g.Committee[1].ID = g.Committee[0].ID },
		"secp member":      func(g *Genesis) { g.Committee[0].ID = secp },
		"bad address":      func(g *Genesis) { g.Committee[0].Addrs = []string{"nope"} },
		"no address":       func(g *Genesis) { g.Committee[0].Addrs = nil },
		"zero balance":     func(g *Genesis) { g.Balances[0].Amount = 0 },
		"duplicate account": func(g *Genesis) {
			g.Balances[1].Account = g.Balances[0].Account
		},
		"overflow":     func(g *Genesis) { g.Balances[0].Amount, g.Balances[1].Amount = 1<<63, 1<<63 },
		"no network":   func(g *Genesis) { g.Network = "" },
		"short epoch":  func(g *Genesis) { g.EpochLength = time.Millisecond },
		"no time":      func(g *Genesis) { g.Time = time.Time{} },
		"no price":     func(g *Genesis) { g.PricePerGiB = 0 },
		"secp account": func(g *Genesis) { g.Balances[0].Account = secp },
	}
	for name, m := range bad {
		g4, _ := ParseGenesis(data)
		m(g4)
		if err := g4.Validate(); !errors.Is(err, ErrBadGenesis) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseGenesis([]byte(`{"network":"x","surprise":1}`)); !errors.Is(err, ErrBadGenesis) {
		t.Error("unknown field accepted")
	}
	if _, err := ParseGenesis([]byte(`{"network":"x","epoch_length":"ten"}`)); !errors.Is(err, ErrBadGenesis) {
		t.Error("bad duration accepted")
	}
}

func FuzzDecodeTx(f *testing.F) {
	fx, b := sampleBlock(f)
	for i := range b.Txs {
		f.Add(b.Txs[i].Marshal())
	}
	// RulesV4's kinds: a registration with its root block, a ticket, an
	// order.
	root, block := sizedRoot(f, "v4", 1<<30, false)
	reg := fx.signed(f, fx.s, NewRegisterRoot(fx.pubs[0].ID, 0, root, block, 7, 9).WithReplicate(3))
	f.Add(reg.Marshal())
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: fx.pubs[0].ID, Client: fx.clis[0].ID, Cap: 1 << 20, Expires: 9}
	if err := tk.Sign(fx.pubs[0].Key); err != nil {
		f.Fatal(err)
	}
	ttx := NewTicketTx(tk)
	f.Add(ttx.Marshal())
	o := &heat.Order{Epoch: 3, Root: root, Until: 9, Reason: heat.ReasonHeat, Boxes: []peer.ID{fx.clis[0].ID}}
	if err := o.Sign(testNetwork, fx.com[0].Key); err != nil {
		f.Fatal(err)
	}
	otx := NewOrderTx(o)
	f.Add(otx.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := UnmarshalTx(data)
		if err != nil {
			return
		}
		if !bytes.Equal(tx.Marshal(), data) {
			t.Fatal("accepted input does not re-encode identically")
		}
	})
}

func FuzzDecodeBlock(f *testing.F) {
	_, b := sampleBlock(f)
	f.Add(b.Marshal())
	empty := &Block{Header: b.Header}
	f.Add(empty.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		blk, err := UnmarshalBlock(data)
		if err != nil {
			return
		}
		if !bytes.Equal(blk.Marshal(), data) {
			t.Fatal("accepted input does not re-encode identically")
		}
		blk.Hash()
	})
}
