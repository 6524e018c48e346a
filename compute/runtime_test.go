package compute

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	fnOnce sync.Once
	fnWasm []byte
	fnErr  error
)

// testFn is testdata/fn.wasm (see gen.sh and testdata/fn/main.go).
func testFn(t testing.TB) []byte {
	fnOnce.Do(func() {
		f, err := os.Open("testdata/fn.wasm.gz")
		if err != nil {
			fnErr = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			fnErr = err
			return
		}
		fnWasm, fnErr = io.ReadAll(zr)
	})
	if fnErr != nil {
		t.Fatal(fnErr)
	}
	return fnWasm
}

var (
	sharedOnce sync.Once
	sharedRT   *Runtime
	sharedDir  string
)

// sharedRuntime is one compiler runtime for the package's tests, with
// its compilation cache on disk, so the 3 MiB test function is compiled
// once per test binary.
func sharedRuntime(t testing.TB) *Runtime {
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ore-compute-test")
		if err != nil {
			t.Fatal(err)
		}
		sharedDir = dir
		sharedRT, err = New(context.Background(), Config{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
	})
	return sharedRT
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedRT != nil {
		sharedRT.Close(context.Background())
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

func loadFn(t testing.TB, rt *Runtime, lim Limits) *Function {
	t.Helper()
	f, err := rt.Load(context.Background(), "fn", testFn(t), lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Release)
	return f
}

func run(t testing.TB, rt *Runtime, f *Function, in []byte, args ...string) ([]byte, Result, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := rt.Run(ctx, f, Job{Args: args, Stdin: bytes.NewReader(in), Seed: sha256.Sum256([]byte(strings.Join(args, "\x00")))}, &out)
	return out.Bytes(), res, err
}

// testInput is compressible, not trivially: words from a fixed generator.
func testInput(n int) []byte {
	words := []string{"ore ", "box ", "wasm ", "cache ", "edge ", "proof ", "delivery ", "ledger\n"}
	var b bytes.Buffer
	x := uint32(1)
	for b.Len() < n {
		x = x*1664525 + 1013904223
		b.WriteString(words[x>>29])
	}
	return b.Bytes()[:n]
}

func TestGzipIsNativeGzip(t *testing.T) {
	rt := sharedRuntime(t)
	f := loadFn(t, rt, DefaultLimits())
	in := testInput(256 << 10)
	out, res, err := run(t, rt, f, in, "gzip", "6")
	if err != nil {
		t.Fatal(err)
	}
	var native bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&native, 6)
	zw.Write(in)
	zw.Close()
	if !bytes.Equal(out, native.Bytes()) {
		t.Fatalf("the function's gzip (%d bytes) differs from the same Go code run natively (%d bytes)", len(out), native.Len())
	}
	if res.Work == 0 || res.Output != int64(len(out)) {
		t.Fatalf("result %+v for %d output bytes", res, len(out))
	}
	t.Logf("gzip of %d bytes: %d bytes, %d work units", len(in), len(out), res.Work)
}

// The same job gives the same output and the same work count on wazero's
// compiler and its interpreter (what armv7 boxes run), and twice in a row.
func TestDeterministicAcrossEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("the interpreter takes a while over a 3 MiB module")
	}
	rt := sharedRuntime(t)
	f := loadFn(t, rt, DefaultLimits())
	interp, err := New(context.Background(), Config{Interpreter: true})
	if err != nil {
		t.Fatal(err)
	}
	defer interp.Close(context.Background())
	fi := loadFn(t, interp, DefaultLimits())
	in := testInput(64 << 10)
	for _, args := range [][]string{{"gzip", "9"}, {"probe", "a", "b"}, {"sleep"}} {
		o1, r1, err := run(t, rt, f, in, args...)
		if err != nil {
			t.Fatal(args, err)
		}
		o2, r2, err := run(t, rt, f, in, args...)
		if err != nil {
			t.Fatal(args, err)
		}
		o3, r3, err := run(t, interp, fi, in, args...)
		if err != nil {
			t.Fatal(args, err)
		}
		if !bytes.Equal(o1, o2) || !bytes.Equal(o1, o3) {
			t.Fatalf("%v: outputs differ: %q / %q / %q", args, trunc(o1), trunc(o2), trunc(o3))
		}
		if r1 != r2 || r1 != r3 {
			t.Fatalf("%v: results differ: compiler %+v, again %+v, interpreter %+v", args, r1, r2, r3)
		}
		t.Logf("%v: %d work units on both engines", args, r1.Work)
	}
}

func trunc(b []byte) []byte { return b[:min(len(b), 200)] }

// The function sees no real clock, no real randomness, no files, no
// environment, no preopened descriptors.
func TestSandbox(t *testing.T) {
	rt := sharedRuntime(t)
	f := loadFn(t, rt, DefaultLimits())
	out, _, err := run(t, rt, f, nil, "probe", "x")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := map[string]string{"file": "true", "dir": "true", "fd3": "true", "env": "0", "args": "probe,x"}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, " ")
		if w, ok := want[k]; ok && v != w {
			t.Errorf("%s = %s, want %s", k, v, w)
		}
		if k == "time" && !strings.HasPrefix(v, "2000-01-01T00:00:00") {
			t.Errorf("the function read the time %s, not the fixed clock's", v)
		}
	}
	// Randomness follows the job's seed: another job, another stream.
	other, _, err := run(t, rt, f, nil, "probe", "y")
	if err != nil {
		t.Fatal(err)
	}
	if lineOf(out, "crypto/rand") == lineOf(other, "crypto/rand") {
		t.Errorf("two jobs with different seeds read the same random bytes %s", lineOf(out, "crypto/rand"))
	}
	// A sleep of an hour moves the job's clock, not the wall's.
	start := time.Now()
	out, _, err = run(t, rt, f, nil, "sleep")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "slept 1h0m0s" {
		t.Errorf("sleep: %q", out)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("a job's hour of sleep took %v of real time", d)
	}
}

func lineOf(out []byte, key string) string {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, key+" ") {
			return l
		}
	}
	return ""
}

func TestLimits(t *testing.T) {
	rt := sharedRuntime(t)
	lim := Limits{Work: 1 << 30, MemoryPages: 1024, Output: 1 << 20}
	f := loadFn(t, rt, lim)
	for _, tc := range []struct {
		mode string
		want error
		msg  string
	}{
		{"loop", ErrWorkLimit, ""},
		{"hog", ErrMemoryLimit, "out of memory"},
		{"flood", ErrOutputLimit, ""},
		{"fail", ErrFunction, "exit code 3: fn: bad input, expected an image"},
		{"panic", ErrFunction, "panic: boom"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			_, res, err := run(t, rt, f, nil, tc.mode)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want it to say %q", err, tc.msg)
			}
			if tc.want == ErrOutputLimit && res.Output > lim.Output {
				t.Fatalf("wrote %d bytes past a limit of %d", res.Output, lim.Output)
			}
			t.Logf("%s: %v (work %d)", tc.mode, err, res.Work)
		})
	}
}

func TestRefusesModules(t *testing.T) {
	rt := sharedRuntime(t)
	loop := []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}
	for _, tc := range []struct {
		name string
		mod  []byte
		want string
	}{
		{"not wasm", []byte("hello"), "not a WebAssembly"},
		{"start section", asmModule{memMin: 1, memMax: -1, start: true, code: loop}.bytes(), "start section"},
		{"memory over the limit", asmModule{memMin: 2000, memMax: -1}.bytes(), "minimum of 2000"},
		// global.set 0 names the counter's index in a module with no
		// globals: invalid as written, and it would refill the meter.
		{"refills the counter", asmModule{memMin: 1, memMax: -1, code: []byte{0x42, 0x7f, 0x24, 0x00}}.bytes(), "global index"},
		{"imports a host function", asmModule{memMin: 1, memMax: -1,
			imports: [][]byte{append(append(name("env"), name("now")...), 0x00, 0x00)}}.bytes(), "WASI preview 1 only"},
		{"invalid code", asmModule{memMin: 1, memMax: -1, code: []byte{0x6a}}.bytes(), "bad module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.Load(context.Background(), tc.name, tc.mod, Limits{Work: 1000, MemoryPages: 1024, Output: 100})
			if !errors.Is(err, ErrBadModule) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadModule saying %q", err, tc.want)
			}
		})
	}
}

// The meter's count is exact: the instructions the function executed.
func TestMeterCount(t *testing.T) {
	rt := sharedRuntime(t)
	// local 0 = 10; loop { local0 -= 1; br_if 0 (local0 != 0) }
	code := append(i32const(10), 0x21, 0x00, // local.set 0
		0x03, 0x40, // loop
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // local.get 0; i32.const 1; i32.sub; local.tee 0
		0x0d, 0x00, // br_if 0
		0x0b) // end
	mod := asmModule{memMin: 1, memMax: -1, locals: []byte{0x01, 0x01, 0x7f}, code: code}.bytes()
	f, err := rt.Load(context.Background(), "count", mod, Limits{Work: 1000, MemoryPages: 1, Output: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	_, res, err := run(t, rt, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	// i32.const, local.set, loop; ten times the loop's five; the loop's
	// end and the function's.
	if want := uint64(3 + 5*10 + 2); res.Work != want {
		t.Fatalf("work %d, want %d", res.Work, want)
	}
	// The same loop with a limit below its count stops at the limit.
	g, err := rt.Load(context.Background(), "count", mod, Limits{Work: 54, MemoryPages: 1, Output: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	if _, _, err := run(t, rt, g, nil); !errors.Is(err, ErrWorkLimit) {
		t.Fatalf("err = %v, want ErrWorkLimit", err)
	}
}

// A bulk operation costs its length: one memory.fill of 16 pages in a
// loop is charged 16384 units per turn, not two.
func TestMeterBulk(t *testing.T) {
	rt := sharedRuntime(t)
	fill := append(append(append(i32const(0), i32const(0)...), i32const(16<<16)...), 0xfc, 0x0b, 0x00) // memory.fill
	mod := asmModule{memMin: 16, memMax: -1, code: fill}.bytes()
	f, err := rt.Load(context.Background(), "fill", mod, Limits{Work: 1 << 20, MemoryPages: 16, Output: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	_, res, err := run(t, rt, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 3 consts, memory.fill, end; the fill: 2^20 bytes / 64.
	if want := uint64(5 + 16<<16>>bulkShift); res.Work != want {
		t.Fatalf("work %d, want %d", res.Work, want)
	}
}

// A hand-written infinite loop with no Go runtime around it stops at the
// work limit.
func TestInfiniteLoop(t *testing.T) {
	rt := sharedRuntime(t)
	mod := asmModule{memMin: 1, memMax: -1, code: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}}.bytes()
	f, err := rt.Load(context.Background(), "spin", mod, Limits{Work: 1 << 22, MemoryPages: 1, Output: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	_, res, err := run(t, rt, f, nil)
	if !errors.Is(err, ErrWorkLimit) || res.Work != 1<<22 {
		t.Fatalf("err = %v, work %d", err, res.Work)
	}
}

func FuzzInstrument(f *testing.F) {
	f.Add(asmModule{memMin: 1, memMax: 4, code: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}}.bytes())
	f.Add(asmModule{memMin: 16, memMax: -1, code: []byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x10, 0xfc, 0x0b, 0x00}}.bytes())
	f.Add(asmModule{memMin: 1, memMax: -1, globals: [][]byte{{0x7f, 0x01, 0x41, 0x00, 0x0b}}, code: []byte{0x23, 0x00, 0x1a}}.bytes())
	f.Fuzz(func(t *testing.T, mod []byte) {
		out, err := instrument(mod, Limits{Work: 100, MemoryPages: 4, Output: 10})
		if err == nil && len(out) < 8 {
			t.Fatal("instrumented module without a header")
		}
	})
}

type cancelReader struct {
	cancel func()
	r      io.Reader
}

func (c *cancelReader) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

// A box's own wall-clock bound (the context) stops a run at its next WASI
// call, as an error that is not a limit of the function.
func TestContextStopsRun(t *testing.T) {
	rt := sharedRuntime(t)
	f := loadFn(t, rt, DefaultLimits())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := &cancelReader{cancel: cancel, r: bytes.NewReader(testInput(4 << 20))}
	_, err := rt.Run(ctx, f, Job{Args: []string{"sha256"}, Stdin: in}, io.Discard)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want context.Canceled and no limit", err)
	}
}

// A recursion deeper than MaxCallDepth fails with ErrStackLimit on the
// compiler and on the interpreter (whose own ceiling is 2000 frames), and
// one just within it succeeds on both, with the same work.
func TestCallDepthSameOnEveryEngine(t *testing.T) {
	interp, err := New(context.Background(), Config{Interpreter: true})
	if err != nil {
		t.Fatal(err)
	}
	defer interp.Close(context.Background())
	// _start calls function 1 with n; function 1 (i32) -> () recurses
	// while its argument is not zero.
	rec := func(n int32) []byte {
		out := []byte("\x00asm\x01\x00\x00\x00")
		out = append(out, sec(1, vec([]byte{0x60, 0x00, 0x00}, []byte{0x60, 0x01, 0x7f, 0x00}))...)
		out = append(out, sec(3, vec([]byte{0x00}, []byte{0x01}))...)
		out = append(out, sec(5, vec([]byte{0x00, 0x01}))...)
		out = append(out, sec(7, vec(append(name("_start"), 0x00, 0x00), append(name("memory"), 0x02, 0x00)))...)
		start := append(append([]byte{0x00}, i32const(n)...), 0x10, 0x01, 0x0b)
		body := []byte{0x00, 0x20, 0x00, 0x04, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x01, 0x0b, 0x0b}
		out = append(out, sec(10, vec(append(uleb(uint64(len(start))), start...), append(uleb(uint64(len(body))), body...)))...)
		return out
	}
	lim := Limits{Work: 1 << 20, MemoryPages: 1, Output: 1}
	for _, tc := range []struct {
		n    int32
		want error
	}{{MaxCallDepth - 2, nil}, {MaxCallDepth, ErrStackLimit}, {5000, ErrStackLimit}} {
		var works []uint64
		for _, rt := range []*Runtime{sharedRuntime(t), interp} {
			f, err := rt.Load(context.Background(), fmt.Sprint("rec", tc.n), rec(tc.n), lim)
			if err != nil {
				t.Fatal(err)
			}
			_, res, err := run(t, rt, f, nil)
			f.Release()
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("depth %d: err = %v, want %v", tc.n, err, tc.want)
			}
			works = append(works, res.Work)
		}
		if works[0] != works[1] {
			t.Fatalf("depth %d: work %d on the compiler, %d on the interpreter", tc.n, works[0], works[1])
		}
	}
}

// TestClosedRuntimeRefuses: loads racing Close neither panic nor compile
// on the closed runtime (a job check that arrived while its box stopped
// made wazero panic), and a load or run after Close fails with ErrClosed.
func TestClosedRuntimeRefuses(t *testing.T) {
	loadFn(t, sharedRuntime(t), DefaultLimits()).Release() // the disk cache holds the compiled module
	ctx := context.Background()
	rt, err := New(ctx, Config{CacheDir: sharedDir})
	if err != nil {
		t.Fatal(err)
	}
	f := loadFn(t, rt, DefaultLimits())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 2 {
				g, err := rt.Load(ctx, fmt.Sprintf("racing-%d-%d", i, j), testFn(t), DefaultLimits())
				switch {
				case err == nil:
					g.Release()
				case !errors.Is(err, ErrClosed):
					t.Error(err)
				}
			}
		})
	}
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := rt.Load(ctx, "after", testFn(t), DefaultLimits()); !errors.Is(err, ErrClosed) {
		t.Fatalf("load after Close: %v, want ErrClosed", err)
	}
	if _, err := rt.Run(ctx, f, Job{Args: []string{"probe"}}, io.Discard); !errors.Is(err, ErrClosed) {
		t.Fatalf("run after Close: %v, want ErrClosed", err)
	}
}
