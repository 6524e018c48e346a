package testkit

import (
	"testing"
	"time"
)

func TestClockFreezesAndMoves(t *testing.T) {
	c := NewClock()
	if d := time.Since(c.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("a new clock is %s off the wall clock", d)
	}
	at := c.Freeze()
	time.Sleep(2 * time.Millisecond) // the wall clock moves; a frozen clock must not
	if !c.Now().Equal(at) {
		t.Fatal("a frozen clock moved")
	}
	c.Advance(time.Hour)
	if got := c.Now(); !got.Equal(at.Add(time.Hour)) {
		t.Fatalf("advanced to %s, want %s", got, at.Add(time.Hour))
	}
	c.Run()
	if d := c.Now().Sub(at.Add(time.Hour)); d < 0 || d > time.Minute {
		t.Fatalf("a clock run again from where it stood is %s past it", d)
	}
}

func TestNewPartiesRepeat(t *testing.T) {
	a, b := NewParties(t, 7, 3), NewParties(t, 7, 3)
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Fatalf("party %d differs between two runs of one seed", i)
		}
	}
	if NewParties(t, 8, 1)[0].ID == a[0].ID {
		t.Fatal("two seeds gave one party")
	}
}

func TestEventually(t *testing.T) {
	n := 0
	if !Eventually(time.Minute, func() bool { n++; return n == 3 }) {
		t.Fatal("a condition that came true was reported false")
	}
	if Eventually(0, func() bool { return false }) {
		t.Fatal("a condition that never held was reported true")
	}
}
