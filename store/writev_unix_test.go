//go:build darwin || linux || openbsd

package store

import (
	"bytes"
	"testing"
)

// TestAdvance: after a short pwritev the rest of the record is written
// from where the write stopped, within the head, at the seam or within
// the data.
func TestAdvance(t *testing.T) {
	for n := 0; n <= 9; n++ {
		head, data := []byte("head"), []byte("data!")
		rest := advance([][]byte{head, data}, n)
		if got := bytes.Join(rest, nil); string(got) != "headdata!"[n:] {
			t.Fatalf("after %d bytes written, %q left, want %q", n, got, "headdata!"[n:])
		}
		for _, b := range rest {
			if len(b) == 0 {
				t.Fatalf("after %d bytes written an empty slice is left: %q", n, rest)
			}
		}
	}
}
