package netron_test

import (
	"context"
	"io"
	"iter"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// BlobStreamer produces and consumes chunks without touching them, so the
// benchmarks measure the streams.
type BlobStreamer struct{}

// Blob streams n chunks of size bytes.
func (BlobStreamer) Blob(n, size int) iter.Seq2[[]byte, error] {
	buf := make([]byte, size)
	return func(yield func([]byte, error) bool) {
		for range n {
			if !yield(buf, nil) {
				return
			}
		}
	}
}

// Drain reads a stream and returns how many bytes it had.
func (BlobStreamer) Drain(r *stream.Reader[[]byte]) (int64, error) {
	var n int64
	for b, err := range r.All() {
		if err != nil {
			return n, err
		}
		n += int64(len(b))
	}
	return n, nil
}

func benchBlobPair(b *testing.B) *rpc.Service {
	b.Helper()
	ctx := context.Background()
	server := startNode(b, netron.Config{ID: "bench-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("blob@1.0.0", BlobStreamer{}); err != nil {
		b.Fatal(err)
	}
	client := startNode(b, netron.Config{ID: "bench-client"})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		b.Fatal(err)
	}
	svc, err := p.Service(ctx, "blob@1.0.0")
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// benchDownload streams b.N chunks of size bytes server → client.
func benchDownload(b *testing.B, size int) {
	svc := benchBlobPair(b)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	r, err := rpc.OpenStream[[]byte](ctx, svc, "blob", b.N, size)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for range b.N {
		if _, err := r.Recv(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := r.Recv(ctx); err != io.EOF {
		b.Fatalf("end: %v", err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "chunks/s")
}

// benchUpload streams b.N chunks of size bytes client → server, as a call
// argument.
func benchUpload(b *testing.B, size int) {
	svc := benchBlobPair(b)
	ctx := context.Background()
	buf := make([]byte, size)
	n := b.N
	src := stream.FromSeq(func(yield func([]byte, error) bool) {
		for range n {
			if !yield(buf, nil) {
				return
			}
		}
	})
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	got, err := rpc.Call[int64](ctx, svc, "drain", src)
	if err != nil {
		b.Fatal(err)
	}
	if got != int64(n)*int64(size) {
		b.Fatalf("drained %d bytes", got)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "chunks/s")
}

// BenchmarkStream64KiB measures MB/s of 64 KiB chunks over loopback
// WebSocket, both ways, with flow control (default 1 MiB window).
func BenchmarkStream64KiB(b *testing.B) {
	b.Run("server-to-client", func(b *testing.B) { benchDownload(b, 64<<10) })
	b.Run("client-to-server", func(b *testing.B) { benchUpload(b, 64<<10) })
}

// BenchmarkStreamSmall measures chunks/s of 64-byte chunks.
func BenchmarkStreamSmall(b *testing.B) {
	b.Run("server-to-client", func(b *testing.B) { benchDownload(b, 64) })
	b.Run("client-to-server", func(b *testing.B) { benchUpload(b, 64) })
}
