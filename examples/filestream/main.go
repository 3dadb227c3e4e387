// Command filestream streams a large file between two nodes: one node
// exposes files@1.0.0, whose download method streams a generated file in
// 64 KiB chunks; the other downloads it with flow control, writes it out,
// and checks its SHA-256 against the server's.
//
//	go run ./examples/filestream            # 256 MiB
//	go run ./examples/filestream -size 1GiB
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// ChunkSize is the size of the chunks a download is streamed in.
const ChunkSize = 64 << 10

// Files serves generated files: the content of a file is a pseudo-random
// stream seeded by its name.
type Files struct{ Size int64 }

func (f Files) content(name string) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256([]byte(name)))
}

// Download streams the file in chunks. It is a finite stream: a consumer
// that hears nothing for the inactivity timeout gives up.
func (f Files) Download(ctx context.Context, name string) (stream.Source, error) {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, rpc.NewError(400, "bad file name", map[string]any{"name": name})
	}
	return stream.Finite(stream.FromFunc(func(ctx context.Context, w *stream.Writer[[]byte]) error {
		src := f.content(name)
		buf := make([]byte, ChunkSize) // reused: Send encodes before it returns
		for left := f.Size; left > 0; {
			b := buf[:min(int64(len(buf)), left)]
			src.Read(b)
			if err := w.Send(ctx, b); err != nil {
				return err // the client stopped, or went away
			}
			left -= int64(len(b))
		}
		return nil
	})), nil
}

// Checksum returns the SHA-256 of the file, computed on the server.
func (f Files) Checksum(name string) string {
	h := sha256.New()
	io.CopyN(h, f.content(name), f.Size)
	return hex.EncodeToString(h.Sum(nil))
}

// Stat returns the size of the file.
func (f Files) Stat(name string) int64 { return f.Size }

func main() {
	size := flag.String("size", "256MiB", "size of the file (B, KiB, MiB, GiB)")
	dir := flag.String("dir", os.TempDir(), "where to write the download")
	flag.Parse()
	n, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "filestream:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *dir, n); err != nil {
		fmt.Fprintln(os.Stderr, "filestream:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func run(ctx context.Context, out io.Writer, dir string, size int64) error {
	server, err := netron.New(netron.Config{ID: "files-node", Host: "127.0.0.1", Server: true})
	if err != nil {
		return err
	}
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer server.Stop(context.Background())
	if err := server.Expose("files@1.0.0", Files{Size: size}); err != nil {
		return err
	}
	fmt.Fprintf(out, "server %s exposes files@1.0.0 at %s\n", server.ID(), server.URL())

	client, err := netron.New(netron.Config{ID: "download-node"})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer client.Stop(context.Background())
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		return err
	}
	files, err := p.Service(ctx, "files@^1")
	if err != nil {
		return err
	}
	const name = "big.bin"
	total, err := rpc.Call[int64](ctx, files, "stat", name)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "client %s downloads %s (%d bytes) in %d KiB chunks\n", client.ID(), name, total, ChunkSize>>10)

	f, err := os.CreateTemp(dir, "filestream-*.bin")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	h := sha256.New()
	n, err := download(ctx, files, name, io.MultiWriter(f, h))
	if err != nil {
		return fmt.Errorf("download after %d bytes: %w", n, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if n != total {
		return fmt.Errorf("downloaded %d bytes, the file has %d", n, total)
	}
	fmt.Fprintf(out, "wrote %d bytes to %s in %v (%.0f MB/s)\n", n, f.Name(), elapsed.Round(time.Millisecond), float64(n)/1e6/elapsed.Seconds())

	got := hex.EncodeToString(h.Sum(nil))
	want, err := rpc.Call[string](ctx, files, "checksum", name)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("sha256 %s, the server has %s", got, want)
	}
	fmt.Fprintf(out, "sha256 %s matches the server's\n", got)
	return nil
}

// download streams the file into w. The stream ends cleanly only when the
// server sent all of it: a failure of the server, a disconnect or an
// inactive server is an error here, never a short file.
func download(ctx context.Context, files *rpc.Service, name string, w io.Writer) (int64, error) {
	r, err := rpc.OpenStream[[]byte](ctx, files, "download", name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var n int64
	for {
		chunk, err := r.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if _, err := w.Write(chunk); err != nil {
			return n, err // Close cancels the server's producer
		}
		n += int64(len(chunk))
	}
}
