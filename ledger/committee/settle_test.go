package committee

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/orecdn/ore/ledger/intake"
	"github.com/orecdn/ore/pod"
)

// The tests' quiet window is long beside the gaps between late receipts
// (10 ms), so a slow machine does not make them fail.
const testQuiet = time.Second

func settleCommittee() (*Committee, *intake.Pool) {
	pool := intake.NewPool()
	return &Committee{cfg: Config{Pool: pool, Clock: time.Now}}, pool
}

func addLate(pool *intake.Pool, epoch uint64, i int) {
	pool.Add(&pod.Receipt{Server: peer.ID("server"), Client: peer.ID(fmt.Sprint("client", i)), Epoch: epoch, Seq: 1})
}

// While receipts of the epoch keep arriving, the close waits for them; it
// closes after the last one.
func TestSettleWaitsForLateReceipts(t *testing.T) {
	c, pool := settleCommittee()
	const late = 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range late {
			addLate(pool, 7, i)
			addLate(pool, 8, i) // the next epoch's receipts do not hold the close
			time.Sleep(10 * time.Millisecond)
		}
	}()
	c.settle(context.Background(), 7, testQuiet, time.Now().Add(time.Minute))
	n := pool.Added(7)
	<-done
	if n != late {
		t.Fatalf("closed with %d of the epoch's %d late receipts in the pool", n, late)
	}
}

// A pool that receives nothing closes after one quiet window; one that
// never stops receiving closes at the deadline.
func TestSettleIsBounded(t *testing.T) {
	c, pool := settleCommittee()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if waited := c.settle(ctx, 7, testQuiet, time.Now().Add(time.Minute)); ctx.Err() != nil || waited >= time.Minute {
		t.Fatalf("a quiet pool held the close %s", waited)
	}
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				addLate(pool, 7, i)
			}
		}
	}()
	deadline := time.Now().Add(2 * testQuiet)
	c.settle(ctx, 7, testQuiet, deadline)
	close(stop)
	<-trickled
	if ctx.Err() != nil {
		t.Fatal("the close waited out an endless trickle")
	}
	if time.Now().Before(deadline) {
		t.Fatal("the close did not wait for receipts still arriving")
	}
}

// A pause in the intake right after receipts of the epoch arrived (nothing
// at all arrives for a window) does not close the epoch: what the pause
// held back comes after it.
func TestSettleWaitsOutAPause(t *testing.T) {
	c, pool := settleCommittee()
	done := make(chan int)
	// settle's windows are [kW, (k+1)W) from t0: receipts arrive until
	// 1.3W, none until 3.2W (the whole window [2W, 3W)), then for 0.5W.
	t0 := time.Now()
	go func() {
		i := 0
		burst := func(until time.Duration) {
			for time.Since(t0) < until {
				addLate(pool, 7, i)
				i++
				time.Sleep(10 * time.Millisecond)
			}
		}
		burst(testQuiet * 13 / 10)
		time.Sleep(time.Until(t0.Add(testQuiet * 32 / 10)))
		burst(testQuiet * 37 / 10)
		done <- i
	}()
	c.settle(context.Background(), 7, testQuiet, t0.Add(time.Minute))
	n := pool.Added(7)
	if sent := <-done; n != uint64(sent) {
		t.Fatalf("closed with %d of the epoch's %d late receipts in the pool", n, sent)
	}
}
