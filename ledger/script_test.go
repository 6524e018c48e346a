package ledger

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/pod"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt")

// TestScripts runs testdata/*.txt, in the style of etcd raft's data-driven
// tests: each case is a command, "----", and its expected output up to a
// blank line. Parties are pub0-1, srv0-2, cli0-2 (pubs start with
// 1,000,000); roots are names. Commands:
//
//	deposit ACC AMOUNT | transfer FROM TO AMOUNT | register ACC ROOT PRICE |
//	prewarm ACC ROOT REPLICAS UNTIL | withdraw ACC AMOUNT | cap ACC AMOUNT |
//	registerroot ACC ROOT PRICE OPEN SIZE (RulesV4: ROOT becomes a dag-pb
//	    root whose links declare SIZE bytes; "raw" makes it a raw root of
//	    SIZE bytes, registered without its block)
//	    queue a signed transaction with the account's next nonce
//	    (add "nonce=N" to force one, "forge" to spoil the signature)
//	ticket NAME PUB ROOT|* CLI|* CAP EXPIRES [forge] [hold]
//	    queue a ticket of PUB's for ROOT (or every root) to CLI (or any);
//	    "hold" makes it without handing it to the ledger
//	handover NAME    queue a ticket made with "hold"
//	receipt SRV CLI ROOT EPOCH BYTES [forge] [network=N] [blocks=N] [ticket=NAME]
//	block EPOCH      build the queued transactions, apply, print refusals
//	show ACC...      print accounts
//	paid SRV CLI ROOT EPOCH
//	prewarms         print the active pre-warms
//	rules N          start over on a genesis of rules version N
//	spent NAME       print what the ticket paid for and its cap
//	escrow ACC EPOCH print ACC's escrow, spending cap, what it spent on
//	                 receipts of EPOCH and its pending withdrawal
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 2, 3, 3, 1_000_000)
	names := map[string]party{}
	for i, p := range f.pubs {
		names[fmt.Sprintf("pub%d", i)] = p
	}
	for i := range f.srvs {
		names[fmt.Sprintf("srv%d", i)], names[fmt.Sprintf("cli%d", i)] = f.srvs[i], f.clis[i]
	}
	var queue []Tx
	next := map[peer.ID]uint64{}
	nonce := func(id peer.ID, opts map[string]string) uint64 {
		if v, ok := opts["nonce"]; ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
		if _, ok := next[id]; !ok {
			next[id] = f.s.Nonce(id)
		}
		next[id]++
		return next[id]
	}
	rootNames := map[string]string{}
	roots := map[string]cid.Cid{} // the roots registerroot made
	root := func(name string) cid.Cid {
		c, ok := roots[name]
		if !ok {
			c = testRoot(t, name)
		}
		rootNames[c.KeyString()] = name
		return c
	}
	tickets := map[string]*pod.Ticket{}
	partyName := func(id peer.ID) string {
		for n, p := range names {
			if p.ID == id {
				return n
			}
		}
		return id.String()
	}
	num := func(s string) uint64 {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("bad number %q", s)
		}
		return n
	}
	run := func(cmd string) string {
		var args []string
		opts := map[string]string{}
		for _, w := range strings.Fields(cmd) {
			if k, v, ok := strings.Cut(w, "="); ok {
				opts[k] = v
			} else {
				args = append(args, w)
			}
		}
		var out strings.Builder
		// account signs tx; "forge" flips a bit of the signature.
		account := func(tx Tx) Tx {
			tx = f.signed(t, f.s, tx)
			if slices.Contains(args, "forge") {
				tx.Sig = slices.Clone(tx.Sig)
				tx.Sig[0] ^= 1
			}
			return tx
		}
		switch args[0] {
		case "deposit":
			p := names[args[1]]
			queue = append(queue, account(NewDeposit(p.ID, nonce(p.ID, opts), num(args[2]))))
		case "transfer":
			p := names[args[1]]
			queue = append(queue, account(NewTransfer(p.ID, names[args[2]].ID, nonce(p.ID, opts), num(args[3]))))
		case "register":
			p := names[args[1]]
			queue = append(queue, account(NewRegister(p.ID, nonce(p.ID, opts), root(args[2]), num(args[3]))))
		case "prewarm":
			p := names[args[1]]
			queue = append(queue, account(NewPrewarm(p.ID, nonce(p.ID, opts), root(args[2]), uint32(num(args[3])), num(args[4]))))
		case "withdraw":
			p := names[args[1]]
			queue = append(queue, account(NewWithdraw(p.ID, nonce(p.ID, opts), num(args[2]))))
		case "cap":
			p := names[args[1]]
			queue = append(queue, account(NewSpendCap(p.ID, nonce(p.ID, opts), num(args[2]))))
		case "registerroot":
			p := names[args[1]]
			raw := slices.Contains(args, "raw")
			c, block := sizedRoot(t, args[2], num(args[5]), raw)
			if raw {
				block = nil
			}
			roots[args[2]] = c
			queue = append(queue, account(NewRegisterRoot(p.ID, nonce(p.ID, opts), root(args[2]), block, num(args[3]), num(args[4]))))
		case "ticket":
			tk := &pod.Ticket{Version: pod.TicketVersion, Network: testNetwork, Publisher: names[args[2]].ID,
				Cap: num(args[5]), Expires: num(args[6]), Nonce: uint64(len(tickets))}
			if args[3] != "*" {
				tk.Root = root(args[3])
			}
			if args[4] != "*" {
				tk.Client = names[args[4]].ID
			}
			if err := tk.Sign(names[args[2]].Key); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(args, "forge") {
				tk.Cap *= 2
			}
			tickets[args[1]] = tk
			if !slices.Contains(args, "hold") {
				queue = append(queue, NewTicketTx(tk))
			}
		case "handover":
			queue = append(queue, NewTicketTx(tickets[args[1]]))
		case "spent":
			_, capBytes, spent, _, ok := f.s.Ticket(tickets[args[1]].ID())
			fmt.Fprintf(&out, "%s known=%v spent=%d cap=%d\n", args[1], ok, spent, capBytes)
		case "rules":
			f.g.Rules = uint8(num(args[1]))
			var err error
			if f.s, err = NewState(f.g); err != nil {
				t.Fatal(err)
			}
		case "receipt":
			r := receipt(t, names[args[1]], names[args[2]], root(args[3]), num(args[4]), num(args[5]), func(r *pod.Receipt) {
				if n, ok := opts["network"]; ok {
					r.Network = n
				}
				if n, ok := opts["blocks"]; ok {
					r.Blocks = num(n)
				}
				if n, ok := opts["ticket"]; ok {
					r.Version, r.Ticket = pod.VersionTicket, tickets[n].ID()
				}
			})
			if len(args) > 6 && args[6] == "forge" {
				r.Bytes++
			}
			queue = append(queue, NewReceiptTx(r))
		case "block":
			b, n, rej, err := Build(f.s, num(args[1]), f.com[0].ID, 0, queue)
			if err != nil {
				fmt.Fprintf(&out, "error: %v\n", err)
				break
			}
			if _, err := Apply(f.s, b); err != nil {
				t.Fatalf("Apply refuses what Build built: %v", err)
			}
			checkSupply(t, n)
			fmt.Fprintf(&out, "height %d epoch %d: %d txs\n", b.Header.Height, b.Header.Epoch, len(b.Txs))
			for _, r := range rej {
				fmt.Fprintf(&out, "refused #%d %s: %s\n", r.Index, queue[r.Index].Kind, r.Reason)
			}
			f.s, queue = n, nil
			clear(next)
		case "show":
			for _, name := range args[1:] {
				a := f.s.Account(names[name].ID)
				fmt.Fprintf(&out, "%s balance=%d escrow=%d nonce=%d\n", name, a.Balance, a.Escrow, a.Nonce)
			}
		case "escrow":
			id := names[args[1]].ID
			a := f.s.Account(id)
			fmt.Fprintf(&out, "%s escrow=%d balance=%d cap=%d spent=%d", args[1], a.Escrow, a.Balance, a.EpochCap, f.s.Spent(id, num(args[2])))
			if w, ok := f.s.Withdrawal(id); ok {
				fmt.Fprintf(&out, " withdrawing=%d at=%d", w.Amount, w.At)
			}
			out.WriteString("\n")
		case "paid":
			k := pod.Key{Server: names[args[1]].ID, Client: names[args[2]].ID, Root: string(root(args[3]).Bytes()), Epoch: num(args[4])}
			fmt.Fprintf(&out, "%d\n", f.s.Paid(k))
		case "prewarms":
			for _, p := range f.s.Prewarms() {
				fmt.Fprintf(&out, "%s by %s: %d replicas until %d\n", rootNames[p.Root.KeyString()], partyName(p.Publisher), p.Replicas, p.Until)
			}
			if len(f.s.Prewarms()) == 0 {
				out.WriteString("none\n")
			}
		default:
			t.Fatalf("unknown command %q", cmd)
		}
		return out.String()
	}

	// Parse and run: command, "----", expected output up to a blank line.
	var rewritten bytes.Buffer
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			rewritten.WriteString(line + "\n")
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command without ----", file, i+1)
		}
		var want strings.Builder
		j := i + 2
		for ; j < len(lines) && lines[j] != ""; j++ {
			want.WriteString(lines[j] + "\n")
		}
		got := run(line)
		if got != want.String() && !*update {
			t.Errorf("%s:%d: %s\ngot:\n%swant:\n%s", file, i+1, line, got, want.String())
		}
		rewritten.WriteString(line + "\n----\n" + got)
		i = j - 1
	}
	if *update {
		out := strings.TrimRight(rewritten.String(), "\n") + "\n"
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
