package store

import (
	"context"
	"fmt"
	"testing"
)

func TestMetaRoundTripAndScan(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, WithQuota(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := s.PutMeta(ctx, []byte(fmt.Sprintf("pod/s/%d", i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutMeta(ctx, []byte("other/1"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if s.Used() != 0 {
		t.Fatalf("meta records counted against the block quota: used %d", s.Used())
	}
	if err := s.PutMeta(ctx, []byte("big"), make([]byte, MaxMetaValue+1)); err == nil {
		t.Fatal("oversized meta value accepted")
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, ok, err := s.GetMeta(ctx, []byte("pod/s/3"))
	if err != nil || !ok || len(v) != 1 || v[0] != 3 {
		t.Fatalf("GetMeta = %v %v %v", v, ok, err)
	}
	if _, ok, err := s.GetMeta(ctx, []byte("pod/s/9")); ok || err != nil {
		t.Fatalf("missing key: ok=%v err=%v", ok, err)
	}
	var keys []string
	if err := s.ScanMeta(ctx, []byte("pod/s/"), func(k, v []byte) error {
		keys = append(keys, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 || keys[0] != "pod/s/0" || keys[4] != "pod/s/4" {
		t.Fatalf("scan keys %v", keys)
	}
	if err := s.DeleteMeta(ctx, []byte("pod/s/3")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeta(ctx, []byte("pod/s/3")); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	if _, ok, err := s.GetMeta(ctx, []byte("pod/s/3")); ok || err != nil {
		t.Fatalf("deleted record still there: ok=%v err=%v", ok, err)
	}
}
