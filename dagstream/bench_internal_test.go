package dagstream

import (
	"context"
	"io"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkStream streams a 64 MiB file of 256 KiB leaves between two
// hosts on loopback, from and into memory (no disk, no gate), next to a
// raw stream copy of the same bytes between the same hosts: what the
// protocol itself costs (hashing, framing, the walk).
//
//	go test -run XXX -bench Stream -benchtime 5x ./dagstream/
func BenchmarkStream(b *testing.B) {
	for _, tr := range []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"} {
		b.Run(tr[len("/ip4/127.0.0.1/"):len("/ip4/127.0.0.1/")+3], func(b *testing.B) {
			mk := func() host.Host {
				h, err := libp2p.New(libp2p.ListenAddrStrings(tr))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = h.Close() })
				return h
			}
			cl, sv := mk(), mk()
			if err := cl.Connect(context.Background(), peer.AddrInfo{ID: sv.ID(), Addrs: sv.Addrs()}); err != nil {
				b.Fatal(err)
			}
			bs := newStore()
			const size = 64 << 20
			_, root := testFileChunked(b, bs, size, 1, 256<<10, 174)
			srv, _ := NewServer(bs, always)
			sv.SetStreamHandler(ProtocolID, srv.HandleStream)
			sv.SetStreamHandler("/raw", func(st network.Stream) {
				defer st.Close()
				buf := make([]byte, 1<<20)
				for n := 0; n < size; n += len(buf) {
					if _, err := st.Write(buf); err != nil {
						return
					}
				}
			})
			cli, _ := NewClient(cl)
			var dag, raw time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := cli.Get(context.Background(), sv.ID(), Request{Root: root}, &countSink{}, nil); err != nil {
					b.Fatal(err)
				}
				dag += time.Since(start)
				start = time.Now()
				st, err := cl.NewStream(context.Background(), sv.ID(), "/raw")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, st); err != nil {
					b.Fatal(err)
				}
				_ = st.Close()
				raw += time.Since(start)
			}
			b.ReportMetric(float64(size)*float64(b.N)/1e6/dag.Seconds(), "dag-MB/s")
			b.ReportMetric(float64(size)*float64(b.N)/1e6/raw.Seconds(), "raw-MB/s")
			b.ReportMetric(raw.Seconds()/dag.Seconds(), "dag/raw")
		})
	}
}

type countSink struct{ n int }

func (s *countSink) Put(_ context.Context, bs []blocks.Block) error { s.n += len(bs); return nil }
