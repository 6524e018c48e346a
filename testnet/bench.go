package testnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/google/pprof/profile"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/orecdn/ore/node"
)

// rawProtocol is the benchmark's baseline: a plain libp2p stream that sends
// the requested number of bytes.
const rawProtocol = protocol.ID("/ore/bench/raw/1.0.0")

// TransferConfig is what BenchTransfer measures.
type TransferConfig struct {
	Size int64
	// Transport the boxes listen on: "tcp", "quic", or "" (both; libp2p
	// picks, QUIC on loopback).
	Transport string
	// Profile, if not nil, gets the CPU profile (pprof) of ore's fetch,
	// its samples labelled by box (BoxLabel "0" serves, "1" fetches):
	// `go tool pprof -tagfocus box=0` shows the serving side.
	Profile io.Writer
}

// TransferResult compares ore's fetch with a raw libp2p stream copy between
// the same two hosts in the same run.
type TransferResult struct {
	Bytes       int64   `json:"bytes"`
	Transport   string  `json:"transport"`
	AddMBps     float64 `json:"add_mb_per_s"`
	OreSeconds  float64 `json:"ore_seconds"`
	OreMBps     float64 `json:"ore_mb_per_s"`
	RawMBps     float64 `json:"raw_mb_per_s"` // mean of one copy before and one after ore's fetch
	Ratio       float64 `json:"ratio"`        // ore / raw
	Blocks      int64   `json:"blocks"`
	DupBlocks   uint64  `json:"duplicate_blocks"`
	StoreWrites int64   `json:"store_bytes"`
	// CPU per GiB moved: ore's fetch, and the two raw copies together.
	OreCPU CPUPerGiB `json:"ore_cpu"`
	RawCPU CPUPerGiB `json:"raw_cpu"`
	// ore / raw stream, CPU seconds per GiB of each side; 0 when the raw
	// copy was too short for the profile (100 samples a second) to see
	// that side, as with a few MiB.
	ServeCPURatio float64 `json:"serve_cpu_ratio"`
	FetchCPURatio float64 `json:"fetch_cpu_ratio"`
}

// CPUPerGiB is the CPU seconds a transfer cost per GiB it moved, split by
// side. Both boxes run in this process: the split comes from a CPU profile
// whose samples carry the box they worked for (BoxLabel). The runtime's
// own work (the garbage collector's workers) carries no box: it is Runtime,
// and each side's figure includes a share of it in proportion to the
// side's labelled CPU (the garbage each side makes is collected there).
// Total is the process's user and system time (getrusage), so Runtime is
// Total less the labelled samples.
type CPUPerGiB struct {
	Serve   float64 `json:"serve_s_per_gib"`
	Fetch   float64 `json:"fetch_s_per_gib"`
	Runtime float64 `json:"runtime_s_per_gib"`
	Total   float64 `json:"total_s_per_gib"`
}

// WriteRandomFile writes size pseudo-random bytes to path (seeded, fast).
func WriteRandomFile(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// The boxes of BenchTransfer.
const (
	serveBox = 0
	fetchBox = 1
)

// BenchTransfer starts two boxes, adds cfg.Size random bytes on box 0 and
// fetches them on box 1, and copies the same number of bytes over a raw
// stream between the two hosts before and after. It measures each side's
// CPU with a CPU profile, so no other CPU profile may run meanwhile.
func BenchTransfer(ctx context.Context, cfg TransferConfig, opts ...Option) (TransferResult, error) {
	size := cfg.Size
	res := TransferResult{Bytes: size}
	switch cfg.Transport {
	case "":
	case "tcp":
		opts = append(opts, WithTCPOnly())
	case "quic":
		opts = append(opts, WithQUICOnly())
	default:
		return res, fmt.Errorf("testnet: transport %q: want tcp, quic or none", cfg.Transport)
	}
	nw, err := New(ctx, 2, opts...)
	if err != nil {
		return res, err
	}
	defer nw.Close()
	src, dst := nw.Nodes[serveBox], nw.Nodes[fetchBox]
	path := filepath.Join(nw.root, "bench.bin")
	if err := WriteRandomFile(path, size, uint64(time.Now().UnixNano())); err != nil {
		return res, fmt.Errorf("testnet: write bench file: %w", err)
	}
	start := time.Now()
	added, err := src.AddPath(ctx, path)
	if err != nil {
		return res, err
	}
	res.AddMBps = mbps(size, time.Since(start))
	os.Remove(path)

	src.Host().SetStreamHandler(rawProtocol, serveRaw)
	defer src.Host().RemoveStreamHandler(rawProtocol)
	// Everything box 1 does runs as box 1 (see BoxLabel).
	asFetcher := func(f func(ctx context.Context) error) func() error {
		return func() (err error) {
			nw.AsBox(ctx, fetchBox, func(ctx context.Context) { err = f(ctx) })
			return err
		}
	}
	if err := asFetcher(func(ctx context.Context) error { return dst.Connect(ctx, src.AddrInfo()) })(); err != nil {
		return res, err
	}
	var (
		raw1, raw2 float64
		transport  string
	)
	cpuRaw1, err := measureCPU(asFetcher(func(ctx context.Context) (err error) {
		raw1, transport, err = rawCopy(ctx, dst.Host(), src.ID(), size)
		return err
	}), nil)
	if err != nil {
		return res, err
	}
	var (
		fr   node.FetchResult
		took time.Duration
	)
	cpuOre, err := measureCPU(asFetcher(func(ctx context.Context) (err error) {
		start := time.Now()
		fr, err = dst.Fetch(ctx, added.Root, nil)
		took = time.Since(start)
		return err
	}), cfg.Profile)
	if err != nil {
		return res, err
	}
	cpuRaw2, err := measureCPU(asFetcher(func(ctx context.Context) (err error) {
		raw2, _, err = rawCopy(ctx, dst.Host(), src.ID(), size)
		return err
	}), nil)
	if err != nil {
		return res, err
	}
	res.Transport = transport
	res.OreSeconds = took.Seconds()
	res.OreMBps = mbps(size, took)
	res.RawMBps = (raw1 + raw2) / 2
	res.Ratio = res.OreMBps / res.RawMBps
	res.Blocks = fr.Blocks
	res.StoreWrites = dst.Store().Used()
	if st, err := dst.Exchange().Stats(); err == nil {
		res.DupBlocks = st.DupBlocks
	}
	res.OreCPU = cpuOre.perGiB(size)
	res.RawCPU = cpuRaw1.add(cpuRaw2).perGiB(2 * size)
	res.ServeCPURatio = cpuRatio(res.OreCPU.Serve, res.RawCPU.Serve)
	res.FetchCPURatio = cpuRatio(res.OreCPU.Fetch, res.RawCPU.Fetch)
	return res, nil
}

// cpuRatio is a/b, or 0 when b is 0 (unmeasured: see TransferResult).
func cpuRatio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// cpuUse is the CPU a measured stretch cost: by box (labelled profile
// samples), and in all (getrusage).
type cpuUse struct {
	serve, fetch, total time.Duration
}

func (u cpuUse) add(v cpuUse) cpuUse {
	return cpuUse{serve: u.serve + v.serve, fetch: u.fetch + v.fetch, total: u.total + v.total}
}

// perGiB gives each side its labelled CPU plus its share of the rest (see
// CPUPerGiB), per GiB of n bytes moved.
func (u cpuUse) perGiB(n int64) CPUPerGiB {
	gib := float64(n) / (1 << 30)
	labelled := u.serve + u.fetch
	rest := max(u.total-labelled, 0)
	side := func(d time.Duration) float64 {
		if labelled <= 0 {
			return 0
		}
		return (d.Seconds() + rest.Seconds()*d.Seconds()/labelled.Seconds()) / gib
	}
	return CPUPerGiB{Serve: side(u.serve), Fetch: side(u.fetch), Runtime: rest.Seconds() / gib, Total: u.total.Seconds() / gib}
}

// measureCPU runs f under a CPU profile and sums its samples by box; the
// profile goes to w too if w is not nil.
func measureCPU(f func() error, w io.Writer) (cpuUse, error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return cpuUse{}, fmt.Errorf("testnet: the transfer bench measures CPU with a CPU profile, and one runs already (drop -cpuprofile; TransferConfig.Profile gets the fetch's): %w", err)
	}
	c0 := processCPU()
	err := f()
	total := processCPU() - c0
	pprof.StopCPUProfile()
	if err != nil {
		return cpuUse{}, err
	}
	if w != nil {
		if _, err := w.Write(buf.Bytes()); err != nil {
			return cpuUse{}, fmt.Errorf("testnet: write the CPU profile: %w", err)
		}
	}
	prof, err := profile.Parse(&buf)
	if err != nil {
		return cpuUse{}, fmt.Errorf("testnet: read the CPU profile: %w", err)
	}
	idx := -1
	for i, st := range prof.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 {
		return cpuUse{}, errors.New("testnet: the CPU profile has no cpu/nanoseconds samples")
	}
	u := cpuUse{total: total}
	for _, s := range prof.Sample {
		d := time.Duration(s.Value[idx])
		switch box := s.Label[BoxLabel]; {
		case len(box) == 1 && box[0] == strconv.Itoa(serveBox):
			u.serve += d
		case len(box) == 1 && box[0] == strconv.Itoa(fetchBox):
			u.fetch += d
		}
	}
	return u, nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func serveRaw(s network.Stream) {
	defer s.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		_ = s.Reset()
		return
	}
	n := int64(binary.BigEndian.Uint64(hdr[:]))
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := s.Write(buf[:k]); err != nil {
			_ = s.Reset()
			return
		}
		n -= k
	}
}

// rawCopy reads size bytes from p over a new raw stream and returns MB/s
// and the transport the stream ran on.
func rawCopy(ctx context.Context, h host.Host, p peer.ID, size int64) (float64, string, error) {
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "bench"), p, rawProtocol)
	if err != nil {
		return 0, "", fmt.Errorf("testnet: raw stream: %w", err)
	}
	defer s.Close()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	start := time.Now()
	if _, err := s.Write(hdr[:]); err != nil {
		return 0, "", err
	}
	n, err := io.CopyBuffer(io.Discard, s, make([]byte, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("testnet: raw copy: %w", err)
	}
	if n != size {
		return 0, "", fmt.Errorf("testnet: raw copy got %d of %d bytes", n, size)
	}
	return mbps(size, time.Since(start)), transportOf(s.Conn().RemoteMultiaddr()), nil
}

func transportOf(m ma.Multiaddr) string {
	for _, p := range []int{ma.P_QUIC_V1, ma.P_TCP} {
		if _, err := m.ValueForProtocol(p); err == nil {
			if p == ma.P_TCP {
				return "tcp"
			}
			return "quic"
		}
	}
	return m.String()
}
