package main

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// benchService is the service Netron exposes: the same work as the gRPC,
// NATS and WebSocket handlers.
type benchService struct{}

// Add is the round-trip workload: two integers in, their sum out.
func (benchService) Add(a, b int64) int64 { return a + b }

// Download streams 64 KiB chunks until ms milliseconds have passed: the
// server → client stream. The buffer is reused (Send encodes it before it
// returns).
func (benchService) Download(chunk int, ms int64) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		buf := make([]byte, chunk)
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		for time.Now().Before(end) {
			if !yield(buf, nil) {
				return
			}
		}
	}
}

// Upload counts the bytes of a client → server stream.
func (benchService) Upload(r *stream.Reader[[]byte]) (int64, error) {
	var n int64
	for b, err := range r.All() {
		if err != nil {
			return n, err
		}
		n += int64(len(b))
	}
	return n, nil
}

// netronBench is a server node exposing benchService and a client node
// connected to it over loopback WebSocket.
type netronBench struct {
	server, client *netron.Node
	peer           *netron.Peer
	svc            *rpc.Service
}

func startNetron(ctx context.Context) (*netronBench, error) {
	// The per-peer event queue (default 256) is raised above the window of
	// the one-way figures, so that events are delivered, not dropped.
	server, err := netron.New(netron.Config{ID: "bench-server", Host: "127.0.0.1", Server: true, EventQueueSize: 2 * windowSize})
	if err != nil {
		return nil, err
	}
	if err := server.Start(ctx); err != nil {
		return nil, err
	}
	nb := &netronBench{server: server}
	if err := server.Expose("bench@1.0.0", benchService{}); err != nil {
		nb.close()
		return nil, err
	}
	nb.client, err = netron.New(netron.Config{ID: "bench-client"})
	if err == nil {
		err = nb.client.Start(ctx)
	}
	if err != nil {
		nb.close()
		return nil, err
	}
	if nb.peer, err = nb.client.Connect(ctx, server.URL()); err != nil {
		nb.close()
		return nil, err
	}
	if nb.svc, err = nb.peer.Service(ctx, "bench@1.0.0"); err != nil {
		nb.close()
		return nil, err
	}
	return nb, nil
}

func (nb *netronBench) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if nb.client != nil {
		nb.client.Stop(ctx)
	}
	nb.server.Stop(ctx)
}

// add is the typed call a user writes: rpc.Call[int64].
func (nb *netronBench) add(ctx context.Context, a, b int64) (int64, error) {
	return rpc.Call[int64](ctx, nb.svc, "add", a, b)
}

func (nb *netronBench) download(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	var n int64
	for b, err := range rpc.Stream[[]byte](ctx, nb.svc, "download", chunkSize, d.Milliseconds()) {
		if err != nil {
			return n, 0, err
		}
		n += int64(len(b))
	}
	return n, time.Since(start), nil
}

func (nb *netronBench) upload(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	buf := make([]byte, chunkSize)
	var sent int64
	src := stream.FromSeq(func(yield func([]byte, error) bool) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			if !yield(buf, nil) {
				return
			}
			sent += int64(len(buf))
		}
	})
	start := time.Now()
	n, err := rpc.Call[int64](ctx, nb.svc, "upload", src)
	if err != nil {
		return 0, 0, err
	}
	if n != sent {
		return 0, 0, fmt.Errorf("upload: server counted %d bytes of %d", n, sent)
	}
	return n, time.Since(start), nil
}

// events measures server.Emit → the client's Peer.On handler: the
// events of a node its peer subscribed to, 16-byte payloads.
func (nb *netronBench) events(ctx context.Context, d time.Duration) (rateResult, error) {
	w := newWindow(windowSize)
	var bad atomic.Int64
	sub, err := nb.peer.On(ctx, "bench.tick", func(e netron.Event) {
		var b []byte
		if err := e.Decode(0, &b); err != nil || len(b) < 8 {
			bad.Add(1)
			w.got(-1)
			return
		}
		w.got(int64(le.Uint64(b)))
	}, bus.WithPolicy(bus.Block))
	if err != nil {
		return rateResult{}, err
	}
	defer sub.Unsubscribe(ctx)
	payload := make([]byte, 16)
	r, err := measureOneWay(d, w, func(seq int64) error {
		// Emit keeps args as they are for local handlers and encodes them
		// once for peers: a fresh payload per event, as a user would send.
		p := make([]byte, len(payload))
		le.PutUint64(p, uint64(seq))
		return nb.server.Emit(ctx, "bench.tick", p)
	})
	if err == nil && bad.Load() != 0 {
		err = fmt.Errorf("%d events with a bad payload", bad.Load())
	}
	return r, err
}
