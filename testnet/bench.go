package testnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// rawProtocol is the benchmark's baseline: a plain libp2p stream that sends
// the requested number of bytes.
const rawProtocol = protocol.ID("/ore/bench/raw/1.0.0")

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

// BenchTransfer starts two boxes, adds size random bytes on box 0 and
// fetches them on box 1, and copies the same number of bytes over a raw
// stream between the two hosts before and after.
func BenchTransfer(ctx context.Context, size int64, opts ...Option) (TransferResult, error) {
	res := TransferResult{Bytes: size}
	nw, err := New(ctx, 2, opts...)
	if err != nil {
		return res, err
	}
	defer nw.Close()
	src, dst := nw.Nodes[0], nw.Nodes[1]
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
	if err := dst.Connect(ctx, src.AddrInfo()); err != nil {
		return res, err
	}
	raw1, transport, err := rawCopy(ctx, dst.Host(), src.ID(), size)
	if err != nil {
		return res, err
	}
	start = time.Now()
	fr, err := dst.Fetch(ctx, added.Root, nil)
	if err != nil {
		return res, err
	}
	took := time.Since(start)
	raw2, _, err := rawCopy(ctx, dst.Host(), src.ID(), size)
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
	return res, nil
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
