package intake

import (
	"sync"
	"time"
)

// prioWait bounds how long one gossiped message's check waits for the
// block work of this process (Prioritize): a stream of blocks must not
// stop the intake for good.
var prioWait = 250 * time.Millisecond

// prio is the process's: the block work of every coordinator in the
// process holds back the checks of every intake in it.
var prio priority

// Prioritize holds back the checks of gossiped receipts in this process
// (each for at most prioWait) until done is called; done may be called
// more than once. A coordinator calls it around the work on a block's path
// to finality (the leader's build and commit, a follower's apply): the
// checks are most of a coordinator's CPU, two Ed25519 signatures a
// receipt, and the Go scheduler shares the cores among whatever is
// runnable. With the checks of a 20,000/s stream beside it, a follower's
// apply of a 40,000-receipt block took 0.1-0.7 s for ~0.15 s of work. A
// check that waits costs its receipts little: they wait for their epoch's
// end anyway. The receipts a peer publishes itself are not held back.
func Prioritize() (done func()) {
	return prio.hold()
}

type priority struct {
	mu   sync.Mutex
	n    int           // holders
	idle chan struct{} // closed when n goes back to 0
}

func (p *priority) hold() func() {
	p.mu.Lock()
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.n--; p.n == 0 {
				close(p.idle)
			}
			p.mu.Unlock()
		})
	}
}

// wait returns when nobody holds p, or after prioWait.
func (p *priority) wait() {
	p.mu.Lock()
	if p.n == 0 {
		p.mu.Unlock()
		return
	}
	idle := p.idle
	p.mu.Unlock()
	t := time.NewTimer(prioWait)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}
