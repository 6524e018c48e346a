package testnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/orecdn/ore/node"
)

// GatewayFigures are one object's figures through ore's gateway and through
// Go's http.FileServer serving the same bytes from disk, in the same run.
type GatewayFigures struct {
	Bytes         int64   `json:"bytes"`
	Requests      int     `json:"requests"`
	OreTTFBp50    float64 `json:"ore_ttfb_p50_ms"`
	OreTTFBp99    float64 `json:"ore_ttfb_p99_ms"`
	FileTTFBp50   float64 `json:"file_ttfb_p50_ms"`
	FileTTFBp99   float64 `json:"file_ttfb_p99_ms"`
	OreMBps       float64 `json:"ore_mb_per_s"`
	FileMBps      float64 `json:"file_mb_per_s"`
	TTFBRatio     float64 `json:"ttfb_p50_ratio"` // ore / file server (goal ≤ 2)
	ThroughputRat float64 `json:"throughput_ratio"`
}

// BenchGateway measures a gateway serving cached objects of the given sizes
// (requests each), next to http.FileServer on the same bytes.
func BenchGateway(ctx context.Context, sizes []int64, requests []int, opts ...Option) ([]GatewayFigures, error) {
	nw, err := New(ctx, 1, append(opts, WithNodeOptions(node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0")))...)
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	gw := nw.Nodes[0]
	dir := filepath.Join(nw.root, "files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fsrv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go fsrv.Serve(l)
	defer fsrv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var out []GatewayFigures
	for i, size := range sizes {
		name := fmt.Sprintf("obj%d.bin", i)
		p := filepath.Join(dir, name)
		if err := WriteRandomFile(p, size, uint64(i+1)); err != nil {
			return nil, err
		}
		res, err := gw.AddPath(ctx, p, node.AddNoProvide())
		if err != nil {
			return nil, err
		}
		oreURL := "http://" + gw.GatewayAddr() + "/ipfs/" + res.Root.String()
		fileURL := "http://" + l.Addr().String() + "/" + name
		// Warm both (page cache, connections), then interleave.
		for _, u := range []string{oreURL, fileURL} {
			if _, err := timedGet(ctx, client, u, "", size); err != nil {
				return nil, err
			}
		}
		var oreT, fileT []time.Duration
		var oreTotal, fileTotal time.Duration
		for r := 0; r < requests[i]; r++ {
			o, err := timedGet(ctx, client, oreURL, "", size)
			if err != nil {
				return nil, err
			}
			oreT, oreTotal = append(oreT, o.response), oreTotal+o.total
			f, err := timedGet(ctx, client, fileURL, "", size)
			if err != nil {
				return nil, err
			}
			fileT, fileTotal = append(fileT, f.response), fileTotal+f.total
		}
		f := GatewayFigures{Bytes: size, Requests: requests[i],
			OreTTFBp50: pct(oreT, 50), OreTTFBp99: pct(oreT, 99), FileTTFBp50: pct(fileT, 50), FileTTFBp99: pct(fileT, 99),
			OreMBps:  float64(size) * float64(requests[i]) / 1e6 / oreTotal.Seconds(),
			FileMBps: float64(size) * float64(requests[i]) / 1e6 / fileTotal.Seconds()}
		f.TTFBRatio = f.OreTTFBp50 / f.FileTTFBp50
		f.ThroughputRat = f.OreMBps / f.FileMBps
		out = append(out, f)
	}
	return out, nil
}

// getTimes are the times of one GET from sending the request: to the
// response's first byte (the status line: what the cached gateway bench
// calls TTFB), to the body's first byte (what a cache miss waits for:
// the gateway sends its headers once it knows the content's type), and to
// the end of the body.
type getTimes struct {
	response, body, total time.Duration
}

// timedGet downloads url (a Range of it when rng is not empty) and checks
// the status (200, or 206 for a Range) and that the body is size bytes.
func timedGet(ctx context.Context, c *http.Client, url, rng string, size int64) (getTimes, error) {
	var t getTimes
	var start, first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", url, nil)
	if err != nil {
		return t, err
	}
	want := http.StatusOK
	if rng != "" {
		req.Header.Set("Range", rng)
		want = http.StatusPartialContent
	}
	start = time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return t, err
	}
	defer resp.Body.Close()
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		return t, fmt.Errorf("testnet: GET %s: %d: %w", url, resp.StatusCode, err)
	}
	t.body = time.Since(start)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return t, err
	}
	if resp.StatusCode != want || n+1 != size {
		return t, fmt.Errorf("testnet: GET %s: %d, %d of %d bytes", url, resp.StatusCode, n+1, size)
	}
	t.response, t.total = first.Sub(start), time.Since(start)
	return t, nil
}

func pct(ds []time.Duration, p int) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(s[i]) / float64(time.Millisecond)
}
