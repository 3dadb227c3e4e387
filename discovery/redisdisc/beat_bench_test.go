package redisdisc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// oldBeatScript is the heartbeat script before the O(1) design, kept here
// to measure the difference in one run: it refreshed the instance's nodes
// and returned every member's last heartbeat.
var oldBeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local missing = {}
for i = 1, #ARGV do
  local added = redis.call('ZADD', KEYS[1], now, ARGV[i])
  if added == 1 or redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then
    missing[#missing + 1] = ARGV[i]
  end
end
return {now, missing, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
`)

// BenchmarkBeatScript: one op = one heartbeat of an instance with one node,
// in a cluster of N registered nodes, through one client on one
// redis-server. It reports Redis's time per heartbeat (INFO commandstats)
// and the bytes of the request and the reply, for the heartbeat script
// and for the one it replaced ("old"), measured in the same run.
func BenchmarkBeatScript(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		for _, script := range []string{"new", "old"} {
			b.Run(fmt.Sprintf("nodes=%d/%s", n, script), func(b *testing.B) {
				benchBeat(b, n, script == "old")
			})
		}
	}
}

func benchBeat(b *testing.B, n int, old bool) {
	srv := testredis.Start(b)
	w := &wire{commands: map[string]int64{}}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Dialer: w.dial})
	b.Cleanup(func() { _ = c.Close() })
	prefix := uniquePrefix(b)
	// The instance has a client of its own: its stream reader, catching up
	// with the n joins, must not count as the heartbeat's traffic.
	d := newDisc(b, newClient(b, srv), prefix, redisdisc.WithHeartbeat(time.Hour), redisdisc.WithTTL(3*time.Hour))
	ctx := context.Background()
	// n nodes in the cluster, the way instances register them.
	for i := range n {
		if err := d.Register(ctx, discovery.NodeInfo{ID: fmt.Sprintf("node-%05d", i), Address: "ws://10.0.0.1:9000/",
			Services: []discovery.ServiceInfo{{Name: "calculator", Version: "1.2.0"}}}); err != nil {
			b.Fatal(err)
		}
	}
	_, nodes, alive, meta := d.Keys()
	events, _, _, _ := d.Keys()
	keys := []string{alive, nodes, events, meta}
	run := func() error {
		if old {
			return oldBeatScript.Run(ctx, c, keys[:2], "node-00000").Err()
		}
		// The arguments the instance that holds node-00000 sends: its
		// incarnation, ttl, pause, max length, max expiries, its node.
		return redisdisc.BeatScript.Run(ctx, c, keys, d.Incarnation(), int64(3*time.Hour/time.Millisecond), 5400000, 1000, 100, "node-00000").Err()
	}
	if err := run(); err != nil { // loads the script
		b.Fatal(err)
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	w.reset()
	w.on.Store(true)
	b.ResetTimer()
	for range b.N {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	w.on.Store(false)
	usec := commandUsec(b, c)
	b.ReportMetric(usec["evalsha"], "redis-µs/beat")
	b.ReportMetric(float64(w.in.Load())/float64(b.N), "B-reply/beat")
	b.ReportMetric(float64(w.out.Load())/float64(b.N), "B-request/beat")
	if !old && strings.Contains(fmt.Sprint(w.commands), "evalsha") && w.commands["evalsha"] != int64(b.N) {
		b.Fatalf("%d EVALSHA for %d beats", w.commands["evalsha"], b.N)
	}
}

// BenchmarkChangeScript: one op = one change (a node re-registers with
// new details) in a cluster of N nodes with no other instance reading; it
// reports Redis's time for the change's script.
func BenchmarkChangeScript(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			srv := testredis.Start(b)
			c := newClient(b, srv)
			d := newDisc(b, c, uniquePrefix(b), redisdisc.WithHeartbeat(time.Hour), redisdisc.WithTTL(3*time.Hour))
			ctx := context.Background()
			for i := range n {
				if err := d.Register(ctx, discovery.NodeInfo{ID: fmt.Sprintf("node-%05d", i), Address: "ws://10.0.0.1:9000/"}); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := d.Register(ctx, discovery.NodeInfo{ID: "node-00000", Address: "ws://10.0.0.1:9000/",
					Services: []discovery.ServiceInfo{{Name: "calculator", Version: fmt.Sprintf("1.0.%d", i)}}}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(commandUsec(b, c)["evalsha"], "redis-µs/change")
		})
	}
}
