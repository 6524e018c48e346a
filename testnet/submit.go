package testnet

import (
	"context"
	"fmt"
	"time"

	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
)

// SubmitFinal signs tx as n (n fills in From and the nonce, as
// Node.SignAndSubmit does), submits it and waits until a final block holds
// it (n's nonce on the final chain reaches tx's), for at most d.
func SubmitFinal(ctx context.Context, n *node.Node, tx ledger.Tx, d time.Duration) error {
	tx, err := n.SignAndSubmit(ctx, tx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := waitLedger(wctx, n, func(st *ledger.State) bool { return st.Nonce(n.ID()) >= tx.Nonce }); err != nil {
		if ctx.Err() != nil { // the caller's deadline, not d
			return fmt.Errorf("testnet: the %s (nonce %d) was in no final block when the caller's time ran out: %w", tx.Kind, tx.Nonce, ctx.Err())
		}
		return fmt.Errorf("testnet: the %s (nonce %d) is in no final block after %s: %w", tx.Kind, tx.Nonce, d, err)
	}
	return nil
}
