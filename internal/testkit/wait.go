package testkit

import (
	"testing"
	"time"
)

// poll is how often a wait looks at its condition: often enough that a
// test does not idle, rarely enough that polling costs nothing beside the
// work it waits for.
const poll = 20 * time.Millisecond

// Eventually reports whether cond held before d passed. d is a deadline
// for a hang, sized to the work; a test that meets it early goes on at
// once.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(poll)
	}
	return true
}

// WaitFor fails the test, saying what it waited for, unless cond holds
// before d passed.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}
