package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The testnet commands run against docker in testnet/e2e.sh; here, what
// they say where they cannot run.
func TestTestnetWithoutDocker(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no docker command
	dir := filepath.Join(t.TempDir(), "tn")
	code, _, stderr := ore(t, "testnet", "up", "--dir", dir, "--boxes", "2")
	if code != 1 || !strings.Contains(stderr, "no Docker engine") || !strings.Contains(stderr, "ore demo") {
		t.Fatalf("up without docker: exit %d, %s", code, stderr)
	}
	code, _, stderr = ore(t, "testnet", "status", "--dir", dir)
	if code != 1 || !strings.Contains(stderr, "ore testnet up") {
		t.Fatalf("status of no testnet: exit %d, %s", code, stderr)
	}
	if code, _, _ := ore(t, "testnet", "shake", "--dir", dir); code != 2 {
		t.Fatalf("unknown testnet command: exit %d", code)
	}
	if code, _, _ := ore(t, "testnet", "exec", "--dir", dir, "pub"); code != 2 {
		t.Fatalf("exec without a command: exit %d", code)
	}
}
