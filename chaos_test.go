package netron_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// 1,000 peers connected to one node, each calling it, all answered
// correctly. Figures go to docs/reliability.md.
func TestThousandPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const peers = 1000
	server := startNode(t, netron.Config{ID: "hub", Host: "127.0.0.1", Server: true, MaxPeers: peers + 10})
	if err := server.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	ctx := context.Background()
	// One client node holds the 1,000 connections: from the server's side
	// they are 1,000 peers, each with its reader, writer and keep-alive.
	// Calls may wait long for a loaded machine: they must be answered, not
	// fast (the request timeout is an upper bound, not the point).
	client := startNode(t, netron.Config{ID: "many", MaxPeers: peers + 10, RequestTimeout: 10 * time.Minute})
	svcs := make([]*rpc.Service, peers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var failed atomic.Int64
	for i := range peers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			p, err := client.Connect(ctx, server.URL())
			if err != nil {
				failed.Add(1)
				t.Error(err)
				return
			}
			svcs[i], err = p.Service(ctx, "everything")
			if err != nil {
				failed.Add(1)
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d connects failed", failed.Load())
	}
	if n := len(server.Peers()); n != peers {
		t.Fatalf("server has %d peers", n)
	}
	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	start := time.Now()
	const rounds = 5
	for i, svc := range svcs {
		wg.Go(func() {
			for r := range rounds {
				got, err := rpc.Call[int](ctx, svc, "sum", i, r)
				if err != nil || got != i+r {
					failed.Add(1)
					t.Errorf("peer %d: sum = %d, %v", i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d peers: heap %.1f MiB for both sides (%.1f KiB per connection pair), %d goroutines, %d calls in %v (%.0f calls/s), %d errors",
		peers, float64(ms1.HeapInuse-ms0.HeapInuse)/(1<<20), float64(ms1.HeapInuse-ms0.HeapInuse)/1024/peers,
		runtime.NumGoroutine(), peers*rounds, elapsed.Round(time.Millisecond), float64(peers*rounds)/elapsed.Seconds(), failed.Load())
}

// One peer floods malformed frames, reconnecting each time it is thrown
// out, while a well-behaved peer keeps calling: every good call succeeds.
func TestMalformedFloodIsolated(t *testing.T) {
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	good := startNode(t, netron.Config{ID: "good"})
	p, err := good.Connect(context.Background(), server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(context.Background(), "everything")
	if err != nil {
		t.Fatal(err)
	}
	// The flood and the calls go on until the flooder was thrown out 20
	// times and 200 good calls were made (not for a fixed time: a loaded
	// machine does less in one).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var floods, kicked atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		garbage := [][]byte{{0xde, 0xad}, {0, 0, 0, 1, 0x43, 0xc1}, {0, 0, 0, 1, 0x4f, 0xc0}, {0, 0, 0, 1, 0x43, 0x92, 0xa3}}
		for i := 0; ctx.Err() == nil; i++ {
			ws, _, err := websocket.Dial(ctx, server.URL()+"?id=flooder", nil)
			if err != nil {
				continue
			}
			ws.Read(ctx) // the id handshake
			for ctx.Err() == nil {
				floods.Add(1)
				if ws.Write(ctx, websocket.MessageBinary, garbage[i%len(garbage)]) != nil {
					break
				}
				if _, _, err := ws.Read(ctx); err != nil {
					kicked.Add(1)
					break
				}
			}
			ws.CloseNow()
		}
	}()
	var calls int
	deadline := time.Now().Add(30 * time.Second)
	for calls < 200 || kicked.Load() < 20 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("flood not exercised in 30 s: %d kicks, %d calls", kicked.Load(), calls)
		}
		got, err := rpc.Call[int](context.Background(), svc, "sum", calls, 1)
		if err != nil || got != calls+1 {
			cancel()
			<-done
			t.Fatalf("good call %d during the flood: %d, %v", calls, got, err)
		}
		calls++
	}
	cancel()
	<-done
	t.Logf("%d good calls served while a peer sent %d malformed frames and was disconnected %d times", calls, floods.Load(), kicked.Load())
}
