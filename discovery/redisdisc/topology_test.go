package redisdisc_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/discoverytest"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// TestClusterSuite runs the behaviour suite on a three-master Redis
// Cluster, every instance with a cluster client of its own.
func TestClusterSuite(t *testing.T) {
	cl := testredis.StartCluster(t, 3)
	discoverytest.Run(t, func(t *testing.T, cfg discoverytest.Config) discoverytest.Cluster {
		prefix := uniquePrefix(t)
		return discoverytest.Cluster{
			New: func(t *testing.T) discovery.Discovery {
				c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), MaxRetries: -1, ContextTimeoutEnabled: true})
				t.Cleanup(func() { _ = c.Close() })
				return newDisc(t, c, prefix, redisdisc.WithHeartbeat(cfg.Heartbeat), redisdisc.WithTTL(cfg.TTL))
			},
		}
	})
}

// TestClusterKeysShareASlot: the keys of one prefix hash to one slot,
// whatever the prefix, and prefixes on different masters work side by
// side through one client made by ConnectUniversal from a URL.
func TestClusterKeysShareASlot(t *testing.T) {
	cl := testredis.StartCluster(t, 3)
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = admin.Close() })
	url := "redis://" + cl.Addrs()[0] + "?cluster=true"
	o, err := redisdisc.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	masters := map[string]bool{}
	for i := 0; len(masters) < 3; i++ {
		if i == 50 {
			t.Fatalf("50 prefixes on %d masters only", len(masters))
		}
		prefix := fmt.Sprintf("%s:%d", uniquePrefix(t), i)
		d, err := redisdisc.ConnectUniversal(o, redisdisc.WithPrefix(prefix), redisdisc.WithHeartbeat(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		register(t, d, "n1", "svc", "1.0.0")
		waitListed(t, d, "n1")
		events, nodes, alive, meta := d.Keys()
		var slots []int64
		for _, k := range []string{events, nodes, alive, meta} {
			s, err := admin.ClusterKeySlot(ctxT(t), k).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots = append(slots, s)
		}
		if slots[0] != slots[1] || slots[1] != slots[2] || slots[2] != slots[3] {
			t.Fatalf("keys of %q in slots %v", prefix, slots)
		}
		master, err := admin.MasterForKey(ctxT(t), nodes)
		if err != nil {
			t.Fatal(err)
		}
		masters[master.Options().Addr] = true
	}
}

// TestSentinelFailover: three instances on a Sentinel-managed master with
// one replica; the master is killed. After the failover discovery carries
// on (a new node is seen everywhere, a killed one reported left), and no
// live node was reported left, although the failover outlasts the TTL.
func TestSentinelFailover(t *testing.T) {
	s := testredis.StartSentinel(t)
	prefix := uniquePrefix(t)
	var logs logBuffer
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	newInst := func() *redisdisc.Discovery {
		c := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            testredis.MasterName,
			SentinelAddrs:         s.SentinelAddrs(),
			MaxRetries:            -1,
			DialTimeout:           time.Second,
			ContextTimeoutEnabled: true,
		})
		t.Cleanup(func() { _ = c.Close() })
		return newDisc(t, c, prefix, append(noStall,
			redisdisc.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))...)
	}
	a, b, c := newInst(), newInst(), newInst()
	register(t, a, "n1")
	register(t, b, "n2")
	register(t, c, "n3")
	for _, d := range []*redisdisc.Discovery{a, b, c} {
		waitListed(t, d, "n1", "n2", "n3")
	}
	recs := []*recorder{record(t, a), record(t, b), record(t, c)}
	for i, r := range recs {
		go func() {
			for ev := range r.evs {
				fmt.Fprintf(&logs, "EVENT instance %d: %v %s\n", i, ev.Kind, ev.Node.ID)
			}
		}()
	}

	s.Master.Kill()
	killed := time.Now()
	eventually(t, time.Minute, "the failover", func() string {
		addr, err := s.MasterAddr()
		if err != nil {
			return err.Error()
		}
		if addr != s.Replica.Addr() {
			return "master still " + addr
		}
		return ""
	})
	eventually(t, time.Minute, "every instance back on the new master", func() string {
		for i, d := range []*redisdisc.Discovery{a, b, c} {
			if !d.Healthy() {
				return fmt.Sprintf("instance %d not healthy", i)
			}
		}
		return ""
	})
	t.Logf("from the kill to every instance healthy on the new master: %v (TTL %v)", time.Since(killed).Round(10*time.Millisecond), 2*time.Second)
	// Discovery carries on: a change made on one instance reaches the
	// others through the new master.
	register(t, a, "n4")
	for _, d := range []*redisdisc.Discovery{a, b, c} {
		waitListed(t, d, "n1", "n2", "n3", "n4")
	}
	// Nobody alive was reported left, now that every grace period is
	// over and every instance has applied every change...
	admin := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: testredis.MasterName, SentinelAddrs: s.SentinelAddrs()})
	t.Cleanup(func() { _ = admin.Close() })
	noneLeft(t, admin, []*redisdisc.Discovery{a, b, c}, recs...)
	// ...and a node that dies now is.
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, a, "n1", "n2", "n4")
	waitListed(t, b, "n1", "n2", "n4")
}
