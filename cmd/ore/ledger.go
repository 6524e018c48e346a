package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

func cmdLedger(ctx context.Context, e *env, args []string) error {
	usageText := `usage: ore ledger COMMAND [flags]

  balance [PEER]            balance, escrow and nonce of this box (or PEER)
  blocks [--from H]         the chain's blocks
  verify                    replay the chain from genesis, print the state hash
  deposit AMOUNT            move AMOUNT ore from this box's balance into its escrow
  register ROOT [--price P] [--open B] [--replicate R]
                            register content this box publishes, P ore per GiB;
                            on a network of rules 4, B ore an epoch pays
                            deliveries under no ticket (default: tickets only)
                            and R ore an epoch pays the replicas the committee
                            orders when it is hot (default: none)
  prewarm ROOT [--replicas N] [--for D]
                            ask N boxes to pre-store ROOT (registered by this
                            box) for D, e.g. before a release; on a network of
                            rules 4 it reserves from the escrow what the N
                            replicas may cost and gives back the rest after
  storage ROOT --price P [--replicas N] [--for D]
                            pay N boxes P ore per GiB per epoch to hold ROOT
                            (registered by this box) for D, each round they
                            prove it (rules 5); reserves from the escrow what
                            they may earn, and commits to ROOT's bytes
  transfer PEER AMOUNT      pay PEER AMOUNT ore
  ticket TICKET|ID          what the ledger knows of a ticket: its cap and
                            the bytes paid under it
  withdraw AMOUNT           move AMOUNT ore of this box's escrow back to its
                            balance, after a notice of a few epochs (the
                            escrow pays deliveries made before it)
  cap AMOUNT                pay at most AMOUNT ore from the escrow for the
                            deliveries of any one epoch (0: no cap)
  delegate PEER [--for D] [--revoke]
                            let the key PEER (an app server's box) sign tickets
                            paid from this box's escrow for D (rules 4); the
                            tickets it signed before a revocation stay valid`
	sub, args, done, err := subcommand(e, usageText, "a ledger command", args)
	if done {
		return err
	}
	fs := newFlags(e, "ledger "+sub, "[flags]")
	repo := repoFlag(e, fs)
	from := fs.Uint64("from", 1, "first block height (blocks)")
	price := fs.String("price", "", "price per GiB in ore (register; default: the network's), or per GiB per epoch held (storage)")
	openBudget := fs.String("open", "", "ore an epoch paid for deliveries under no ticket (register; rules 4; default 0: tickets only)")
	replicate := fs.String("replicate", "", "ore an epoch paid for the replicas the committee orders when the root is hot (register; rules 4; default 0: none)")
	replicas := fs.Uint("replicas", 8, fmt.Sprintf("how many boxes pre-store the content (prewarm; 1 to %d)", ledger.MaxPrewarmReplicas))
	prewarmFor := fs.Duration("for", time.Hour, fmt.Sprintf("how long the boxes keep it (prewarm), or the delegate may sign (delegate), rounded up to whole epochs (at most %d epochs)", ledger.MaxPrewarmEpochs))
	wait := fs.Bool("wait", true, "wait until a block takes the transaction")
	revoke := fs.Bool("revoke", false, "revoke the delegate (delegate)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	out := func(v any, text func()) error {
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(v)
		}
		text()
		return nil
	}
	switch sub {
	case "balance":
		if len(pos) > 1 {
			return fmt.Errorf("%w: balance takes at most one PEER", errUsage)
		}
		q := url.Values{}
		if len(pos) == 1 {
			q.Set("account", pos[0])
		}
		var st ledgerStateInfo
		if err := c.getJSON(ctx, apiLedgerState+"?"+q.Encode(), &st); err != nil {
			return err
		}
		return out(st, func() {
			fmt.Fprintf(e.stdout, "account  %s\nbalance  %s\nescrow   %s\nnonce    %d\nledger   %s at height %d, epoch %d\n",
				st.Account, formatOre(st.Balance), formatOre(st.Escrow), st.Nonce, st.Network, st.Height, st.Epoch)
			if st.StorageEarned > 0 {
				fmt.Fprintf(e.stdout, "earned   %s for proven storage (of roots still held; the rest of the balance: deliveries and transfers)\n", formatOre(st.StorageEarned))
			}
			if st.EpochCap > 0 {
				fmt.Fprintf(e.stdout, "cap      %s an epoch (spent %s on this epoch's deliveries)\n", formatOre(st.EpochCap), formatOre(st.Spent))
			}
			if st.Withdrawing > 0 {
				fmt.Fprintf(e.stdout, "withdraw %s moves from escrow to balance at epoch %d\n", formatOre(st.Withdrawing), st.WithdrawAt)
			}
			for _, p := range st.Prewarms {
				fmt.Fprintf(e.stdout, "prewarm  %s on %d boxes until epoch %d\n", p.Root, p.Replicas, p.Until)
			}
		})
	case "ticket":
		if err := wantArgs(pos, 1, "TICKET (or its ID)"); err != nil {
			return err
		}
		var st ledgerStateInfo
		if err := c.getJSON(ctx, apiLedgerState+"?"+url.Values{"ticket": {pos[0]}}.Encode(), &st); err != nil {
			return err
		}
		return out(st.Ticket, func() {
			t := st.Ticket
			if !t.Known {
				fmt.Fprintf(e.stdout, "ticket %s is not on the ledger (not handed over yet, or expired and forgotten) at height %d\n", t.ID, st.Height)
				return
			}
			fmt.Fprintf(e.stdout, "ticket   %s\npublisher %s\npaid     %d of %d bytes\nexpires  after epoch %d (now %d)\n", t.ID, t.Publisher, t.Spent, t.Cap, t.Expires, st.Epoch)
		})
	case "blocks":
		var bs []blockInfo
		if err := c.getJSON(ctx, apiLedgerBlocks+"?from="+strconv.FormatUint(*from, 10), &bs); err != nil {
			return err
		}
		return out(bs, func() {
			if len(bs) == 0 {
				fmt.Fprintln(e.stdout, "no blocks yet")
			}
			for _, b := range bs {
				final := "final"
				if !b.Final {
					final = "signing"
				}
				fmt.Fprintf(e.stdout, "%6d  epoch %-8d %s…  %4d txs (%d receipts)  %d sigs %s  %s\n",
					b.Height, b.Epoch, b.Hash[:16], b.Txs, b.Receipts, b.Sigs, final, b.Time)
			}
		})
	case "verify":
		var v verifyInfo
		if err := c.getJSON(ctx, apiLedgerVerify, &v); err != nil {
			return err
		}
		return out(v, func() {
			fmt.Fprintf(e.stdout, "verified %d final blocks from genesis: every hash, signature and receipt\nheight %d, supply %s\nstate hash %s\nfinality %s\n",
				v.Blocks, v.Height, formatOre(v.Supply), v.StateHash, v.Finality)
			for _, ev := range v.Evidence {
				fmt.Fprintf(e.stdout, "evidence in block %d: member %s signed two blocks (%s…, %s…) as %s at height %d round %d: excluded from signing\n",
					ev.Block, ev.Member, ev.A[:12], ev.B[:12], ev.Step, ev.Height, ev.Round)
			}
		})
	case "deposit", "register", "transfer", "prewarm", "storage", "withdraw", "cap", "delegate":
		q := url.Values{"kind": {sub}}
		switch sub {
		case "delegate":
			if err := wantArgs(pos, 1, "PEER (the key that is to sign tickets)"); err != nil {
				return err
			}
			if _, err := peer.Decode(pos[0]); err != nil {
				return fmt.Errorf("%w: %q is not a peer ID: %v", errUsage, pos[0], err)
			}
			q.Set("to", pos[0])
			if *revoke {
				q.Set("revoke", "1")
			} else {
				q.Set("for", prewarmFor.String())
			}
		case "cap":
			if err := wantArgs(pos, 1, "AMOUNT (in ore an epoch; 0 lifts the cap)"); err != nil {
				return err
			}
			a, err := parseOre(pos[0])
			if err != nil {
				return err
			}
			q.Set("amount", strconv.FormatUint(a, 10))
		case "deposit", "withdraw":
			if err := wantArgs(pos, 1, "AMOUNT (in ore)"); err != nil {
				return err
			}
			a, err := parseOre(pos[0])
			if err != nil {
				return err
			}
			q.Set("amount", strconv.FormatUint(a, 10))
		case "register":
			if err := wantArgs(pos, 1, "ROOT"); err != nil {
				return err
			}
			if _, err := node.ParseCID(pos[0]); err != nil {
				return err
			}
			q.Set("root", pos[0])
			if *openBudget != "" {
				o, err := parseOre(*openBudget)
				if err != nil {
					return err
				}
				q.Set("open", strconv.FormatUint(o, 10))
			}
			if *replicate != "" {
				o, err := parseOre(*replicate)
				if err != nil {
					return err
				}
				q.Set("replicate", strconv.FormatUint(o, 10))
			}
			if *price != "" {
				p, err := parseOre(*price)
				if err != nil {
					return err
				}
				q.Set("price", strconv.FormatUint(p, 10))
			}
		case "prewarm", "storage":
			if err := wantArgs(pos, 1, "ROOT"); err != nil {
				return err
			}
			if sub == "storage" {
				if *price == "" {
					return fmt.Errorf("%w: storage needs --price (ore per GiB per epoch held)", errUsage)
				}
				p, err := parseOre(*price)
				if err != nil {
					return err
				}
				q.Set("price", strconv.FormatUint(p, 10))
			}
			if _, err := node.ParseCID(pos[0]); err != nil {
				return err
			}
			if *replicas < 1 || *replicas > ledger.MaxPrewarmReplicas {
				return fmt.Errorf("%w: --replicas %d: ask for 1 to %d boxes", errUsage, *replicas, ledger.MaxPrewarmReplicas)
			}
			if *prewarmFor <= 0 {
				return fmt.Errorf("%w: --for %s: give a positive duration, like 1h or 30m", errUsage, *prewarmFor)
			}
			q.Set("root", pos[0])
			q.Set("replicas", strconv.FormatUint(uint64(*replicas), 10))
			q.Set("for", prewarmFor.String())
		case "transfer":
			if err := wantArgs(pos, 2, "PEER AMOUNT"); err != nil {
				return err
			}
			a, err := parseOre(pos[1])
			if err != nil {
				return err
			}
			q.Set("to", pos[0])
			q.Set("amount", strconv.FormatUint(a, 10))
		}
		if *wait {
			q.Set("wait", "1")
		}
		var info txInfo
		if err := c.postJSON(ctx, apiLedgerTx+"?"+q.Encode(), &info); err != nil {
			return err
		}
		return out(info, func() {
			what := info.Kind
			if info.Kind == ledger.KindPrewarm.String() {
				what = fmt.Sprintf("prewarm of %s on %d boxes until epoch %d (ends %s)", info.Root, info.Replicas, info.Until, info.Ends)
			}
			if info.Height > 0 {
				fmt.Fprintf(e.stdout, "%s (nonce %d) is in block %d\n", what, info.Nonce, info.Height)
			} else {
				fmt.Fprintf(e.stdout, "%s (nonce %d) submitted: %s\n", what, info.Nonce, info.ID)
			}
		})
	}
	fmt.Fprintln(e.stderr, usageText)
	return fmt.Errorf("%w: unknown ledger command %q", errUsage, sub)
}

// parseOre reads an amount of ore ("12", "0.5", "0.000000001") into base
// units (1 ore = 10^9).
func parseOre(s string) (uint64, error) {
	bad := fmt.Errorf("%w: %q is not an amount of ore (like 12 or 0.5)", errUsage, s)
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" && frac == "" || len(frac) > 9 {
		return 0, bad
	}
	w := uint64(0)
	if whole != "" {
		v, err := strconv.ParseUint(whole, 10, 64)
		if err != nil || v > (1<<64-1)/oreUnit {
			return 0, bad
		}
		w = v
	}
	f := uint64(0)
	if frac != "" {
		v, err := strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return 0, bad
		}
		f = v
	}
	total := w*oreUnit + f
	if total == 0 {
		return 0, errors.Join(bad, errors.New("the amount must be positive"))
	}
	return total, nil
}
