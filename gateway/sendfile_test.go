package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Leaves of the fake files on disk: diskLeaf bytes each, after a
// diskGap-byte header as records in a pack file have; every third leaf is
// not in the file and is read from memory, as a leaf inline in a node is.
const (
	diskLeaf = 64 << 10
	diskGap  = 24
)

// diskFiles writes the fake backend's local files in that layout and opens
// them; it counts the files open.
type diskFiles struct {
	dir   string
	mu    sync.Mutex
	data  map[cid.Cid][]byte
	paths map[cid.Cid]string
	open_ atomic.Int64
}

func newDiskFiles(t *testing.T, local map[cid.Cid][]byte) *diskFiles {
	t.Helper()
	d := &diskFiles{dir: t.TempDir(), data: local, paths: map[cid.Cid]string{}}
	for c, b := range local {
		var out []byte
		for off := 0; off < len(b); off += diskLeaf {
			out = append(out, make([]byte, diskGap)...)
			for i := range diskGap {
				out[len(out)-diskGap+i] = 0xEE // never part of a body
			}
			out = append(out, b[off:min(off+diskLeaf, len(b))]...)
			if pad := min(off+diskLeaf, len(b)) - off; pad < diskLeaf {
				out = append(out, make([]byte, diskLeaf-pad)...)
			}
		}
		p := filepath.Join(d.dir, c.String())
		if err := os.WriteFile(p, out, 0o600); err != nil {
			t.Fatal(err)
		}
		d.paths[c] = p
	}
	return d
}

func (d *diskFiles) open(c cid.Cid) (LocalFile, error) {
	f, err := os.Open(d.paths[c])
	if err != nil {
		return nil, err
	}
	d.open_.Add(1)
	return &diskFile{Reader: bytes.NewReader(d.data[c]), f: f, d: d}, nil
}

type diskFile struct {
	*bytes.Reader
	f *os.File
	d *diskFiles
}

func (f *diskFile) Extent(off int64) (*os.File, int64, int64, bool) {
	i, within := off/diskLeaf, off%diskLeaf
	rest := min(diskLeaf-within, f.Size()-off)
	if i%3 == 2 {
		return nil, 0, rest, false
	}
	return f.f, i*(diskLeaf+diskGap) + diskGap + within, rest, true
}

func (f *diskFile) Close() error {
	f.d.open_.Add(-1)
	return f.f.Close()
}

// testMeter is a data budget of max bytes.
type testMeter struct {
	mu        sync.Mutex
	max, used int
}

func (m *testMeter) Refusal() error { return nil }
func (m *testMeter) Reserve(n int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used+n > m.max {
		return false
	}
	m.used += n
	return true
}
func (m *testMeter) Unreserve(n int) { m.mu.Lock(); m.used -= n; m.mu.Unlock() }

func localRawFile(t *testing.T, fb *fakeBackend, size int) (cid.Cid, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>16)
	}
	blk, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, blocks.NewBlock(data).Cid().Hash()))
	if err := fb.bs.AddBlock(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	fb.local = map[cid.Cid][]byte{blk.Cid(): data}
	return blk.Cid(), data
}

// The fast path sends the runs of a local file that lie on disk from the
// file (sendfile on a TCP connection) and the rest from memory: every
// range reads back the file's bytes, exactly as from memory, the gateway
// counts the body bytes, and each file it opened is closed.
func TestLocalFileFromDisk(t *testing.T) {
	for _, onDisk := range []bool{false, true} {
		t.Run(fmt.Sprintf("on disk %v", onDisk), func(t *testing.T) {
			gw, fb, _ := newFake(t, Config{})
			size := 5*diskLeaf + 1234
			root, data := localRawFile(t, fb, size)
			if onDisk {
				fb.disk = newDiskFiles(t, fb.local)
			}
			srv := httptest.NewServer(gw)
			defer srv.Close()
			ranges := []struct {
				hdr      string
				from, to int // to exclusive
				code     int
			}{
				{"", 0, size, 200},
				{"bytes=0-0", 0, 1, 206},
				{"bytes=5-", 5, size, 206},
				{"bytes=-7", size - 7, size, 206},
				{fmt.Sprintf("bytes=%d-%d", diskLeaf-3, 3*diskLeaf+2), diskLeaf - 3, 3*diskLeaf + 3, 206},
				{fmt.Sprintf("bytes=%d-", 2*diskLeaf+100), 2*diskLeaf + 100, size, 206},
				{fmt.Sprintf("bytes=%d-%d", 4*diskLeaf, 5*diskLeaf-1), 4 * diskLeaf, 5 * diskLeaf, 206},
			}
			var sent float64
			for _, rg := range ranges {
				req, _ := http.NewRequest("GET", srv.URL+"/ipfs/"+root.String(), nil)
				if rg.hdr != "" {
					req.Header.Set("Range", rg.hdr)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%q: %v", rg.hdr, err)
				}
				if resp.StatusCode != rg.code || !bytes.Equal(body, data[rg.from:rg.to]) {
					t.Fatalf("%q: %d with %d bytes, want %d with bytes %d to %d", rg.hdr, resp.StatusCode, len(body), rg.code, rg.from, rg.to)
				}
				sent += float64(len(body))
			}
			// The gateway counts a response once its handler returned,
			// which may be after the client read the body.
			waitFor(t, 10*time.Second, "the gateway never counted the body bytes it sent", func() bool {
				return testutil.ToFloat64(gw.bytes) == sent
			})
			// The runs on disk, two leaves in three, went through sendFile.
			fromFile := testutil.ToFloat64(gw.fileBytes)
			if onDisk && (fromFile < sent/2 || fromFile > sent*3/4) {
				t.Errorf("%v of %v bytes sent from the file", fromFile, sent)
			}
			if !onDisk && fromFile != 0 {
				t.Errorf("%v bytes sent from a file, with no file", fromFile)
			}
			if got := testutil.ToFloat64(gw.local); got != float64(len(ranges)) {
				t.Errorf("the fast path answered %v of %d requests", got, len(ranges))
			}
			if fb.disk != nil && fb.disk.open_.Load() != 0 {
				t.Errorf("%d local files left open", fb.disk.open_.Load())
			}
		})
	}
}

// The data budget holds on the sendfile path: each run is reserved before
// it is sent, the response is cut at the first run the budget has no room
// for, and the client receives exactly the bytes counted.
func TestLocalFileFromDiskMetered(t *testing.T) {
	m := &testMeter{max: 3*diskLeaf + 100}
	gw, fb, _ := newFake(t, Config{Meter: m})
	root, data := localRawFile(t, fb, 6*diskLeaf)
	fb.disk = newDiskFiles(t, fb.local)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ipfs/" + root.String())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || resp.StatusCode != 200 {
		t.Fatalf("a response over the budget: %d, %d bytes, read error %v; want 200 cut short", resp.StatusCode, len(body), err)
	}
	if m.used > m.max || m.used != len(body) || !bytes.Equal(body, data[:len(body)]) {
		t.Fatalf("the budget counted %d bytes of %d, the client received %d", m.used, m.max, len(body))
	}
	if m.used < 3*diskLeaf {
		t.Fatalf("only %d bytes sent of a budget of %d", m.used, m.max)
	}
	if fb.disk.open_.Load() != 0 {
		t.Errorf("%d local files left open", fb.disk.open_.Load())
	}
}

// A writer that cannot take a file (a recorder here, HTTP/2 in the field)
// gets the runs on disk copied, also after a run from memory.
func TestLocalFileFromDiskNoSendFile(t *testing.T) {
	gw, fb, _ := newFake(t, Config{})
	size := 5 * diskLeaf
	root, data := localRawFile(t, fb, size)
	fb.disk = newDiskFiles(t, fb.local)
	from := 2*diskLeaf + 10 // in leaf 2, read from memory; leaf 3 is on disk
	rec := get(t, gw, "GET", "/ipfs/"+root.String(), "Range", fmt.Sprintf("bytes=%d-", from))
	if rec.Code != 206 || !bytes.Equal(rec.Body.Bytes(), data[from:]) {
		t.Fatalf("%d with %d bytes, want 206 with %d", rec.Code, rec.Body.Len(), size-from)
	}
	if got := testutil.ToFloat64(gw.bytes); got != float64(size-from) {
		t.Errorf("the gateway counted %v body bytes, sent %d", got, size-from)
	}
	if got := testutil.ToFloat64(gw.fileBytes); got != 0 {
		t.Errorf("%v bytes counted as sent from a file through a recorder", got)
	}
}
