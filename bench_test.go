package netron_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netron-go/netron/rpc"
)

// BenchmarkRPCSequential measures one caller's round trips over loopback
// WebSocket: add(a, b) on calculator@1.0.0, both nodes in this process.
// It reports round trips/s, the p50/p99 latency, and the CPU time per
// round trip of both nodes together (cpu-µs; compare it with
// bench/cmd/handoff's rows, the same round trip on raw WebSocket).
func BenchmarkRPCSequential(b *testing.B) {
	svc := benchPair(b)
	sequentialRoundTrips(b, func(ctx context.Context, i int) error {
		_, err := svc.Call(ctx, "add", i, 1)
		return err
	})
}

// sequentialRoundTrips runs call for each round of b, one after the
// other, and reports the CPU per round trip (both nodes), the rate and the
// p50 and p99 latencies. It returns how many round trips it made.
func sequentialRoundTrips(b *testing.B, call func(ctx context.Context, i int) error) int {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := call(ctx, i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(lat)), "cpu-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "rt/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	return len(lat)
}

// BenchmarkRPCConcurrent16 measures 16 callers sharing one connection.
func BenchmarkRPCConcurrent16(b *testing.B) {
	svc := benchPair(b)
	ctx := context.Background()
	const callers = 16
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N/callers + 1
	for range callers {
		wg.Go(func() {
			for i := range per {
				if _, err := svc.Call(ctx, "add", i, 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*callers)/time.Since(start).Seconds(), "rt/s")
}

// BenchmarkRPCLocal measures a call to a service of the node itself.
func BenchmarkRPCLocal(b *testing.B) {
	n := startNode(b, nodeConfig("solo", false))
	if err := n.Expose("calculator@1.0.0", benchCalc{}); err != nil {
		b.Fatal(err)
	}
	svc, err := n.Service(context.Background(), "calculator")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := rpc.Call[int](ctx, svc, "add", i, 1); err != nil {
			b.Fatal(err)
		}
	}
}

type benchCalc struct{}

func (benchCalc) Add(a, b int) int { return a + b }

func benchPair(b *testing.B) *rpc.Service {
	b.Helper()
	server := startNode(b, benchConfig("server", true))
	if err := server.Expose("calculator@1.0.0", benchCalc{}); err != nil {
		b.Fatal(err)
	}
	client := startNode(b, benchConfig("client", false))
	p, err := client.Connect(context.Background(), server.URL())
	if err != nil {
		b.Fatal(err)
	}
	svc, err := p.Service(context.Background(), "calculator@1.0.0")
	if err != nil {
		b.Fatal(err)
	}
	return svc
}
