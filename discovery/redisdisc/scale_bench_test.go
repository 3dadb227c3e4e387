package redisdisc_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// BenchmarkScale measures what one idle node costs Redis per heartbeat as
// the cluster grows, and how fast changes converge at that size: N
// instances in this process, one node and one go-redis client each, on one
// redis-server. Run it with -benchtime 1x (one op = one full measurement);
// see docs/bench-discovery.md. Sizes come from NETRON_BENCH_NODES
// (comma-separated; default 10,100,1000), timing from NETRON_BENCH_HEARTBEAT
// and NETRON_BENCH_TTL (default 1 s and 5 s). The instances join in batches
// of 50, each batch once the previous one is visible, as a rolling start
// would; one process runs them all, so the machine's CPU, not Redis, is
// the limit of the size it can run.
func BenchmarkScale(b *testing.B) {
	sizes := []int{10, 100, 1000}
	if s := getenv("NETRON_BENCH_NODES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				b.Fatalf("NETRON_BENCH_NODES: %q", s)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				scaleRun(b, n)
			}
		})
	}
}

// wire counts the bytes of every connection of the clients it dials for,
// and the commands they send.
type wire struct {
	on       atomic.Bool
	in, out  atomic.Int64 // bytes read from and written to Redis
	mu       sync.Mutex
	commands map[string]int64
}

type countedConn struct {
	net.Conn
	w *wire
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.w.on.Load() {
		c.w.in.Add(int64(n))
	}
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.w.on.Load() {
		c.w.out.Add(int64(n))
	}
	return n, err
}

func (w *wire) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countedConn{c, w}, nil
}

func (w *wire) DialHook(next redis.DialHook) redis.DialHook { return next }
func (w *wire) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		w.count(cmd)
		return next(ctx, cmd)
	}
}
func (w *wire) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			w.count(c)
		}
		return next(ctx, cmds)
	}
}

func (w *wire) count(cmd redis.Cmder) {
	if !w.on.Load() {
		return
	}
	w.mu.Lock()
	w.commands[cmd.Name()]++
	w.mu.Unlock()
}

func (w *wire) reset() {
	w.in.Store(0)
	w.out.Store(0)
	w.mu.Lock()
	w.commands = map[string]int64{}
	w.mu.Unlock()
}

func scaleTiming(b *testing.B) (hb, ttl time.Duration) {
	hb, ttl = time.Second, 5*time.Second
	if v := envDuration(b, "NETRON_BENCH_HEARTBEAT"); v > 0 {
		hb = v
	}
	if v := envDuration(b, "NETRON_BENCH_TTL"); v > 0 {
		ttl = v
	}
	return hb, ttl
}

func scaleRun(b *testing.B, n int) {
	b.StopTimer()
	srv := testredis.Start(b, testredis.WithArgs("--maxclients", "20000"))
	hb, ttl := scaleTiming(b)
	prefix := uniquePrefix(b)
	w := &wire{commands: map[string]int64{}}
	client := func() *redis.Client {
		c := redis.NewClient(&redis.Options{
			Addr:                  srv.Addr(),
			Dialer:                w.dial,
			MaxRetries:            -1,
			PoolSize:              4,
			ContextTimeoutEnabled: true,
		})
		c.AddHook(w)
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	opts := []redisdisc.Option{redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl)}
	info := func(id string) discovery.NodeInfo {
		return discovery.NodeInfo{ID: id, Address: "ws://10.0.0.1:9000/",
			Services: []discovery.ServiceInfo{{Name: "calculator", Version: "1.2.0"}, {Name: "data", Version: "1.0.0"}}}
	}
	ctx := context.Background()
	setup := time.Now()
	insts := make([]*redisdisc.Discovery, n)
	observer := newDisc(b, client(), prefix, opts...)
	insts[0] = observer
	waitCount := func(want int) {
		deadline := time.Now().Add(5 * time.Minute)
		for {
			ns, err := observer.Nodes(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(ns) == want {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("observer lists %d nodes, want %d", len(ns), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := range n {
		if i > 0 {
			insts[i] = newDisc(b, client(), prefix, opts...)
		}
		if err := insts[i].Register(ctx, info(fmt.Sprintf("node-%04d", i))); err != nil {
			b.Fatal(err)
		}
		if (i+1)%50 == 0 || i == n-1 {
			waitCount(i + 1)
		}
	}
	b.Logf("nodes=%d: set up in %v", n, time.Since(setup).Round(time.Millisecond))
	time.Sleep(2 * hb) // every instance past its first beats

	// Idle cost over a window of heartbeats.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	const window = 8
	w.reset()
	w.on.Store(true)
	start := time.Now()
	time.Sleep(window * hb)
	elapsed := time.Since(start)
	w.on.Store(false)
	beats := float64(elapsed) / float64(hb) * float64(n)
	w.mu.Lock()
	cmds := w.commands
	w.mu.Unlock()
	var total int64
	var names []string
	for name, v := range cmds {
		total += v
		names = append(names, fmt.Sprintf("%s=%d", name, v))
	}
	sort.Strings(names)
	b.ReportMetric(float64(total)/beats, "cmds/node/beat")
	b.ReportMetric(float64(cmds["evalsha"])/beats, "evalsha/node/beat")
	b.ReportMetric(float64(w.in.Load())/beats, "B-in/node/beat")
	b.ReportMetric(float64(w.out.Load())/beats, "B-out/node/beat")
	stats := commandStats(b, admin)
	var server int64
	for name, v := range stats {
		if name != "info" && name != "config|resetstat" {
			server += v
		}
	}
	b.ReportMetric(float64(server)/beats, "redis-calls/node/beat")
	usec := commandUsec(b, admin)
	b.Logf("nodes=%d redis µs per call: evalsha %.1f, xread %.1f; server calls: %v", n, usec["evalsha"], usec["xread"], stats)
	b.Logf("nodes=%d hb=%v ttl=%v window=%v client commands: %s", n, hb, ttl, elapsed.Round(time.Millisecond), strings.Join(names, " "))

	// Convergence at this size: a new node becomes visible to the
	// observer, and a killed one is reported left.
	events, err := observer.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		<-events // the initial snapshot
	}

	// The cost of a change: one node re-registers with new details a few
	// times; every instance reads each change from the stream.
	const changes = 20
	changer := insts[1]
	w.reset()
	w.on.Store(true)
	for i := range changes {
		node := info("node-0001")
		node.Services = append(node.Services, discovery.ServiceInfo{Name: "extra", Version: fmt.Sprintf("1.0.%d", i)})
		if err := changer.Register(ctx, node); err != nil {
			b.Fatal(err)
		}
		for ev := range events {
			if ev.Kind == discovery.NodeUpdated && ev.Node.ID == "node-0001" && len(ev.Node.Services) == 3 && ev.Node.Services[2].Version == node.Services[2].Version {
				break
			}
		}
	}
	time.Sleep(hb / 2) // the other instances' reads of the last change
	w.on.Store(false)
	w.mu.Lock()
	churn := w.commands
	w.mu.Unlock()
	b.ReportMetric(float64(churn["xread"])/changes/float64(n), "xread/node/change")
	b.ReportMetric(float64(w.in.Load())/changes/float64(n), "B-in/node/change")
	b.Logf("nodes=%d: %d changes cost %v client commands, %d B in, %d B out", n, changes, churn, w.in.Load(), w.out.Load())
	joiner := newDisc(b, client(), prefix, opts...)
	t0 := time.Now()
	if err := joiner.Register(ctx, info("joiner")); err != nil {
		b.Fatal(err)
	}
	waitEvent(b, events, discovery.NodeJoined, "joiner")
	join := time.Since(t0)
	victim := insts[n-1]
	t0 = time.Now()
	_ = victim.Kill()
	waitEvent(b, events, discovery.NodeLeft, fmt.Sprintf("node-%04d", n-1))
	left := time.Since(t0)
	var resyncs int64
	for _, d := range insts {
		resyncs += d.Resyncs()
	}
	b.ReportMetric(float64(resyncs), "resyncs")
	b.ReportMetric(float64(join.Microseconds())/1000, "ms-join-visible")
	b.ReportMetric(float64(left.Microseconds())/1000, "ms-kill-to-left")
	b.Logf("nodes=%d join visible in %v, killed node reported left in %v (TTL %v)", n, join, left, ttl)
}

// commandUsec parses INFO commandstats into µs per call per command.
func commandUsec(b *testing.B, c *redis.Client) map[string]float64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(strings.TrimSpace(line), "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
				out[name], _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	return out
}
