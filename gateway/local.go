package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gabriel-vasile/mimetype"
	"github.com/ipfs/go-cid"
)

// The local fast path. A CDN edge serves most requests from its cache, so
// the common case deserves the shortest path: a plain GET or HEAD of
// /ipfs/{cid} for a UnixFS file whose every block is on this box is served
// straight from the store with net/http's ServeContent (leaves that lie in
// files on disk go file to socket with sendfile, see FileExtents), with
// the headers boxo's path gateway sends for the same request (ETag,
// Cache-Control, X-Ipfs-Roots, X-Ipfs-Path, Content-Type by sniffing; the
// CORS headers are the gateway's, on every response). Anything else
// (paths inside a DAG, directories, trustless formats, several ranges,
// query parameters, a DAG not wholly local) takes boxo's handler.

// ErrNotLocal says a root cannot take the local fast path.
var ErrNotLocal = errors.New("gateway: not a wholly local UnixFS file")

// LocalFiles is implemented by backends that can open a UnixFS file whose
// every block is local.
type LocalFiles interface {
	// OpenLocal opens root as a file, or fails with ErrNotLocal (the
	// request then takes boxo's handler).
	OpenLocal(ctx context.Context, root cid.Cid) (LocalFile, error)
}

// LocalFile is a wholly local file: a seekable reader of Size bytes. The
// gateway closes it after the response when it is an io.Closer.
type LocalFile interface {
	io.ReadSeeker
	Size() int64
}

// FileExtents is implemented by a LocalFile whose bytes lie in files on
// disk: the fast path sends those with sendfile, file to socket, where
// http.FileServer's advantage lies (a Go handler that copies in user
// space keeps its core busy until the socket buffer fills, and on a busy
// machine the client waits its turn for a core; sendfile blocks in the
// kernel at once). The backend answers for the bytes' integrity (package
// store's rule for its pack files).
type FileExtents interface {
	// Extent says where the file's bytes from off on lie: n bytes (n ≥
	// 1, to the end of a leaf at most) at offset at in file, which the
	// caller may seek but does not close. ok false: those n bytes are not
	// in a file (or cannot be sent from one): read them.
	Extent(off int64) (file *os.File, at, n int64, ok bool)
}

// sniffLen is what boxo gives mimetype to detect a content type.
const sniffLen = 3072

// localEligible reports whether the request is one the fast path answers
// exactly as boxo would.
func localEligible(r *http.Request, rest string) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if strings.Contains(rest, "/") || r.URL.RawQuery != "" {
		return false
	}
	if strings.Contains(r.Header.Get("Range"), ",") {
		return false // boxo honours only the first of several ranges
	}
	if r.Header.Get("Service-Worker") != "" {
		return false
	}
	if r.Method == http.MethodHead && r.Header.Get("Cache-Control") == "only-if-cached" {
		return false // boxo answers a bare 200 (or 412)
	}
	accept := r.Header.Get("Accept")
	for _, special := range []string{"application/vnd.", "application/x-tar", "application/json", "application/cbor"} {
		if strings.Contains(accept, special) {
			return false
		}
	}
	return true
}

// immutableCacheControl is what boxo sends for /ipfs/ content.
const immutableCacheControl = "public, max-age=29030400, immutable"

// serveLocal answers from a local file. It returns false, having written
// nothing, when the request needs boxo's handler after all (a validator
// other than the file's ETag, a Range header it does not parse the same
// way) or the file cannot be read.
func (g *Gateway) serveLocal(w http.ResponseWriter, r *http.Request, root cid.Cid, f LocalFile) bool {
	s := root.String()
	etag := `"` + s + `"`
	h := w.Header()
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if !etagMatch(inm, etag) {
			return false // boxo also knows the directory-listing and DAG-index validators
		}
		h.Set("X-Ipfs-Path", "/ipfs/"+s)
		h.Set("Ipfs-Uri", "ipfs://"+s)
		h.Set("Etag", etag)
		h.Set("Cache-Control", immutableCacheControl)
		w.WriteHeader(http.StatusNotModified)
		g.local.Inc()
		return true
	}
	ctype, ok := g.localContentType(r, root, f)
	if !ok {
		return false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	h.Set("Etag", etag)
	h.Set("Cache-Control", immutableCacheControl)
	h.Set("X-Ipfs-Path", "/ipfs/"+s)
	h.Set("Ipfs-Uri", "ipfs://"+s)
	h.Set("X-Ipfs-Roots", s)
	if ctype != "" {
		h.Set("Content-Type", ctype)
	} else {
		h["Content-Type"] = nil // no body to sniff: no type, and no sniffing
	}
	if f.Size() == 0 && r.Method == http.MethodGet && r.Header.Get("Range") != "" {
		// An empty file has no ranges: 200 with nothing (boxo fails some
		// of these with a 500; to a HEAD it answers as net/http does).
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	g.local.Inc()
	http.ServeContent(keepValidators{w, etag}, r, "", time.Time{}, f)
	return true
}

// localContentType decides the Content-Type the way boxo does: sniffed
// with mimetype from the file's start, except for a GET whose range starts
// elsewhere, where net/http sniffs the first bytes sent.
func (g *Gateway) localContentType(r *http.Request, root cid.Cid, f LocalFile) (string, bool) {
	size := f.Size()
	var at, n int64 = 0, min(sniffLen, size)
	sniff := func(b []byte) string {
		t := mimetype.Detect(b).String()
		if strings.HasPrefix(t, "text/html;") {
			t = "text/html"
		}
		return t
	}
	if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet {
		from, to, suffix, ok := parseOneRange(rh)
		if !ok {
			return "", false
		}
		if suffix || from != 0 {
			switch {
			case size == 0:
				return "", true // the range is ignored, no body
			case suffix:
				at = max(0, size-from)
			case from >= size:
				return "", true // 416: net/http's error text sets its own type
			default:
				at = from
			}
			n = size - at
			if to >= 0 && !suffix {
				n = min(n, to-at+1)
			}
			if n <= 0 {
				return "", false
			}
			n = min(n, 512)
			sniff = http.DetectContentType
		}
	}
	fromStart := at == 0 && n == min(sniffLen, size)
	if fromStart {
		if t, ok := g.ctypes.Get(root); ok {
			return t, true
		}
	}
	buf := make([]byte, n)
	if _, err := f.Seek(at, io.SeekStart); err != nil {
		return "", false
	}
	if _, err := io.ReadFull(f, buf); err != nil {
		return "", false
	}
	t := sniff(buf)
	if fromStart {
		g.ctypes.Add(root, t)
	}
	return t, true
}

// parseOneRange reads a single "bytes=" range as boxo does: from-to,
// from- (to = -1), or -suffix (from = the suffix length).
func parseOneRange(s string) (from, to int64, suffix, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes=")
	if !found {
		return 0, 0, false, false
	}
	start, end, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	start, end = strings.TrimSpace(start), strings.TrimSpace(end)
	to = -1
	if start == "" {
		n, err := strconv.ParseInt(end, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false, false
		}
		return n, -1, true, true
	}
	from, err := strconv.ParseInt(start, 10, 64)
	if err != nil || from < 0 {
		return 0, 0, false, false
	}
	if end != "" {
		if to, err = strconv.ParseInt(end, 10, 64); err != nil || to < from {
			return 0, 0, false, false
		}
	}
	return from, to, false, true
}

// etagMatch reports whether an If-None-Match list names etag (weakly) or
// is "*".
func etagMatch(list, etag string) bool {
	for _, tok := range strings.Split(list, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "*" || strings.TrimPrefix(tok, "W/") == etag {
			return true
		}
	}
	return false
}

// keepValidators puts back the validators net/http's ServeContent drops
// from a 416 answer, which boxo keeps.
type keepValidators struct {
	http.ResponseWriter
	etag string
}

func (k keepValidators) WriteHeader(code int) {
	if code == http.StatusRequestedRangeNotSatisfiable {
		k.Header().Set("Etag", k.etag)
		k.Header().Set("Cache-Control", immutableCacheControl)
	}
	k.ResponseWriter.WriteHeader(code)
}

// localCopyFirst and localCopyBuf are the sizes of the fast path's writes:
// the first small, so the first byte leaves as soon as the first leaf is
// read; then whole leaves at a time. io.Copy's 32 KiB writes cost a
// 256 MiB response 8,192 trips through the deadline, the meter and a
// write system call where http.FileServer makes a few sendfile calls.
const (
	localCopyFirst = 32 << 10
	localCopyBuf   = 256 << 10
)

var localCopyBufs = sync.Pool{New: func() any { b := make([]byte, localCopyBuf); return &b }}

// ReadFrom sends the body ServeContent sends (io.CopyN of the local
// file): the runs that lie in files with sendfile (FileExtents) when the
// connection takes it, the rest copied in writes of up to localCopyBuf
// bytes. Both go through the gateway's meter and write deadline.
func (k keepValidators) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return k.copyFrom(r)
	}
	src, ok := lr.R.(interface {
		FileExtents
		io.ReadSeeker
	})
	fs, ok2 := k.ResponseWriter.(fileSender)
	if !ok || !ok2 {
		return k.copyFrom(r)
	}
	var n int64
	for lr.N > 0 {
		off, err := src.Seek(0, io.SeekCurrent)
		if err != nil {
			return n, err
		}
		f, at, m, inFile := src.Extent(off)
		m = min(m, lr.N)
		if m <= 0 {
			return n, fmt.Errorf("gateway: the local file has no bytes at %d", off)
		}
		if inFile {
			if _, err := f.Seek(at, io.SeekStart); err != nil {
				return n, err
			}
			w, err := fs.sendFile(f, m)
			if errors.Is(err, errNoSendFile) {
				// Nothing sent: the writer cannot take a file.
				w, err := k.copyFrom(r)
				return n + w, err
			}
			n += w
			lr.N -= w
			if _, serr := src.Seek(w, io.SeekCurrent); err == nil {
				err = serr
			}
			if err != nil {
				return n, err
			}
			continue
		}
		w, err := k.copyFrom(&io.LimitedReader{R: src, N: m})
		n += w
		lr.N -= w
		if err != nil {
			return n, err
		}
		if w < m {
			return n, io.ErrUnexpectedEOF
		}
	}
	return n, nil
}

// copyFrom copies r to the client in writes of up to localCopyBuf bytes,
// the first localCopyFirst.
func (k keepValidators) copyFrom(r io.Reader) (int64, error) {
	bp := localCopyBufs.Get().(*[]byte)
	defer localCopyBufs.Put(bp)
	buf := (*bp)[:localCopyFirst]
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			w, werr := k.ResponseWriter.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
			if w < m {
				return n, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		buf = (*bp)[:localCopyBuf]
	}
}
