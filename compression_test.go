package netron_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// Record is a JSON-like record, as an API returns lists of them.
type Record struct {
	ID     int      `msgpack:"id"`
	Name   string   `msgpack:"name"`
	Email  string   `msgpack:"email"`
	Active bool     `msgpack:"active"`
	Score  float64  `msgpack:"score"`
	Tags   []string `msgpack:"tags"`
}

// Records serves the compression benchmark's payloads.
type Records struct{}

// List returns n records.
func (Records) List(n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{
			ID:     1000 + i,
			Name:   fmt.Sprintf("user-%d", i),
			Email:  fmt.Sprintf("user%d@example.com", i),
			Active: i%3 == 0,
			Score:  float64(i*37%1000) / 10,
			Tags:   []string{"alpha", "beta"},
		}
	}
	return out
}

// Put takes a chunk and returns its size.
func (Records) Put(b []byte) int { return len(b) }

// countingProxy forwards TCP connections to target and counts the bytes
// in each direction: the bytes on the wire of what passes through it.
type countingProxy struct {
	ln       net.Listener
	up, down atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(s, c, &p.up)
			go p.pipe(c, s, &p.down)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *countingProxy) pipe(dst, src net.Conn, n *atomic.Int64) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		n.Add(int64(k))
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *countingProxy) url() string { return "ws://" + p.ln.Addr().String() }

// compressionPair starts a server exposing Records and a client
// connected to it (through proxy, when set), with compression on each as
// given.
func compressionPair(t testing.TB, server, client bool, proxy bool) (*netron.Peer, *netron.Node, *rpc.Service, *countingProxy) {
	t.Helper()
	ctx := context.Background()
	scfg := nodeConfig("server", true)
	scfg.Compression.Enabled = server
	s := startNode(t, scfg)
	if err := s.Expose("records@1.0.0", Records{}); err != nil {
		t.Fatal(err)
	}
	c := startNode(t, netron.Config{ID: "client", Compression: netron.CompressionConfig{Enabled: client}})
	url := s.URL()
	var cp *countingProxy
	if proxy {
		cp = newCountingProxy(t, strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/"))
		url = cp.url()
	}
	p, err := c.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "records@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return p, s, svc, cp
}

// Config.Compression is negotiated per connection: a list of records is
// deflated on the wire only when both nodes enable it, and arrives the
// same either way.
func TestCompressionConfig(t *testing.T) {
	for _, tc := range []struct {
		server, client bool
	}{{true, true}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("server %v client %v", tc.server, tc.client), func(t *testing.T) {
			p, s, svc, proxy := compressionPair(t, tc.server, tc.client, true)
			want := tc.server && tc.client
			if p.Compressed() != want {
				t.Fatalf("client's Peer.Compressed = %v, want %v", p.Compressed(), want)
			}
			peers := s.Peers()
			if len(peers) != 1 || peers[0].Compressed() != want {
				t.Fatalf("server's peers %v, want one with Compressed %v", peers, want)
			}
			before := proxy.down.Load()
			got, err := rpc.Call[[]Record](context.Background(), svc, "list", 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 100 || got[99].Email != "user99@example.com" || got[42].Tags[1] != "beta" {
				t.Fatalf("got %d records, last %+v", len(got), got[len(got)-1])
			}
			down := proxy.down.Load() - before
			// 100 records are ~7 KiB of msgpack; deflated ~1.5 KiB.
			if want != (down < 3000) {
				t.Fatalf("%d B on the wire for 100 records, compressed %v", down, want)
			}
		})
	}
}

func TestCompressionThresholdValidated(t *testing.T) {
	cfg := netron.Config{Compression: netron.CompressionConfig{Enabled: true, Threshold: -1}}
	if err := cfg.Validate(); !errors.Is(err, netron.ErrInvalidConfig) || !strings.Contains(err.Error(), "compression.threshold") {
		t.Fatalf("Validate = %v", err)
	}
}

// BenchmarkCompression measures a call with compression off and on (both
// nodes): List(100) returns 100 JSON-like records (~7 KiB of msgpack),
// Put sends a 64 KiB chunk of random bytes. It reports the bytes on the
// wire per call, both directions with WebSocket framing (wire-B, counted
// by a proxy in a separate pass of 200 calls, so that the proxy's CPU is
// not in the other figures), and the CPU time per call of both nodes
// (cpu-µs).
func BenchmarkCompression(b *testing.B) {
	chunk := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	calls := map[string]func(context.Context, *rpc.Service) error{
		"records100": func(ctx context.Context, svc *rpc.Service) error {
			_, err := rpc.Call[[]Record](ctx, svc, "list", 100)
			return err
		},
		"bin64KiB": func(ctx context.Context, svc *rpc.Service) error {
			_, err := svc.Call(ctx, "put", chunk)
			return err
		},
	}
	for _, payload := range []string{"records100", "bin64KiB"} {
		call := calls[payload]
		for _, on := range []bool{false, true} {
			name := payload + "/off"
			if on {
				name = payload + "/on"
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				_, _, svc, proxy := compressionPair(b, on, on, true)
				const wireCalls = 200
				up, down := proxy.up.Load(), proxy.down.Load()
				for range wireCalls {
					if err := call(ctx, svc); err != nil {
						b.Fatal(err)
					}
				}
				wire := proxy.up.Load() - up + proxy.down.Load() - down
				_, _, svc, _ = compressionPair(b, on, on, false)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for b.Loop() {
					if err := call(ctx, svc); err != nil {
						b.Fatal(err)
					}
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs")
				b.ReportMetric(float64(wire)/wireCalls, "wire-B")
			})
		}
	}
}
