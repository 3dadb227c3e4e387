package netron_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
)

// The events benchmarks emit b.N events of one 64-byte argument and report
// the events delivered per second: from Emit to the handler's return, every
// event delivered (the handler's queue uses bus.Block, so nothing is
// dropped). Run them with
//
//	go test -run='^$' -bench=Events -benchmem .

// BenchmarkEventsInProcess: Emit → the node's bus → one On handler.
func BenchmarkEventsInProcess(b *testing.B) {
	ctx := context.Background()
	n := startNode(b, netron.Config{ID: "bench"})
	payload := make([]byte, 64)
	var got atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	defer on(b, n, "bench", func(netron.Event) {
		if got.Add(1) == want {
			close(done)
		}
	}, bus.WithPolicy(bus.Block))()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := n.Emit(ctx, "bench", payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkEventsPeerToPeer: Emit on one node → loopback WebSocket → a
// Peer.Subscribe handler on the other node. "ext" is the one-way event
// packet two Go nodes agree on; "task" is Netron's TASK emit request,
// answered by the subscriber, as a Titan peer would get it. The emitter
// keeps at most 512 events in flight, below the forwarder's queue (set to 1024), so that
// the measure is of sustained delivery, not of dropping.
func BenchmarkEventsPeerToPeer(b *testing.B) {
	for _, mode := range []string{"ext", "task"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			server := startNode(b, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, EventQueueSize: 1024})
			client := startNode(b, netron.Config{ID: "client"})
			p, err := client.Connect(ctx, server.URL())
			if err != nil {
				b.Fatal(err)
			}
			if mode == "task" {
				for _, sp := range server.Peers() {
					netron.ConnOf(sp).SetExtensions(&transport.Extensions{})
				}
			}
			payload := make([]byte, 64)
			credit := make(chan struct{}, 512)
			var got atomic.Int64
			done := make(chan struct{})
			want := int64(b.N)
			unsub, err := p.On(ctx, "bench", func(netron.Event) {
				<-credit
				if got.Add(1) == want {
					close(done)
				}
			}, bus.WithPolicy(bus.Block))
			if err != nil {
				b.Fatal(err)
			}
			defer unsub.Unsubscribe(ctx)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				credit <- struct{}{}
				if err := server.Emit(ctx, "bench", payload); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if d := netron.ForwarderDropped(server); d != 0 {
				b.Fatalf("%d events dropped", d)
			}
		})
	}
}
