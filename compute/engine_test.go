package compute

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/orecdn/ore/pod"
)

// memContent is content in memory, named by raw CIDs.
type memContent struct {
	mu    sync.Mutex
	files map[cid.Cid][]byte
	adds  int
}

func (m *memContent) put(b []byte) cid.Cid {
	h, _ := mh.Sum(b, mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, h)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[c] = b
	return c
}

func (m *memContent) Open(_ context.Context, c cid.Cid) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[c]
	if !ok {
		return nil, errors.New("not found")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memContent) Add(_ context.Context, r io.Reader) (cid.Cid, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return cid.Undef, err
	}
	m.mu.Lock()
	m.adds++
	m.mu.Unlock()
	return m.put(b), nil
}

type memIndex struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memIndex) GetMeta(_ context.Context, k []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[string(k)]
	return v, ok, nil
}

func (m *memIndex) PutMeta(_ context.Context, k, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[string(k)] = v
	return nil
}

func newTestEngine(t *testing.T, content *memContent) (*Engine, peer.ID) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineConfig{Runtime: sharedRuntime(t), Content: content,
		Index: &memIndex{m: map[string][]byte{}}, Key: k, Network: pod.DefaultParams("ore-test")})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return e, id
}

func publishFn(t *testing.T, content *memContent, lim Limits) cid.Cid {
	mod := content.put(testFn(t))
	return content.put(Descriptor{Version: DescriptorVersion, Module: mod, Limits: lim}.Marshal())
}

// A job's output lands in the store, its claim is signed by the runner,
// and the same job again is answered from the index without a run. Two
// engines (two boxes) give the same output CID and work.
func TestEngineJobs(t *testing.T) {
	content := &memContent{files: map[cid.Cid][]byte{}}
	e, self := newTestEngine(t, content)
	fn := publishFn(t, content, DefaultLimits())
	in := testInput(100 << 10)
	input := content.put(in)
	ctx := context.Background()
	out, err := e.Run(ctx, fn, input, []string{"gzip", "6"}, self)
	if err != nil {
		t.Fatal(err)
	}
	if out.Cached || out.Claim.VerifyRunner() != nil || out.Claim.JobID() != pod.JobID(fn, input, []string{"gzip", "6"}) {
		t.Fatalf("first run: %+v", out)
	}
	zr, err := gzip.NewReader(bytes.NewReader(content.files[out.Claim.Output]))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, in) {
		t.Fatal("the output does not gunzip to the input")
	}
	again, err := e.Run(ctx, fn, input, []string{"gzip", "6"}, self)
	if err != nil || !again.Cached || again.Claim.Output != out.Claim.Output || content.adds != 1 {
		t.Fatalf("second run: %+v, %v, %d adds", again, err, content.adds)
	}
	other, _ := newTestEngine(t, content)
	o2, err := other.Run(ctx, fn, input, []string{"gzip", "6"}, self)
	if err != nil || o2.Cached || o2.Claim.Output != out.Claim.Output || o2.Claim.Work != out.Claim.Work {
		t.Fatalf("a second box: %+v, %v; the first: %+v", o2.Claim, err, out.Claim)
	}
}

// A job that fails on a limit fails again without running, and a bad
// function or module is refused clearly.
func TestEngineFailures(t *testing.T) {
	content := &memContent{files: map[cid.Cid][]byte{}}
	e, self := newTestEngine(t, content)
	fn := publishFn(t, content, Limits{Work: 1 << 28, MemoryPages: 1024, Output: 1 << 20})
	input := content.put(nil)
	ctx := context.Background()
	if _, err := e.Run(ctx, fn, input, []string{"loop"}, self); !errors.Is(err, ErrWorkLimit) {
		t.Fatalf("loop: %v", err)
	}
	if _, err := e.Run(ctx, fn, input, []string{"loop"}, self); !errors.Is(err, ErrWorkLimit) {
		t.Fatalf("loop again: %v", err)
	}
	if n := content.adds; n != 0 {
		t.Fatalf("%d outputs stored for failed jobs", n)
	}
	notFn := content.put([]byte(`{"ore_function":1,"module":"bafkqaaa","limits":{"work":0}}`))
	if _, err := e.Run(ctx, notFn, input, nil, self); !errors.Is(err, ErrBadFunction) {
		t.Fatalf("bad descriptor: %v", err)
	}
	junk := content.put([]byte("not wasm"))
	badMod := content.put(Descriptor{Version: 1, Module: junk, Limits: DefaultLimits()}.Marshal())
	if _, err := e.Run(ctx, badMod, input, nil, self); !errors.Is(err, ErrBadModule) {
		t.Fatalf("bad module: %v", err)
	}
	if _, err := e.Run(ctx, fn, input, []string{"a\x00"}, self); !errors.Is(err, pod.ErrBadJob) {
		t.Fatalf("bad args: %v", err)
	}
}

// A box lends its jobs a memory budget: a function whose memory limit is
// over it is refused (the box's refusal, not a verdict on the function:
// ErrMemoryBudget, not ErrLimit), one within it runs, and jobs wait for
// the budget the ones in flight hold.
func TestEngineMemoryBudget(t *testing.T) {
	content := &memContent{files: map[cid.Cid][]byte{}}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(k)
	e, err := NewEngine(EngineConfig{Runtime: sharedRuntime(t), Content: content,
		Index: &memIndex{m: map[string][]byte{}}, Key: k, Network: pod.DefaultParams("ore-test"),
		Concurrency: 2, Memory: 96 << 20})
	if err != nil {
		t.Fatal(err)
	}
	input := content.put([]byte("some input"))
	ctx := context.Background()
	big := publishFn(t, content, Limits{Work: 1 << 30, MemoryPages: 2048, Output: 1 << 20}) // 128 MiB
	_, err = e.Run(ctx, big, input, []string{"upper"}, self)
	if !errors.Is(err, ErrMemoryBudget) || errors.Is(err, ErrLimit) {
		t.Fatalf("a 128 MiB function on a box lending 96 MiB: %v", err)
	}
	small := publishFn(t, content, Limits{Work: 1 << 30, MemoryPages: 1024, Output: 1 << 20}) // 64 MiB
	out, err := e.Run(ctx, small, input, []string{"upper"}, self)
	if err != nil || string(content.files[out.Claim.Output]) != "SOME INPUT" {
		t.Fatalf("a 64 MiB function: %+v, %v", out, err)
	}
	// With 64 of the 96 MiB held, a second 64 MiB job waits: here until
	// its context ends.
	if !e.mem.TryAcquire(64 << 20) {
		t.Fatal("the budget is held after the job ended")
	}
	other := content.put([]byte("other"))
	wait, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := e.Run(wait, small, other, []string{"upper"}, self); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "waiting for 64 MiB") {
		t.Fatalf("a job over the budget left: %v", err)
	}
	e.mem.Release(64 << 20)
	if _, err := e.Run(ctx, small, other, []string{"upper"}, self); err != nil {
		t.Fatalf("the same job once the budget was free: %v", err)
	}
	if _, err := NewEngine(EngineConfig{Runtime: sharedRuntime(t), Content: content,
		Index: &memIndex{m: map[string][]byte{}}, Key: k, Network: pod.DefaultParams("ore-test"), Memory: -1}); err == nil {
		t.Fatal("a negative memory budget was taken")
	}
}
