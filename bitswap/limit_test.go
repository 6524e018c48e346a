package bitswap

import (
	"context"
	"testing"
	"time"
)

func TestUplinkWaitsForTokens(t *testing.T) {
	if newUplink(0) != nil {
		t.Fatal("a zero limit must mean no limiter")
	}
	var none *uplink
	if err := none.wait(context.Background(), 1<<30); err != nil {
		t.Fatalf("no limiter must not wait: %v", err)
	}
	u := newUplink(1 << 20) // 1 MiB/s
	// The first burst is free; the next 4 MiB need ~4 s, which a 100 ms
	// deadline cannot cover: the limiter refuses at once.
	if err := u.wait(context.Background(), uploadBurst); err != nil {
		t.Fatalf("first burst: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := u.wait(ctx, 4<<20); err == nil {
		t.Fatal("4 MiB at 1 MiB/s passed within 100 ms")
	}
}

// Bytes waited for and refunded let the next sender through without
// waiting again.
func TestUplinkRefundIsSpentFirst(t *testing.T) {
	u := newUplink(1 << 10) // 1 KiB/s: nothing past the burst within the test
	if err := u.wait(context.Background(), uploadBurst); err != nil {
		t.Fatal(err)
	}
	u.refund(256 << 10)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := u.wait(done, 256<<10); err != nil {
		t.Fatalf("a refunded 256 KiB must pass without waiting: %v", err)
	}
	if err := u.wait(done, 1); err == nil {
		t.Fatal("the refund was spent; the next byte must wait")
	}
	u.refund(4 * uploadBurst)
	if u.credit != uploadBurst {
		t.Fatalf("credit %d, want at most a burst (%d)", u.credit, uploadBurst)
	}
}

func TestUploadLimitOption(t *testing.T) {
	var c config
	if err := WithUploadLimit(-1)(&c); err == nil {
		t.Fatal("a negative limit was accepted")
	}
	if err := WithUploadLimit(5 << 20)(&c); err != nil || c.uploadLimit != 5<<20 {
		t.Fatalf("limit not set: %v %d", err, c.uploadLimit)
	}
}
