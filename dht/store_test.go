package dht

import (
	"context"
	"errors"
	"fmt"
	"testing"

	ds "github.com/ipfs/go-datastore"
)

// TestStoreIsBounded: the DHT's record store refuses records of new keys
// past its bound on records or bytes, still takes new values of the keys
// it holds, and makes room as records are deleted; a batch leaves out
// what does not fit and commits the rest. kad-dht's own store kept every
// record any peer sent for 48 h.
func TestStoreIsBounded(t *testing.T) {
	ctx := context.Background()
	s := newBoundedStore(3, 1<<10)
	key := func(i int) ds.Key { return ds.NewKey(fmt.Sprint("/providers/", i)) }
	for i := range 3 {
		if err := s.Put(ctx, key(i), []byte("v")); err != nil {
			t.Fatalf("record %d of 3: %v", i, err)
		}
	}
	if err := s.Put(ctx, key(3), []byte("v")); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("a fourth record in a store of 3: %v, want ErrStoreFull", err)
	}
	if err := s.Put(ctx, key(0), []byte("newer")); err != nil {
		t.Fatalf("a new value of a record held: %v", err)
	}
	b, err := s.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Delete(ctx, key(1))
	_ = b.Put(ctx, key(4), []byte("v")) // takes 1's room
	_ = b.Put(ctx, key(5), []byte("v")) // no room: left out
	if err := b.Commit(ctx); err != nil {
		t.Fatalf("a batch with a record that does not fit: %v", err)
	}
	if has, _ := s.Has(ctx, key(4)); !has {
		t.Fatal("the batch left out a record that fit")
	}
	if st := s.stats(); st.Keys != 3 || st.Refused != 2 {
		t.Fatalf("store holds %d records and refused %d, want 3 and 2", st.Keys, st.Refused)
	}
	if err := s.Put(ctx, key(0), make([]byte, 2<<10)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("a value over the byte bound: %v, want ErrStoreFull", err)
	}
}
