package netron_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/internal/testredis"
)

// redisDiscovery is the discovery configuration of the tests on the
// Redis at r, with a prefix of their own and short timing.
func redisDiscovery(t testing.TB, r netron.RedisConfig) netron.DiscoveryConfig {
	return netron.DiscoveryConfig{
		Enabled:  true,
		Redis:    r,
		Interval: 100 * time.Millisecond,
		TTL:      500 * time.Millisecond,
		Prefix:   "test:" + t.Name(),
	}
}

func hostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// TestDiscoveryRedisCluster: the discovery scenario on a three-master Redis
// Cluster named by a URL in the node's configuration.
func TestDiscoveryRedisCluster(t *testing.T) {
	cl := testredis.StartCluster(t, 3)
	url := "redis://" + cl.Addrs()[0] + "?addr=" + cl.Addrs()[1] + "&addr=" + cl.Addrs()[2]
	discoveryScenario(t, func(id string) netron.Config {
		return netron.Config{ID: id, Host: "127.0.0.1", Server: true,
			Discovery: redisDiscovery(t, netron.RedisConfig{URL: url})}
	})
}

// TestDiscoveryRedisSentinel: the discovery scenario through Sentinel,
// named by the sentinels' addresses and the master's name.
func TestDiscoveryRedisSentinel(t *testing.T) {
	s := testredis.StartSentinel(t)
	discoveryScenario(t, func(id string) netron.Config {
		return netron.Config{ID: id, Host: "127.0.0.1", Server: true,
			Discovery: redisDiscovery(t, netron.RedisConfig{
				Addrs: strings.Join(s.SentinelAddrs(), ","), MasterName: testredis.MasterName})}
	})
}

// A node watching the cluster sees every join and every leave of 600
// short-lived client nodes, however fast they come and go (with merged
// watches, a client that joined and left while the watcher was busy
// vanished: 599 of 600 in a real deployment, 595 of 600 here).
func TestWatcherSeesEveryShortLivedClient(t *testing.T) {
	srv := testredis.Start(t)
	host, port := hostPort(t, srv.Addr())
	dc := redisDiscovery(t, netron.RedisConfig{Host: host, Port: port})
	w := startNode(t, netron.Config{ID: "watcher", Host: "127.0.0.1", Server: true, Discovery: dc})
	sub, err := netron.Subscribe[netron.NodeEvent](w, bus.WithPolicy(bus.Block), bus.WithBuffer(64))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const clients = 600
	var mu sync.Mutex
	joined, left := map[string]int{}, map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.C() {
			mu.Lock()
			if ev.Joined {
				joined[ev.NodeID]++
			} else {
				left[ev.NodeID]++
			}
			n := len(left)
			mu.Unlock()
			if n == clients {
				return
			}
		}
	}()
	ctx := context.Background()
	for i := range clients {
		c, err := netron.New(netron.Config{ID: fmt.Sprintf("client-%03d", i), Discovery: dc})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range clients {
		id := fmt.Sprintf("client-%03d", i)
		if joined[id] != 1 || left[id] != 1 {
			t.Errorf("%s: %d node:joined, %d node:left; want 1 and 1", id, joined[id], left[id])
		}
	}
}

// logSink collects a node's logs.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// A node whose Redis is down starts, says so, serves, and is announced
// once Redis is up; stopped while Redis is down again, it stops without an
// error and logs the deregistration it could not make.
func TestNodeRunsWithoutRedis(t *testing.T) {
	srv := testredis.Start(t)
	srv.Stop()
	host, port := hostPort(t, srv.Addr())
	dc := redisDiscovery(t, netron.RedisConfig{Host: host, Port: port})
	var logs logSink
	n, err := netron.New(netron.Config{ID: "lonely", Host: "127.0.0.1", Server: true, Discovery: dc, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start with Redis down: %v", err)
	}
	if !strings.Contains(logs.String(), "discovery is unreachable; the node runs") {
		t.Fatalf("no warning that the node runs without discovery:\n%s", logs.String())
	}
	if err := n.Expose("greeter@1.0.0", Greeter{"lonely"}); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	observer := startNode(t, netron.Config{ID: "observer", Discovery: dc})
	waitFor(t, "the node announced once Redis is up", func() bool {
		ns, _ := observer.Discovery().Find(ctx, "greeter", "^1")
		return len(ns) == 1 && ns[0].ID == "lonely" && ns[0].Address == n.URL()
	})
	srv.Stop()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.Stop(sctx); err != nil {
		t.Fatalf("Stop with Redis down: %v", err)
	}
	if !strings.Contains(logs.String(), "could not deregister; the others see the node leave when its TTL has passed") {
		t.Fatalf("failed deregistration not logged:\n%s", logs.String())
	}
}

// A second node registering an id a live node holds at another address
// fails to start, and the error names the holder's address.
func TestDuplicateNodeIDRefused(t *testing.T) {
	srv := testredis.Start(t)
	host, port := hostPort(t, srv.Addr())
	dc := redisDiscovery(t, netron.RedisConfig{Host: host, Port: port})
	first := startNode(t, netron.Config{ID: "twin", Host: "127.0.0.1", Server: true, Discovery: dc})
	second, err := netron.New(netron.Config{ID: "twin", Host: "127.0.0.1", Server: true, Discovery: dc})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start(context.Background())
	if !errors.Is(err, discovery.ErrDuplicateID) || !strings.Contains(err.Error(), first.URL()) {
		t.Fatalf("second holder of the id: Start = %v, want ErrDuplicateID naming %s", err, first.URL())
	}
	_ = second.Close()
	// The first is untouched.
	ns, err := first.Discovery().Nodes(context.Background())
	if err != nil || len(ns) != 1 || ns[0].Address != first.URL() {
		t.Fatalf("after the refusal: %+v %v", ns, err)
	}
}
