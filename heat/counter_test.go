package heat

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestCounterDecays(t *testing.T) {
	c := NewCounter(time.Minute, 10)
	r := root(t, "a")
	t0 := time.Unix(1000, 0)
	c.Record(r, 1000, t0)
	c.Record(r, 1000, t0)
	for _, tc := range []struct {
		after           time.Duration
		requests, bytes float64
	}{
		{0, 2, 2000},
		{time.Minute, 1, 1000},
		{90 * time.Second, 2 * math.Exp2(-1.5), 2000 * math.Exp2(-1.5)},
		{2 * time.Minute, 0.5, 500},
	} {
		e := c.Get(r, t0.Add(tc.after))
		if !near(e.Requests, tc.requests) || !near(e.Bytes, tc.bytes) {
			t.Errorf("after %v: %+v, want %v requests, %v bytes", tc.after, e, tc.requests, tc.bytes)
		}
	}
	// Asking about an earlier instant never undoes decay.
	if e := c.Get(r, t0); !near(e.Requests, 0.5) {
		t.Errorf("going back in time: %+v", e)
	}
}

func TestCounterAddBytes(t *testing.T) {
	c := NewCounter(time.Minute, 10)
	r := root(t, "a")
	t0 := time.Unix(1000, 0)
	c.Record(r, 100, t0)
	c.AddBytes(r, 900, t0)
	if e := c.Get(r, t0); e.Requests != 1 || e.Bytes != 1000 {
		t.Fatalf("one request of 1000 bytes: %+v", e)
	}
}

func TestCounterEvictsColdest(t *testing.T) {
	c := NewCounter(time.Hour, 10)
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		for range i + 1 {
			c.Record(root(t, i), 1, t0)
		}
	}
	if n := c.Len(); n != 10 {
		t.Fatalf("holds %d roots, want 10", n)
	}
	c.Record(root(t, "new"), 1, t0)
	if n := c.Len(); n != 10 {
		t.Fatalf("holds %d roots after an 11th, its bound is 10", n)
	}
	if e := c.Get(root(t, 0), t0); e.Requests != 0 {
		t.Errorf("the coldest root survived: %+v", e)
	}
	if e := c.Get(root(t, 1), t0); e.Requests != 2 {
		t.Errorf("the second coldest root was evicted: %+v", e)
	}
	snap := c.Snapshot(t0)
	if snap[0].Root != root(t, 9) || snap[0].Requests != 10 {
		t.Errorf("hottest first: %+v", snap[0])
	}
	for i := 1; i < len(snap); i++ {
		if snap[i].Requests > snap[i-1].Requests {
			t.Fatalf("snapshot not hottest first at %d: %+v", i, snap)
		}
	}
	c.Forget(root(t, 9))
	if e := c.Get(root(t, 9), t0); e.Requests != 0 || c.Len() != 9 {
		t.Errorf("forgotten root: %+v, %d roots", e, c.Len())
	}
}

func TestNewCounterPanicsOnBadArgs(t *testing.T) {
	for _, tc := range []struct {
		halfLife time.Duration
		max      int
	}{{0, 10}, {time.Minute, 0}, {-time.Second, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewCounter(%v, %d) did not panic", tc.halfLife, tc.max)
				}
			}()
			NewCounter(tc.halfLife, tc.max)
		}()
	}
}

func TestTop(t *testing.T) {
	var es []Entry
	for i := range MaxHeat + 10 {
		es = append(es, Entry{Root: root(t, i), Requests: float64(i) + 0.4, Bytes: 10.6})
	}
	es = append(es, Entry{Root: root(t, "cold"), Requests: 0.3})
	top := Top(es)
	if len(top) != MaxHeat {
		t.Fatalf("%d entries, want %d", len(top), MaxHeat)
	}
	if top[0].Root != root(t, MaxHeat+9) || top[0].Requests != MaxHeat+9 || top[0].Bytes != 11 {
		t.Errorf("hottest: %+v", top[0])
	}
	for i := 1; i < len(top); i++ {
		if top[i].Requests > top[i-1].Requests {
			t.Fatalf("not hottest first at %d", i)
		}
	}
	if got := Top([]Entry{{Root: root(t, "x"), Requests: 0.2}}); len(got) != 0 {
		t.Errorf("a root that rounds to zero requests: %+v", got)
	}
	r := &Report{Heat: top}
	if err := r.Sign(testNetwork, newParty(t).Key); err != nil {
		t.Fatalf("Top's output does not make a valid report: %v", err)
	}
}

func TestCounterLast(t *testing.T) {
	c := NewCounter(time.Minute, 8)
	r := root(t, "a")
	if _, ok := c.Last(r); ok {
		t.Fatal("an unknown root has a last record")
	}
	t0 := time.Unix(1000, 0)
	c.Record(r, 10, t0)
	c.AddBytes(r, 10, t0.Add(time.Second))
	c.Get(r, t0.Add(time.Hour)) // reading decays, but records nothing
	if last, ok := c.Last(r); !ok || !last.Equal(t0.Add(time.Second)) {
		t.Fatalf("last record %v %v, want %v", last, ok, t0.Add(time.Second))
	}
}
