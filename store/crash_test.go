package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// crashDirEnv tells TestCrashChild, run in a child process, where the store is.
const crashDirEnv = "ORE_STORE_CRASH_CHILD_DIR"

// TestCrashChild is not a test on its own: TestCrashRecovery runs it in a
// child process that Puts random 256 KiB blocks until it is SIGKILLed,
// printing each CID once its Put has returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := newRNG(uint64(time.Now().UnixNano()))
	stop := time.Now().Add(2 * time.Minute) // in case the parent is gone
	for time.Now().Before(stop) {
		b := randBlock(t, rng, 256<<10)
		if err := s.Put(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(os.Stdout, "CID %s\n", b.Cid()); err != nil {
			return
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	const want = 30
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	var printed []cid.Cid
	parse := func(line string) {
		s, ok := strings.CutPrefix(line, "CID ")
		if !ok {
			return // test framework chatter
		}
		c, err := cid.Decode(s)
		if err != nil {
			t.Fatalf("child printed bad CID %q: %v", line, err)
		}
		printed = append(printed, c)
	}
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for len(printed) < want {
		select {
		case line, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("child exited after %d blocks; stderr:\n%s", len(printed), stderr.String())
			}
			parse(line)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child wrote only %d blocks before the deadline", len(printed))
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
		t.Fatal(err)
	}
	// Every line the child managed to print is a Put that returned: read
	// them all (EOF comes when the killed child's pipe closes), then reap.
	for drained := false; !drained; {
		select {
		case line, ok := <-lines:
			if !ok {
				drained = true
				break
			}
			parse(line)
		case <-deadline.C:
			t.Fatal("child's stdout not closed after SIGKILL")
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("child exited cleanly; expected it to be killed")
	}

	s := openT(t, dir)
	ctx := context.Background()
	for _, c := range printed {
		b, err := s.Get(ctx, c)
		if err != nil {
			t.Fatalf("block %s lost after SIGKILL: %v", c, err)
		}
		sum, err := c.Prefix().Sum(b.RawData())
		if err != nil || !sum.Equals(c) || len(b.RawData()) != 256<<10 {
			t.Fatalf("block %s corrupt after SIGKILL", c)
		}
	}
	// Used must agree with what is really there.
	var total int64
	for _, k := range allKeys(t, s) {
		n, err := s.GetSize(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		total += int64(n)
	}
	if s.Used() != total || total < int64(len(printed))*256<<10 {
		t.Fatalf("Used = %d, sizes sum to %d, %d blocks printed", s.Used(), total, len(printed))
	}
	t.Logf("%d blocks printed before SIGKILL, all recovered; %d bytes stored", len(printed), total)
}
