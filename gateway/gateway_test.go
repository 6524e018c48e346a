package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/orecdn/ore/pod"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeBackend serves an in-memory blockstore; Locate answers as told;
// the files in local take the local fast path.
type fakeBackend struct {
	bs     blockservice.BlockService
	locate func(ctx context.Context, root cid.Cid) error
	local  map[cid.Cid][]byte
	disk   *diskFiles // nil: local files are read from memory
	mu     sync.Mutex
	done   []cid.Cid
}

func (f *fakeBackend) OpenLocal(_ context.Context, root cid.Cid) (LocalFile, error) {
	b, ok := f.local[root]
	if !ok {
		return nil, ErrNotLocal
	}
	if f.disk != nil {
		return f.disk.open(root)
	}
	return bytes.NewReader(b), nil
}

func (f *fakeBackend) BlockService() blockservice.BlockService { return f.bs }
func (f *fakeBackend) Locate(ctx context.Context, root cid.Cid) error {
	if f.locate != nil {
		return f.locate(ctx, root)
	}
	return nil
}
func (f *fakeBackend) Prefetch(context.Context, cid.Cid) {}
func (f *fakeBackend) Done(root cid.Cid)                 { f.mu.Lock(); f.done = append(f.done, root); f.mu.Unlock() }

func newFake(t *testing.T, cfg Config) (*Gateway, *fakeBackend, blocks.Block) {
	t.Helper()
	bstore := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	raw := blocks.NewBlock([]byte("hello ore"))
	b, _ := blocks.NewBlockWithCid(raw.RawData(), cid.NewCidV1(cid.Raw, raw.Cid().Hash()))
	if err := bstore.Put(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{bs: blockservice.New(bstore, offline.Exchange(bstore))}
	reg := prometheus.NewRegistry()
	cfg.Registry, cfg.Gatherer = reg, reg
	gw, err := New(cfg, fb)
	if err != nil {
		t.Fatal(err)
	}
	return gw, fb, b
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRawBlockAndHeat(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	rec := get(t, gw, "GET", "/ipfs/"+b.Cid().String(), "Accept", "application/vnd.ipld.raw")
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), b.RawData()) {
		t.Fatalf("raw block: %d %q", rec.Code, rec.Body.String())
	}
	if !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	h := gw.Heat().Get(b.Cid(), time.Now())
	if h.Requests < 0.99 || h.Requests > 1 || h.Bytes < 0.99*float64(len(b.RawData())) {
		t.Errorf("heat %+v", h)
	}
	if len(fb.done) != 1 {
		t.Errorf("Done called %d times", len(fb.done))
	}
	if rec := get(t, gw, "GET", "/healthz"); rec.Code != 200 {
		t.Errorf("healthz %d", rec.Code)
	}
}

func TestErrors(t *testing.T) {
	gw, fb, b := newFake(t, Config{NotFoundTimeout: 200 * time.Millisecond})
	root := b.Cid().String()
	cases := []struct {
		name   string
		method string
		path   string
		locate func(context.Context, cid.Cid) error
		want   int
	}{
		{"malformed CID", "GET", "/ipfs/not-a-cid", nil, 400},
		{"not /ipfs", "GET", "/ipns/x", nil, 404},
		{"write method", "POST", "/ipfs/" + root, nil, 405},
		{"no provider", "GET", "/ipfs/" + root, func(context.Context, cid.Cid) error { return ErrNotFound }, 404},
		{"store full", "GET", "/ipfs/" + root, func(context.Context, cid.Cid) error { return ErrOutOfResources }, 503},
		{"locate times out", "GET", "/ipfs/" + root, func(ctx context.Context, _ cid.Cid) error { <-ctx.Done(); return ctx.Err() }, 504},
	}
	for _, tc := range cases {
		fb.locate = tc.locate
		rec := get(t, gw, tc.method, tc.path)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body.String())
		}
		if rec.Body.Len() == 0 {
			t.Errorf("%s: no explanation in the body", tc.name)
		}
	}
	fb.locate = nil
	if rec := get(t, gw, "GET", "/ipfs/"+root, "Accept", "application/vnd.ipld.raw"); rec.Code != 200 {
		t.Fatalf("gateway broken after bad requests: %d", rec.Code)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	gw, _, b := newFake(t, Config{RatePerClient: 0.001, BurstPerClient: 2})
	path := "/ipfs/" + b.Cid().String() + "?format=raw"
	codes := []int{get(t, gw, "GET", path).Code, get(t, gw, "GET", path).Code, get(t, gw, "GET", path).Code}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes %v, want 200 200 429", codes)
	}
	// Another client is not limited by the first.
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "192.0.2.7:1234"
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("other client: %d", rec.Code)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	gw, fb, b := newFake(t, Config{MaxConcurrentFetches: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	fb.locate = func(ctx context.Context, _ cid.Cid) error {
		close(entered)
		<-release
		return nil
	}
	path := "/ipfs/" + b.Cid().String() + "?format=raw"
	first := make(chan int)
	go func() { first <- get(t, gw, "GET", path).Code }()
	<-entered
	fb.locate = nil
	if rec := get(t, gw, "GET", path); rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("second request while the first holds the only slot: %d", rec.Code)
	}
	close(release)
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d", code)
	}
}

func TestHeatDecays(t *testing.T) {
	h := NewHeat(time.Minute, 10)
	c := cid.NewCidV1(cid.Raw, blocks.NewBlock([]byte("x")).Cid().Hash())
	t0 := time.Unix(1000, 0)
	h.Record(c, 1000, t0)
	h.Record(c, 1000, t0)
	e := h.Get(c, t0.Add(time.Minute))
	if e.Requests < 0.99 || e.Requests > 1.01 || e.Bytes < 999 || e.Bytes > 1001 {
		t.Fatalf("after one half-life: %+v", e)
	}
	for i := 0; i < 20; i++ {
		other := cid.NewCidV1(cid.Raw, blocks.NewBlock([]byte{byte(i)}).Cid().Hash())
		h.Record(other, int64(i), t0)
	}
	if n := len(h.Snapshot(t0)); n > 10 {
		t.Fatalf("heat holds %d roots, its bound is 10", n)
	}
}

// A ticket in the URL (or its header) reaches the backend with the
// request; one that does not parse is a 400, one the backend finds does
// not pay is a 403.
func TestTicketReachesTheBackend(t *testing.T) {
	gw, fb, b := newFake(t, Config{})
	k, _, _ := crypto.GenerateEd25519Key(nil)
	pub, _ := peer.IDFromPrivateKey(k)
	tk := &pod.Ticket{Version: pod.TicketVersion, Network: "n", Publisher: pub, Cap: 1, Expires: 9}
	if err := tk.Sign(k); err != nil {
		t.Fatal(err)
	}
	var seen [][32]byte
	fb.locate = func(ctx context.Context, root cid.Cid) error {
		if got := TicketFrom(ctx); got != nil {
			seen = append(seen, got.ID())
			if got.Cap == 1 && got.Nonce == 1 {
				return fmt.Errorf("%w: spent", ErrBadTicket)
			}
		}
		return nil
	}
	path := "/ipfs/" + b.Cid().String() + "?format=raw&" + TicketParam + "=" + tk.String()
	if rec := get(t, gw, "GET", path); rec.Code != 200 {
		t.Fatalf("a request with a ticket: %d %s", rec.Code, rec.Body.String())
	}
	if rec := get(t, gw, "GET", "/ipfs/"+b.Cid().String()+"?format=raw", TicketHeader, tk.String()); rec.Code != 200 {
		t.Fatalf("a request with a ticket header: %d %s", rec.Code, rec.Body.String())
	}
	if len(seen) != 2 || seen[0] != tk.ID() || seen[1] != tk.ID() {
		t.Fatalf("the backend saw tickets %x, want the request's twice", seen)
	}
	if rec := get(t, gw, "GET", "/ipfs/"+b.Cid().String()+"?"+TicketParam+"=junk"); rec.Code != 400 {
		t.Fatalf("a ticket that does not parse: %d", rec.Code)
	}
	spent := *tk
	spent.Nonce = 1
	if err := spent.Sign(k); err != nil {
		t.Fatal(err)
	}
	if rec := get(t, gw, "GET", "/ipfs/"+b.Cid().String()+"?format=raw&"+TicketParam+"="+spent.String()); rec.Code != 403 {
		t.Fatalf("a ticket the backend refuses: %d", rec.Code)
	}
}

// blockingWriter's writes wait until release is closed.
type blockingWriter struct {
	http.ResponseWriter
	writing chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.writing <- struct{}{}
	<-b.release
	return len(p), nil
}

// A request for a local DAG holds a CPU permit while it computes and gives
// it back while a write waits on its client, so a slow reader does not hold
// the permit another request needs; a request that waits for a permit
// leaves when its client does.
func TestCPUPermitsAreGivenBackWhileWriting(t *testing.T) {
	permits := make(chan struct{}, 1)
	slow := &blockingWriter{ResponseWriter: httptest.NewRecorder(), writing: make(chan struct{}), release: make(chan struct{})}
	a := &permitWriter{ResponseWriter: slow, permits: permits, ctx: context.Background()}
	if err := a.acquire(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &permitWriter{ResponseWriter: httptest.NewRecorder(), permits: permits, ctx: ctx}
	got := make(chan error, 1)
	go func() { got <- b.acquire() }()
	select {
	case <-got:
		t.Fatal("a second request took the only permit while the first computed")
	case <-time.After(50 * time.Millisecond): // a short look for a wrong event, not a wait for a right one
	}
	go func() { _, _ = a.Write([]byte("x")) }()
	<-slow.writing // the first request waits on its client now
	if err := <-got; err != nil {
		t.Fatalf("the second request did not get the permit the writer gave back: %v", err)
	}
	b.release()
	close(slow.release)
	c := &permitWriter{ResponseWriter: httptest.NewRecorder(), permits: permits, ctx: ctx}
	cancel()
	// The permit may be free or taken again by a; either way c ends with
	// its client.
	if err := c.acquire(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiting request whose client left: %v", err)
	}
	c.release()
}
