package intake

import (
	"testing"
	"time"
)

func waited(p *priority) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		p.wait()
		close(ch)
	}()
	return ch
}

func TestPriorityReleasesWaitersWhenTheLastHolderIsDone(t *testing.T) {
	old := prioWait
	prioWait = time.Hour // only a release lets a waiter go
	defer func() { prioWait = old }()
	var p priority
	select {
	case <-waited(&p):
	case <-time.After(10 * time.Second):
		t.Fatal("a check waited with nobody holding the priority")
	}
	a, b := p.hold(), p.hold()
	w := waited(&p)
	a()
	a() // twice is once
	b()
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not released when both holders were done")
	}
	if p.n != 0 {
		t.Fatalf("%d holders left, want 0", p.n)
	}
	// Held again after a release: a new wait waits for the new holder.
	c := p.hold()
	w = waited(&p)
	c()
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("the second waiter was not released")
	}
}

func TestPriorityWaitIsBounded(t *testing.T) {
	old := prioWait
	prioWait = 10 * time.Millisecond
	defer func() { prioWait = old }()
	var p priority
	done := p.hold()
	defer done()
	select {
	case <-waited(&p):
	case <-time.After(10 * time.Second):
		t.Fatal("a check waited past prioWait for a holder that never finished")
	}
}
