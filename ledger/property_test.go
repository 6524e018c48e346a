package ledger

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/pod"
)

// TestRandomChains builds chains of random blocks (valid and invalid
// candidates of every kind), checks conservation of supply after each
// block, then replays the encoded blocks from genesis on a fresh state and
// checks every state hash.
func TestRandomChains(t *testing.T) {
	prewarmsSeen := false
	for seed := uint64(1); seed <= 8; seed++ {
		f := newFixture(t, 4, 5, 5, 1_000_000_000)
		// Every rules version a chain may have: earlier ones refuse the
		// kinds they lack.
		rules := []uint8{RulesV4, RulesV1, RulesV2, RulesV3}[seed%4]
		if rules != f.g.Rules {
			f.g.Rules = rules
			var err error
			if f.s, err = NewState(f.g); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(seed, 42))
		var roots []cid.Cid
		var blocks4 [][]byte // the roots' blocks, for RulesV4 registrations
		for i, name := range []string{"a", "b", "c"} {
			c, b := sizedRoot(t, name, uint64(i+1)<<30, false)
			roots, blocks4 = append(roots, c), append(blocks4, b)
		}
		var tickets []*pod.Ticket // made so far, learned or not
		var all []party
		for _, ps := range [][]party{f.pubs, f.srvs, f.clis} {
			all = append(all, ps...)
		}
		pick := func(ps []party) party { return ps[rng.IntN(len(ps))] }
		var blocks [][]byte
		var hashes [][32]byte
		epoch := uint64(0)
		accepted, refused := 0, 0
		for range 30 {
			epoch += uint64(rng.IntN(3))
			nonce := make(map[peer.ID]uint64)
			acct := func(id peer.ID) uint64 {
				if _, ok := nonce[id]; !ok {
					nonce[id] = f.s.Nonce(id)
				}
				nonce[id]++
				if rng.IntN(20) == 0 {
					return nonce[id] - 1 // a replay
				}
				return nonce[id]
			}
			var txs []Tx
			for range 5 + rng.IntN(25) {
				var tx Tx
				switch rng.IntN(11) {
				case 0:
					p := pick(f.pubs)
					tx = NewDeposit(p.ID, acct(p.ID), rng.Uint64N(f.s.Balance(p.ID)/2+2))
				case 1:
					p, q := pick(all), pick(all)
					tx = NewTransfer(p.ID, q.ID, acct(p.ID), rng.Uint64N(f.s.Balance(p.ID)/3+2))
				case 2:
					p := pick(f.pubs)
					tx = NewRegister(p.ID, acct(p.ID), roots[rng.IntN(len(roots))], rng.Uint64N(1<<40))
				case 3:
					// Sometimes someone else's root, out-of-range replicas or Until.
					p := pick(f.pubs)
					tx = NewPrewarm(p.ID, acct(p.ID), roots[rng.IntN(len(roots))], uint32(rng.IntN(MaxPrewarmReplicas+4)),
						epoch+uint64(rng.IntN(8))-1)
				case 4:
					// Sometimes more than the escrow, or nothing.
					p := pick(f.pubs)
					tx = NewWithdraw(p.ID, acct(p.ID), rng.Uint64N(f.s.Escrow(p.ID)+2))
				case 5:
					p := pick(f.pubs)
					tx = NewSpendCap(p.ID, acct(p.ID), rng.Uint64N(1<<12))
				case 6:
					// Sometimes a block that is not the root's.
					p, i := pick(f.pubs), rng.IntN(len(roots))
					tx = NewRegisterRoot(p.ID, acct(p.ID), roots[i], blocks4[(i+rng.IntN(8)/7)%len(roots)],
						rng.Uint64N(1<<40), rng.Uint64N(3)*rng.Uint64N(1<<14))
				case 7:
					// A ticket: some for every root or any client, some expired
					// or forged, some handed over twice.
					if len(tickets) > 0 && rng.IntN(6) == 0 {
						txs = append(txs, NewTicketTx(tickets[rng.IntN(len(tickets))]))
						continue
					}
					p := pick(f.pubs)
					tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: p.ID,
						Cap: rng.Uint64N(4 << 30), Expires: epoch + uint64(rng.IntN(10)) - 2, Nonce: rng.Uint64()}
					if rng.IntN(3) > 0 {
						tk.Root = roots[rng.IntN(len(roots))]
					}
					if rng.IntN(2) == 0 {
						tk.Client = pick(f.clis).ID
					}
					if err := tk.Sign(p.Key); err != nil {
						t.Fatal(err)
					}
					if rng.IntN(12) == 0 {
						tk.Cap++
					}
					tickets = append(tickets, tk)
					txs = append(txs, NewTicketTx(tk))
					continue
				default:
					srv, cli := pick(f.srvs), pick(f.clis)
					if rng.IntN(15) == 0 {
						cli = srv
					}
					re := epoch + 1 - min(epoch+1, uint64(rng.IntN(6)))
					r := receipt(t, srv, cli, roots[rng.IntN(len(roots))], re, rng.Uint64N(8<<30), func(r *pod.Receipt) {
						if len(tickets) > 0 && rng.IntN(3) > 0 {
							r.Version, r.Ticket = pod.VersionTicket, tickets[rng.IntN(len(tickets))].ID()
						}
					})
					if rng.IntN(15) == 0 {
						r.Bytes++
					}
					txs = append(txs, NewReceiptTx(r))
					continue
				}
				txs = append(txs, f.signed(t, f.s, tx))
			}
			b, n, rej, err := Build(f.s, epoch, f.com[rng.IntN(3)].ID, int64(epoch), txs)
			if err != nil {
				t.Fatal(err)
			}
			accepted, refused = accepted+len(b.Txs), refused+len(rej)
			if len(b.Txs)+len(rej) != len(txs) {
				t.Fatal("Build lost transactions")
			}
			checkSupply(t, n)
			checkLimitsV4(t, n)
			blocks = append(blocks, b.Marshal())
			hashes = append(hashes, n.Hash())
			f.s = n
		}
		if accepted == 0 || refused == 0 {
			t.Fatalf("seed %d: %d accepted, %d refused: the mix is too one-sided", seed, accepted, refused)
		}
		s, err := NewState(f.g)
		if err != nil {
			t.Fatal(err)
		}
		for i, enc := range blocks {
			b, err := UnmarshalBlock(enc)
			if err != nil {
				t.Fatal(err)
			}
			if s, err = Apply(s, b); err != nil {
				t.Fatalf("seed %d block %d: %v", seed, i+1, err)
			}
			if s.Hash() != hashes[i] {
				t.Fatalf("seed %d block %d: replay gives another state", seed, i+1)
			}
			checkSupply(t, s)
		}
		if s.LastHash() != f.s.LastHash() || s.Height() != 30 {
			t.Fatal("replay ends elsewhere")
		}
		if !slices.Equal(s.Prewarms(), f.s.Prewarms()) {
			t.Fatalf("seed %d: replay ends with other pre-warms", seed)
		}
		prewarmsSeen = prewarmsSeen || len(s.Prewarms()) > 0
		var paidAny bool
		for _, p := range f.srvs {
			paidAny = paidAny || s.Balance(p.ID) > 0
		}
		if !paidAny {
			t.Fatalf("seed %d: no server was ever paid", seed)
		}
	}
	if !prewarmsSeen {
		t.Fatal("no chain ended with an active pre-warm")
	}
}

// checkLimitsV4 checks RulesV4's limits on a state: no ticket paid for
// more bytes than its cap, no client claimed more of a root in an epoch
// than RetryFactor times its size.
func checkLimitsV4(t *testing.T, s *State) {
	t.Helper()
	for _, sh := range s.tickets {
		if sh == nil {
			continue
		}
		for id, e := range sh.m {
			if e.Spent > e.Cap {
				t.Fatalf("ticket %x paid for %d bytes, its cap is %d", id[:4], e.Spent, e.Cap)
			}
		}
	}
	sizes := map[string]uint64{}
	for _, r := range s.regs {
		sizes[r.Root.KeyString()] = r.Size
	}
	for e, p := range s.paid {
		for cr, n := range p.claimed {
			if n > RetryFactor*sizes[cr.Root] {
				t.Fatalf("epoch %d: client %s claimed %d bytes of a root of %d", e, cr.Client, n, sizes[cr.Root])
			}
		}
	}
}
