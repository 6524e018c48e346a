package testnet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/orecdn/ore/node"
)

// ColdFigures are a gateway's figures for objects it does not hold: another
// box on loopback holds them, and every request is for an object the
// gateway box has never seen.
type ColdFigures struct {
	Bytes  int64 `json:"bytes"`
	Rounds int   `json:"rounds"`
	// TTFB: from the request until the first byte of the body.
	TTFBp50 float64 `json:"ttfb_p50_ms"`
	TTFBp99 float64 `json:"ttfb_p99_ms"`
	// FirstLeaf: from the start of a fetch (`ore get`) of a like object by
	// the same box until its first leaf arrived: what the network takes
	// before any byte of the file can leave.
	FirstLeafp50 float64 `json:"first_leaf_p50_ms"`
	FirstLeafp99 float64 `json:"first_leaf_p99_ms"`
	// LeafRatio is TTFBp50 / FirstLeafp50 (goal ≤ 2).
	LeafRatio float64 `json:"ttfb_over_first_leaf"`
	// Total: the whole object through the gateway.
	TotalP50 float64 `json:"total_p50_ms"`
	MBps     float64 `json:"mb_per_s"`
	// Range: 1 MB from the middle of a cold object, the whole request.
	RangeP50 float64 `json:"range_1mb_p50_ms"`
}

// coldRange is the Range a cold request asks for: 1 MB, as a video player
// seeking into a file asks.
const coldRange = 1_000_000

// BenchGatewayCold measures cache misses: box 0 holds the objects, box 1 is
// a gateway that fetches each from it over loopback. Each round adds three
// objects of each size to box 0 (one the gateway serves whole, one it
// serves a Range of, one box 1 fetches with Fetch to time its first leaf),
// so no request finds anything cached.
func BenchGatewayCold(ctx context.Context, sizes []int64, rounds int, progress func(string), opts ...Option) ([]ColdFigures, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("testnet: cold gateway bench: rounds must be positive, got %d", rounds)
	}
	nw, err := New(ctx, 2, append(opts, WithBoxOptions(1, node.WithRole(node.RoleGateway), node.WithGatewayListen("127.0.0.1:0")))...)
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	origin, gw := nw.Nodes[0], nw.Nodes[1]
	dir := filepath.Join(nw.root, "cold")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer client.CloseIdleConnections()
	base := "http://" + gw.GatewayAddr() + "/ipfs/"
	seed := uint64(1000)
	add := func(size int64) (string, error) {
		seed++
		p := filepath.Join(dir, fmt.Sprintf("obj%d.bin", seed))
		if err := WriteRandomFile(p, size, seed); err != nil {
			return "", err
		}
		defer os.Remove(p)
		res, err := origin.AddPath(ctx, p)
		if err != nil {
			return "", err
		}
		return res.Root.String(), nil
	}
	var out []ColdFigures
	for _, size := range sizes {
		var ttfb, leaf, total, rng []time.Duration
		for r := 0; r < rounds; r++ {
			if progress != nil {
				progress(fmt.Sprintf("%d B object, round %d of %d", size, r+1, rounds))
			}
			whole, err := add(size)
			if err != nil {
				return nil, err
			}
			part, err := add(size)
			if err != nil {
				return nil, err
			}
			fetched, err := add(size)
			if err != nil {
				return nil, err
			}
			w, err := timedGet(ctx, client, base+whole, "", size)
			if err != nil {
				return nil, err
			}
			ttfb, total = append(ttfb, w.body), append(total, w.total)
			from := size / 2
			n := min(int64(coldRange), size-from)
			r, err := timedGet(ctx, client, base+part, fmt.Sprintf("bytes=%d-%d", from, from+n-1), n)
			if err != nil {
				return nil, err
			}
			rng = append(rng, r.total)
			c, err := node.ParseCID(fetched)
			if err != nil {
				return nil, err
			}
			res, err := gw.Fetch(ctx, c, nil)
			if err != nil {
				return nil, fmt.Errorf("testnet: cold gateway bench: fetch by the gateway box: %w", err)
			}
			if res.FirstLeaf <= 0 {
				return nil, fmt.Errorf("testnet: cold gateway bench: the fetch of %s got no leaf from the network", c)
			}
			leaf = append(leaf, res.FirstLeaf)
		}
		f := ColdFigures{Bytes: size, Rounds: rounds,
			TTFBp50: pct(ttfb, 50), TTFBp99: pct(ttfb, 99), FirstLeafp50: pct(leaf, 50), FirstLeafp99: pct(leaf, 99),
			TotalP50: pct(total, 50), RangeP50: pct(rng, 50)}
		f.LeafRatio = f.TTFBp50 / f.FirstLeafp50
		var sum time.Duration
		for _, d := range total {
			sum += d
		}
		f.MBps = float64(size) * float64(rounds) / 1e6 / sum.Seconds()
		out = append(out, f)
	}
	return out, nil
}
