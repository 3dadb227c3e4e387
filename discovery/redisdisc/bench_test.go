package redisdisc_test

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// Measurements for docs/bench-discovery.md. Each benchmark starts its own
// redis-server. Timing for the convergence benchmarks comes from
// -benchtime=Nx iterations; see the doc for the commands.

func benchTiming(b *testing.B) (hb, ttl time.Duration) {
	hb, ttl = 100*time.Millisecond, 400*time.Millisecond
	if v := envDuration(b, "NETRON_BENCH_HEARTBEAT"); v > 0 {
		hb = v
	}
	if v := envDuration(b, "NETRON_BENCH_TTL"); v > 0 {
		ttl = v
	}
	return hb, ttl
}

func envDuration(b *testing.B, name string) time.Duration {
	s := getenv(name)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// BenchmarkConvergenceJoin: one op = a node registers on one instance and
// another, already running instance reports it joined (Watch event).
func BenchmarkConvergenceJoin(b *testing.B) {
	srv := testredis.Start(b)
	hb, ttl := benchTiming(b)
	prefix := uniquePrefix(b)
	watcher := newDisc(b, newClient(b, srv), prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
	reg := newDisc(b, newClient(b, srv), prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := watcher.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("n%d", i)
		start := time.Now()
		if err := reg.Register(ctx, discovery.NodeInfo{ID: id, Address: "h:1"}); err != nil {
			b.Fatal(err)
		}
		for ev := range events {
			if ev.Kind == discovery.NodeJoined && ev.Node.ID == id {
				break
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/visible")
}

// BenchmarkConvergenceLateJoiner: one op = a new instance starts on a
// cluster of 20 nodes and returns from its first Nodes call knowing all of
// them.
func BenchmarkConvergenceLateJoiner(b *testing.B) {
	srv := testredis.Start(b)
	hb, ttl := benchTiming(b)
	prefix := uniquePrefix(b)
	client := newClient(b, srv)
	members := newDisc(b, client, prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
	for i := range 20 {
		if err := members.Register(context.Background(), discovery.NodeInfo{ID: fmt.Sprintf("m%02d", i), Address: "h:1",
			Services: []discovery.ServiceInfo{{Name: "svc", Version: "1.0.0"}}}); err != nil {
			b.Fatal(err)
		}
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		d, err := redisdisc.New(client, redisdisc.WithPrefix(prefix), redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
		if err != nil {
			b.Fatal(err)
		}
		ns, err := d.Nodes(context.Background())
		total += time.Since(start)
		if err != nil || len(ns) != 20 {
			b.Fatalf("late joiner: %d nodes, %v", len(ns), err)
		}
		b.StopTimer()
		_ = d.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/snapshot")
}

// BenchmarkConvergenceKill: one op = an instance with a registered node is
// killed (no deregistration) and another instance reports the node left.
// Expect about TTL - (time since the last heartbeat).
func BenchmarkConvergenceKill(b *testing.B) {
	srv := testredis.Start(b)
	hb, ttl := benchTiming(b)
	prefix := uniquePrefix(b)
	watcher := newDisc(b, newClient(b, srv), prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := watcher.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	client := newClient(b, srv)
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("victim%d", i)
		victim, err := redisdisc.New(client, redisdisc.WithPrefix(prefix), redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
		if err != nil {
			b.Fatal(err)
		}
		if err := victim.Register(ctx, discovery.NodeInfo{ID: id, Address: "h:1"}); err != nil {
			b.Fatal(err)
		}
		waitEvent(b, events, discovery.NodeJoined, id)
		time.Sleep(time.Duration(i%5) * hb / 5) // kill at different points of the heartbeat cycle
		b.StartTimer()
		start := time.Now()
		_ = victim.Kill()
		waitEvent(b, events, discovery.NodeLeft, id)
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/left")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms/left-worst")
	b.ReportMetric(float64(ttl.Milliseconds()), "ms/ttl")
}

// BenchmarkConvergenceDeregister: one op = a node deregisters and another
// instance reports it left.
func BenchmarkConvergenceDeregister(b *testing.B) {
	srv := testredis.Start(b)
	hb, ttl := benchTiming(b)
	prefix := uniquePrefix(b)
	watcher := newDisc(b, newClient(b, srv), prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
	reg := newDisc(b, newClient(b, srv), prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := watcher.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("n%d", i)
		if err := reg.Register(ctx, discovery.NodeInfo{ID: id, Address: "h:1"}); err != nil {
			b.Fatal(err)
		}
		waitEvent(b, events, discovery.NodeJoined, id)
		b.StartTimer()
		start := time.Now()
		if err := reg.Deregister(ctx, id); err != nil {
			b.Fatal(err)
		}
		waitEvent(b, events, discovery.NodeLeft, id)
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/left")
}

func waitEvent(b *testing.B, events <-chan discovery.Event, kind discovery.EventKind, id string) {
	b.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind && ev.Node.ID == id {
				return
			}
		case <-timeout:
			b.Fatalf("no %v for %s within a minute", kind, id)
		}
	}
}

// commandStats parses INFO commandstats into calls per command.
func commandStats(b *testing.B, c *redis.Client) map[string]int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] = n
			}
		}
	}
	return out
}
