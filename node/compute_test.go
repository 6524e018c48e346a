package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/orecdn/ore/compute"
)

func testFunctionModule(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open("../compute/testdata/fn.wasm.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A function published on one box runs on another, which fetches the
// function and the input like any content; both boxes get the same
// output CID and work for the same job, and a box asked again answers
// from its index.
func TestJobOnTwoBoxes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := newTestBox(t), newTestBox(t)
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	info, err := a.PublishFunction(ctx, testFunctionModule(t), compute.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	in := randomBytes(t, 300<<10)
	input := addBytes(t, a, in)
	onB, err := b.RunJob(ctx, info.Fn, input, []string{"upper"})
	if err != nil {
		t.Fatal(err)
	}
	onA, err := a.RunJob(ctx, info.Fn, input, []string{"upper"})
	if err != nil {
		t.Fatal(err)
	}
	if onA.Claim.Output != onB.Claim.Output || onA.Claim.Work != onB.Claim.Work || onA.Cached || onB.Cached {
		t.Fatalf("box a: %s, %d units; box b: %s, %d units", onA.Claim.Output, onA.Claim.Work, onB.Claim.Output, onB.Claim.Work)
	}
	if onB.Claim.Runner != b.ID() || onB.Claim.VerifyRunner() != nil {
		t.Fatal("box b's claim is not signed by box b")
	}
	f, err := b.Open(ctx, onB.Claim.Output)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f.(io.Reader))
	if !bytes.Equal(got, bytes.ToUpper(in)) {
		t.Fatal("the output is not the input in upper case")
	}
	again, err := b.RunJob(ctx, info.Fn, input, []string{"upper"})
	if err != nil || !again.Cached || again.Claim.Output != onB.Claim.Output {
		t.Fatalf("asked again: %+v, %v", again, err)
	}
	if _, err := b.RunJob(ctx, info.Fn, input, []string{"fail"}); !errors.Is(err, compute.ErrFunction) {
		t.Fatalf("a failing job: %v", err)
	}
}
