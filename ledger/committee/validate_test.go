package committee

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/pod"
)

// offline is a Committee without network or Raft: enough for its
// validators and its pool.
func offline(t *testing.T) (*Committee, []crypto.PrivKey) {
	t.Helper()
	var keys []crypto.PrivKey
	var members []ledger.Member
	for range 3 {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		keys = append(keys, k)
		members = append(members, ledger.Member{ID: id, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}})
	}
	g, err := ledger.NewGenesis("ore-test", time.Now().Add(-time.Hour).Truncate(time.Second), members, nil, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	c := &Committee{cfg: Config{Genesis: g}, txpool: newTxPool()}
	c.initMetrics()
	return c, keys
}

func gossipMsg(data []byte) *pubsub.Message {
	topic := "t"
	return &pubsub.Message{Message: &pb.Message{Data: data, Topic: &topic}}
}

// signedTx is a transfer of account a with nonce n, signed.
func signedTx(t *testing.T, c *Committee, a account, n uint64) ledger.Tx {
	t.Helper()
	tx := ledger.NewTransfer(a.ID, newAccount(t).ID, n, 1)
	if err := tx.Sign(c.cfg.Genesis.Network, a.Key); err != nil {
		t.Fatal(err)
	}
	return tx
}

func TestValidateSig(t *testing.T) {
	c, keys := offline(t)
	hash := [32]byte{1, 2, 3}
	sign := func(k crypto.PrivKey, h [32]byte) []byte {
		sig, err := k.Sign(ledger.SigPayload(h))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		return (&sigMsg{height: 7, hash: hash, sig: ledger.Signature{Signer: id, Sig: sig}}).marshal()
	}
	good := sign(keys[0], hash)
	msg := gossipMsg(good)
	if r := c.validateSig(context.Background(), "", msg); r != pubsub.ValidationAccept {
		t.Fatalf("a member's signature: %v", r)
	}
	if m, ok := msg.ValidatorData.(*sigMsg); !ok || m.height != 7 {
		t.Fatalf("validator data %v", msg.ValidatorData)
	}
	stranger, _, _ := crypto.GenerateEd25519Key(nil)
	for name, tc := range map[string]struct {
		data   []byte
		reason string
	}{
		"junk":              {[]byte("junk"), reasonMalformed},
		"empty":             {nil, reasonMalformed},
		"trailing bytes":    {append(bytes.Clone(good), 0), reasonMalformed},
		"not a member":      {sign(stranger, hash), reasonNotMember},
		"over another hash": {sign(keys[1], [32]byte{9}), reasonBadSignature},
	} {
		counter := c.metrics.gossip.WithLabelValues(BlocksTopic, tc.reason)
		before := testutil.ToFloat64(counter)
		if r := c.validateSig(context.Background(), "", gossipMsg(tc.data)); r != pubsub.ValidationReject {
			t.Errorf("%s: %v, want reject", name, r)
		}
		if testutil.ToFloat64(counter) != before+1 {
			t.Errorf("%s: not counted as %s", name, tc.reason)
		}
	}
}

func TestValidateTx(t *testing.T) {
	c, _ := offline(t)
	a := newAccount(t)
	good := signedTx(t, c, a, 1)
	msg := gossipMsg(good.Marshal())
	if r := c.validateTx(context.Background(), "", msg); r != pubsub.ValidationAccept {
		t.Fatalf("a signed transfer: %v", r)
	}
	if tx, ok := msg.ValidatorData.(*ledger.Tx); !ok || tx.ID() != good.ID() {
		t.Fatalf("validator data %v", msg.ValidatorData)
	}
	forged := good
	forged.Amount++
	srv, cli := newAccount(t), newAccount(t)
	receipt := ledger.NewReceiptTx(testkit.Signed(t, &pod.Receipt{Network: "ore-test", Epoch: 1, Root: testkit.Root(t, "r"), Seq: 1, Bytes: 1, Blocks: 1}, srv, cli))
	for name, tc := range map[string]struct {
		data   []byte
		reason string
	}{
		"junk":            {[]byte("junk"), reasonMalformed},
		"oversized":       {append(good.Marshal(), make([]byte, ledger.MaxTxSize)...), reasonMalformed},
		"forged":          {forged.Marshal(), reasonBadSignature},
		"another network": {func() []byte { tx := good; _ = tx.Sign("other", a.Key); return tx.Marshal() }(), reasonBadSignature},
		"a receipt":       {receipt.Marshal(), reasonReceipt},
	} {
		counter := c.metrics.gossip.WithLabelValues(TxsTopic, tc.reason)
		before := testutil.ToFloat64(counter)
		m := gossipMsg(tc.data)
		if r := c.validateTx(context.Background(), "", m); r != pubsub.ValidationReject || m.ValidatorData != nil {
			t.Errorf("%s: %v, want reject", name, r)
		}
		if testutil.ToFloat64(counter) != before+1 {
			t.Errorf("%s: not counted as %s", name, tc.reason)
		}
	}

	// A valid transaction the pool cannot take is ignored, not rejected:
	// its sender broke no rule.
	for n := uint64(1); n <= maxAccountTxs; n++ {
		if err := c.keepTx(signedTx(t, c, a, n)); err != nil {
			t.Fatalf("transaction %d of the account: %v", n, err)
		}
	}
	over := signedTx(t, c, a, maxAccountTxs+1)
	if r := c.validateTx(context.Background(), "", gossipMsg(over.Marshal())); r != pubsub.ValidationIgnore {
		t.Fatalf("an account over its limit: %v, want ignore", r)
	}
	if got := testutil.ToFloat64(c.metrics.gossip.WithLabelValues(TxsTopic, reasonAccountFull)); got != 1 {
		t.Fatalf("account_full counted %v", got)
	}
}

func TestTxPoolBounds(t *testing.T) {
	c, _ := offline(t)
	a, b := newAccount(t), newAccount(t)
	// Per account: maxAccountTxs waiting; the next is refused, with an
	// error; another account is not.
	for n := uint64(1); n <= maxAccountTxs; n++ {
		if err := c.keepTx(signedTx(t, c, a, n)); err != nil {
			t.Fatalf("transaction %d: %v", n, err)
		}
	}
	if err := c.keepTx(signedTx(t, c, a, maxAccountTxs+1)); !errors.Is(err, ErrAccountFull) {
		t.Fatalf("transaction over the account's limit: %v", err)
	}
	again := signedTx(t, c, a, 1) // another transfer, same nonce: a new ID
	if err := c.keepTx(again); !errors.Is(err, ErrAccountFull) {
		t.Fatalf("another transaction over the limit: %v", err)
	}
	if err := c.keepTx(signedTx(t, c, b, 1)); err != nil {
		t.Fatalf("another account: %v", err)
	}
	// Per block: the lowest maxAccountTxsPerBlock nonces of each account;
	// the rest waits, and the account has room again.
	txs := c.takeTxs()
	var fromA []uint64
	for _, tx := range txs {
		if tx.From == a.ID {
			fromA = append(fromA, tx.Nonce)
		}
	}
	if len(txs) != maxAccountTxsPerBlock+1 || len(fromA) != maxAccountTxsPerBlock || fromA[0] != 1 || !slices.IsSorted(fromA) {
		t.Fatalf("a block takes %d transactions, %v of the full account", len(txs), fromA)
	}
	if err := c.keepTx(signedTx(t, c, a, maxAccountTxs+1)); err != nil {
		t.Fatalf("the account after a block took some: %v", err)
	}
	if next := c.takeTxs(); len(next) != maxAccountTxsPerBlock || next[0].Nonce != maxAccountTxsPerBlock+1 {
		t.Fatalf("the next block takes %d, from nonce %d", len(next), next[0].Nonce)
	}
	// In all: a full pool refuses any account.
	c.mu.Lock()
	for i := 0; len(c.txpool.txs) < maxTxPool; i++ {
		var id [32]byte
		id[0], id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16), 0xff
		c.txpool.txs[id] = ledger.Tx{}
	}
	c.mu.Unlock()
	if err := c.keepTx(signedTx(t, c, newAccount(t), 1)); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("a full pool: %v", err)
	}
}

// Tickets count against their publisher's ticket budget, not its account
// transactions, and a block takes every one that waits: receipts under a
// ticket are refused until a block holds it.
func TestTxPoolTickets(t *testing.T) {
	c, _ := offline(t)
	pub := newAccount(t)
	for n := uint64(1); n <= maxAccountTxs; n++ {
		if err := c.keepTx(signedTx(t, c, pub, n)); err != nil {
			t.Fatalf("transaction %d: %v", n, err)
		}
	}
	const tickets = 3 * maxAccountTxs
	for i := range tickets {
		tk := &pod.Ticket{Version: pod.TicketVersion, Network: c.cfg.Genesis.Network, Publisher: pub.ID, Cap: 1, Expires: 9, Nonce: uint64(i)}
		if err := tk.Sign(pub.Key); err != nil {
			t.Fatal(err)
		}
		if err := c.keepTx(ledger.NewTicketTx(tk)); err != nil {
			t.Fatalf("ticket %d of a publisher whose account transactions are at their bound: %v", i, err)
		}
	}
	n := 0
	for _, tx := range c.takeTxs() {
		if tx.Kind == ledger.KindTicket {
			n++
		}
	}
	if n != tickets {
		t.Fatalf("a block takes %d of the %d tickets waiting", n, tickets)
	}
	c.mu.Lock()
	c.txpool.tickets[pub.ID] = maxPublisherTickets
	c.mu.Unlock()
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: c.cfg.Genesis.Network, Publisher: pub.ID, Cap: 1, Expires: 9, Nonce: tickets}
	if err := tk.Sign(pub.Key); err != nil {
		t.Fatal(err)
	}
	if err := c.keepTx(ledger.NewTicketTx(tk)); !errors.Is(err, ErrAccountFull) {
		t.Fatalf("a ticket past the publisher's budget: %v", err)
	}
}

// A full pool answers the submitter with an error, over /ore/submit and
// through Submit, instead of dropping the transaction while saying OK.
func TestFullPoolRefusesSubmitter(t *testing.T) {
	cl := newCluster(t)
	cl.leader(t, 10*time.Second)
	for _, m := range cl.members {
		m.c.mu.Lock()
		for i := 0; len(m.c.txpool.txs) < maxTxPool; i++ {
			var id [32]byte
			id[0], id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16), 0xff
			m.c.txpool.txs[id] = ledger.Tx{}
		}
		m.c.mu.Unlock()
	}
	tx := ledger.NewDeposit(cl.pub.ID, 1, 1)
	if err := tx.Sign(cl.g.Network, cl.pub.Key); err != nil {
		t.Fatal(err)
	}
	if err := cl.members[0].c.Submit(context.Background(), tx); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("Submit to a full pool: %v", err)
	}
	outsider, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	err = SubmitTx(context.Background(), outsider, cl.g, tx)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "pool full") {
		t.Fatalf("SubmitTx to full pools: %v", err)
	}
}

// Junk on the ledger's topics stops at the validator: it is counted, and
// its sender loses peer score.
func TestGossipJunkIsRejected(t *testing.T) {
	cl := newCluster(t)
	m := cl.members[0]
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, h, intake.GossipOptions()...) // no validators: publishes anything
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: m.h.ID(), Addrs: m.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{BlocksTopic, TxsTopic} {
		topic, err := ps.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the member's subscription to "+name, func() bool { return slices.Contains(topic.ListPeers(), m.h.ID()) })
		if err := topic.Publish(ctx, []byte("junk on "+name)); err != nil {
			t.Fatal(err)
		}
		counter := m.c.metrics.gossip.WithLabelValues(name, reasonMalformed)
		waitFor(t, time.Minute, "the junk on "+name+" counted", func() bool { return testutil.ToFloat64(counter) == 1 })
	}
	waitFor(t, time.Minute, "the sender's score below zero", func() bool { return m.score(h.ID()) < 0 })
}
