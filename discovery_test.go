package netron_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/internal/testredis"
	"github.com/netron-go/netron/rpc"
)

type Greeter struct{ who string }

func (g Greeter) Hello(name string) string { return "hello " + name + " from " + g.who }

// discoveryScenario: a caller finds a service by name and range through
// discovery, without knowing an address, and the cluster events reach it.
func discoveryScenario(t *testing.T, cfg func(id string) netron.Config) {
	ctx := context.Background()
	a := startNode(t, cfg("node-a"))
	if err := a.Expose("greeter@1.2.0", Greeter{"a"}); err != nil {
		t.Fatal(err)
	}
	caller := startNode(t, cfg("caller"))
	joined, err := netron.Subscribe[netron.NodeEvent](caller)
	if err != nil {
		t.Fatal(err)
	}
	defer joined.Close()
	discovered, err := netron.Subscribe[netron.ServiceDiscovered](caller)
	if err != nil {
		t.Fatal(err)
	}
	defer discovered.Close()

	b := startNode(t, cfg("node-b"))
	if err := b.Expose("greeter@2.0.0", Greeter{"b"}); err != nil {
		t.Fatal(err)
	}
	// node-b's service is found by range, and a later Expose is announced.
	waitFor(t, "greeter@2 in discovery", func() bool {
		nodes, _ := caller.Discovery().Find(ctx, "greeter", "^2")
		return len(nodes) == 1
	})
	svc, err := caller.Service(ctx, "greeter@^2")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[string](ctx, svc, "hello", "x"); err != nil || got != "hello x from b" {
		t.Fatalf("greeter@^2: %q %v", got, err)
	}
	svc, err = caller.Service(ctx, "greeter@~1.2")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rpc.Call[string](ctx, svc, "hello", "y"); got != "hello y from a" {
		t.Fatalf("greeter@~1.2: %q", got)
	}
	// The connection to node-b is reused.
	if _, err := caller.Service(ctx, "greeter@2.0.0"); err != nil {
		t.Fatal(err)
	}
	if n := len(caller.Peers()); n != 2 {
		t.Fatalf("caller has %d peers, want 2 (one per node)", n)
	}
	if _, err := caller.Service(ctx, "greeter@^3"); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("greeter@^3: %v", err)
	}

	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	// node-b joined after the subscription (node-a's event may have gone
	// out while the caller started, before anyone listened).
	for !seen["node-b greeter@2.0.0"] {
		select {
		case ev := <-discovered.C():
			seen[ev.NodeID+" "+ev.QualifiedName] = true
		case <-timeout:
			t.Fatalf("service:discovered events: %v", seen)
		}
	}
	// Stop deregisters at once: node:left without waiting for the TTL.
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-joined.C():
			if ev.NodeID == "node-b" && !ev.Joined {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no node:left for node-b")
		}
	}
}

func TestDiscoveryInMemory(t *testing.T) {
	hub := discovery.NewHub()
	discoveryScenario(t, func(id string) netron.Config {
		mem := discovery.NewMemory(discovery.WithHub(hub), discovery.WithHeartbeat(100*time.Millisecond), discovery.WithTTL(1500*time.Millisecond)) // 15 beats: a loaded machine delays some
		t.Cleanup(func() { mem.Close() })
		return netron.Config{ID: id, Host: "127.0.0.1", Server: true, DiscoveryBackend: mem}
	})
}

func TestDiscoveryRedis(t *testing.T) {
	srv := testredis.Start(t)
	host, portStr, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(portStr)
	discoveryScenario(t, func(id string) netron.Config {
		return netron.Config{ID: id, Host: "127.0.0.1", Server: true, Discovery: netron.DiscoveryConfig{
			Enabled:  true,
			Redis:    netron.RedisConfig{Host: host, Port: port},
			Interval: 100 * time.Millisecond,
			TTL:      1500 * time.Millisecond,
			Prefix:   "test:" + t.Name(),
		}}
	})
}
