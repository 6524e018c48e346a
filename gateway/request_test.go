package gateway

import (
	"context"
	"testing"
)

// A request's Backend values are made once, with the request's context:
// the look-up's shorter deadline ending does not end them.
func TestRequestOnceOutlivesTheFirstCaller(t *testing.T) {
	if RequestFrom(context.Background()) != nil {
		t.Fatal("a context without a request has one")
	}
	reqCtx, endRequest := context.WithCancel(context.Background())
	ctx := withRequest(reqCtx)
	req := RequestFrom(ctx)
	if req == nil {
		t.Fatal("no request in its context")
	}
	lookup, endLookup := context.WithCancel(ctx)
	made := 0
	var madeWith context.Context
	mk := func(c context.Context) any { made++; madeWith = c; return new(int) }
	first := RequestFrom(lookup).Once(mk)
	endLookup()
	if second := req.Once(mk); second != first || made != 1 {
		t.Fatalf("made %d times (same value: %v)", made, second == first)
	}
	if madeWith.Err() != nil {
		t.Fatal("the value was made with the look-up's context, which ended")
	}
	endRequest()
	if madeWith.Err() == nil {
		t.Fatal("the value's context outlives the request")
	}
}
