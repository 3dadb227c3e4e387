package netron_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/rpc"
)

// autoConnectCluster is a discovery hub and a caller that auto-connects to
// every node of it, with a fast backoff.
func autoConnectCluster(t *testing.T) (memory func(ttl time.Duration) *discovery.Memory, caller *netron.Node) {
	memory = memoryCluster(t)
	caller = startNode(t, netron.Config{ID: "caller", DiscoveryBackend: memory(1500 * time.Millisecond),
		Discovery: netron.DiscoveryConfig{AutoConnect: true},
		Reconnect: netron.ReconnectConfig{BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}})
	return memory, caller
}

// memoryCluster returns a constructor of in-memory discovery instances
// that share one hub (heartbeat 100 ms), each closed with the test.
func memoryCluster(t *testing.T) func(ttl time.Duration) *discovery.Memory {
	hub := discovery.NewHub()
	return func(ttl time.Duration) *discovery.Memory {
		mem := discovery.NewMemory(discovery.WithHub(hub), discovery.WithHeartbeat(100*time.Millisecond), discovery.WithTTL(ttl))
		t.Cleanup(func() { mem.Close() })
		return mem
	}
}

// startCounterNode starts a node configured by cfg that exposes
// counter@1.0.0 from the start; it stops with the test.
func startCounterNode(t *testing.T, cfg netron.Config) *netron.Node {
	t.Helper()
	n, err := netron.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Expose("counter@1.0.0", &Counter{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func isDone(p *netron.Peer) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// An auto-connected peer of a node that left discovery stops reconnecting;
// a peer of the same node connected by URL does not.
func TestAutoConnectLeftNodeNotRedialled(t *testing.T) {
	ctx := context.Background()
	memory, caller := autoConnectCluster(t)
	srv, err := netron.New(netron.Config{Host: "127.0.0.1", Server: true, DiscoveryBackend: memory(1500 * time.Millisecond)}) // uuid id
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	// Peers lists the peer before Connect is done; its reconnect loop starts after.
	waitFor(t, "auto-connect", func() bool { return len(caller.Peers()) == 1 && netron.ReconnectLoops(caller) == 1 })
	auto := caller.Peers()[0]
	explicit, err := caller.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer explicit.Close()
	if explicit == auto {
		t.Fatal("Connect returned the auto-connected peer")
	}
	waitFor(t, "two reconnect loops", func() bool { return netron.ReconnectLoops(caller) == 2 })

	if err := srv.Stop(ctx); err != nil { // deregisters: node:left
		t.Fatal(err)
	}
	waitFor(t, "the auto-connected peer to give up", func() bool { return isDone(auto) })
	if err := auto.Err(); !errors.Is(err, netron.ErrPeerDisconnected) || errors.Is(err, netron.ErrReconnecting) {
		t.Fatalf("auto-connected peer ended with %v", err)
	}
	d0 := netron.ReconnectDials(explicit)
	waitFor(t, "the explicit peer to keep dialling", func() bool { return netron.ReconnectDials(explicit) >= d0+2 })
	if isDone(explicit) || !errors.Is(explicit.Err(), netron.ErrReconnecting) {
		t.Fatalf("the peer connected by URL stopped reconnecting: %v", explicit.Err())
	}
	waitFor(t, "one reconnect loop (the explicit peer)", func() bool { return netron.ReconnectLoops(caller) == 1 })
}

// A node with a fixed id that comes back at another address is
// auto-connected there, and the auto-connected peer of its old address is
// closed: after a crash (it re-registers within its TTL: NodeUpdated) and
// after a restart (NodeLeft, then NodeJoined).
func TestAutoConnectNodeMoved(t *testing.T) {
	for _, mode := range []string{"crash", "restart"} {
		t.Run(mode, func(t *testing.T) { autoConnectNodeMoved(t, mode == "crash") })
	}
}

func autoConnectNodeMoved(t *testing.T, crash bool) {
	ctx := context.Background()
	memory, caller := autoConnectCluster(t)
	nodeEvents, err := netron.Subscribe[netron.NodeEvent](caller)
	if err != nil {
		t.Fatal(err)
	}
	defer nodeEvents.Close()
	start := func(port int, mem discovery.Discovery) *netron.Node {
		return startCounterNode(t, netron.Config{ID: "mover", Host: "127.0.0.1", Port: port, Server: true, DiscoveryBackend: mem})
	}
	// A long TTL: the crashed node does not expire before it comes back.
	mem1 := memory(time.Minute)
	srv1 := start(0, mem1)
	// Peers lists the peer before Connect is done; its reconnect loop starts after.
	waitFor(t, "auto-connect", func() bool { return len(caller.Peers()) == 1 && netron.ReconnectLoops(caller) == 1 })
	old := caller.Peers()[0]
	explicit, err := caller.Connect(ctx, srv1.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer explicit.Close()

	// The new address, reserved while the old one is still taken.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(l.Addr().String())
	port, _ := strconv.Atoi(portStr)
	if crash {
		mem1.Kill() // stays registered
		_ = srv1.Close()
	} else if err := srv1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peers to notice", func() bool {
		return errors.Is(old.Err(), netron.ErrPeerDisconnected) && errors.Is(explicit.Err(), netron.ErrReconnecting)
	})
	l.Close()
	srv2 := start(port, memory(1500*time.Millisecond))

	waitFor(t, "the old auto-connected peer to end", func() bool { return isDone(old) })
	var p *netron.Peer
	waitFor(t, "auto-connect to the new address", func() bool {
		for _, q := range caller.Peers() {
			if q.ID() == "mover" && q.Err() == nil {
				p = q
				return true
			}
		}
		return false
	})
	svc, err := p.Service(ctx, "counter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := rpc.Call[int](ctx, svc, "add", 1, 2); err != nil || sum != 3 {
		t.Fatalf("add on the new address: %d %v", sum, err)
	}
	if n := len(srv2.Peers()); n != 1 {
		t.Fatalf("the moved node has %d peers, want 1", n)
	}
	// The peer connected by URL is the user's: it keeps dialling the old
	// address.
	if isDone(explicit) || !errors.Is(explicit.Err(), netron.ErrReconnecting) {
		t.Fatalf("the peer connected by URL stopped reconnecting: %v", explicit.Err())
	}
	waitFor(t, "two reconnect loops (the new peer, the explicit one)", func() bool { return netron.ReconnectLoops(caller) == 2 })
	left := false
	for len(nodeEvents.C()) > 0 {
		ev := <-nodeEvents.C()
		left = left || ev.NodeID == "mover" && !ev.Joined
	}
	if left == crash {
		t.Fatalf("node:left published: %v, want %v", left, !crash)
	}
}

// slowRegister holds a registration until its context ends and then lets
// it land anyway, as a command already sent to Redis does.
type slowRegister struct {
	discovery.Discovery
	hold    atomic.Bool
	entered chan struct{}
}

func (s *slowRegister) Register(ctx context.Context, node discovery.NodeInfo) error {
	if s.hold.Load() {
		close(s.entered)
		<-ctx.Done()
		return s.Discovery.Register(context.Background(), node)
	}
	return s.Discovery.Register(ctx, node)
}

// Stop deregisters after the registration in flight has ended, not before:
// otherwise a registration racing Stop lands last and the stopped node
// stays listed in a shared backend.
func TestStopDeregistersLast(t *testing.T) {
	hub := discovery.NewHub()
	mem := discovery.NewMemory(discovery.WithHub(hub))
	t.Cleanup(func() { mem.Close() })
	slow := &slowRegister{Discovery: mem, entered: make(chan struct{})}
	n, err := netron.New(netron.Config{ID: "leaver", Host: "127.0.0.1", Server: true, DiscoveryBackend: slow})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	slow.hold.Store(true)
	if err := n.Expose("counter@1.0.0", &Counter{}); err != nil { // re-registers
		t.Fatal(err)
	}
	<-slow.entered
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	view := discovery.NewMemory(discovery.WithHub(hub))
	t.Cleanup(func() { view.Close() })
	nodes, err := view.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		if nd.ID == "leaver" {
			t.Fatalf("the stopped node is still listed: %+v", nd)
		}
	}
}

// A node that shows up at a new address while the old connection still
// looks open (a half-open connection keep-alive has not caught yet) is
// connected at the new address: the auto-connected peer of the old address
// does not count as a connection to it.
func TestAutoConnectNodeMovedWhileOldConnectionOpen(t *testing.T) {
	ctx := context.Background()
	memory, caller := autoConnectCluster(t)
	start := func(mem discovery.Discovery) *netron.Node {
		n, err := netron.New(netron.Config{ID: "mover", Host: "127.0.0.1", Server: true, DiscoveryBackend: mem})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Stop(context.Background()) })
		return n
	}
	start(memory(time.Minute)) // stays up: its connection stays open
	waitFor(t, "auto-connect", func() bool { return len(caller.Peers()) == 1 && netron.ReconnectLoops(caller) == 1 })
	srv2 := start(memory(time.Minute)) // registers "mover" at another address
	waitFor(t, "auto-connect to the new address", func() bool { return len(srv2.Peers()) == 1 })
}

// Concurrent lookups of a service on a node not connected yet make one
// connection to it, not one each.
func TestConcurrentLookupsDialOnce(t *testing.T) {
	ctx := context.Background()
	memory := memoryCluster(t)
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, DiscoveryBackend: memory(time.Minute)})
	if err := server.Expose("counter@1.0.0", &Counter{}); err != nil {
		t.Fatal(err)
	}
	caller := startNode(t, netron.Config{ID: "caller", DiscoveryBackend: memory(time.Minute)})
	waitFor(t, "the server in discovery", func() bool {
		nodes, _ := caller.Discovery().Find(ctx, "counter", "")
		return len(nodes) == 1
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := caller.Service(ctx, "counter@1.0.0"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(caller.Peers()); n != 1 {
		t.Fatalf("the caller has %d peers of one node, want 1", n)
	}
	waitFor(t, "the server to count its connections", func() bool { return len(server.Peers()) >= 1 })
	if n := len(server.Peers()); n != 1 {
		t.Fatalf("the server has %d connections from one caller, want 1", n)
	}
}

// A peer a lookup dialled (Node.Service through discovery, no AutoConnect)
// of a node that left for good stops reconnecting too, instead of dialling
// its dead address for ever.
func TestLookupPeerOfLeftNodeNotRedialled(t *testing.T) {
	ctx := context.Background()
	memory := memoryCluster(t)
	srv := startCounterNode(t, netron.Config{Host: "127.0.0.1", Server: true, DiscoveryBackend: memory(1500 * time.Millisecond)}) // uuid id
	caller := startNode(t, netron.Config{ID: "caller", DiscoveryBackend: memory(1500 * time.Millisecond),
		Reconnect: netron.ReconnectConfig{BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}})
	waitFor(t, "the server in discovery", func() bool {
		nodes, _ := caller.Discovery().Find(ctx, "counter", "")
		return len(nodes) == 1
	})
	if _, err := caller.Service(ctx, "counter@1.0.0"); err != nil {
		t.Fatal(err)
	}
	p := caller.Peers()[0]
	if err := srv.Stop(ctx); err != nil { // deregisters: node:left
		t.Fatal(err)
	}
	waitFor(t, "the lookup's peer to give up", func() bool { return isDone(p) })
	if err := p.Err(); !errors.Is(err, netron.ErrPeerDisconnected) || errors.Is(err, netron.ErrReconnecting) {
		t.Fatalf("the lookup's peer ended with %v", err)
	}
	waitFor(t, "no reconnect loop", func() bool { return netron.ReconnectLoops(caller) == 0 })
}

// A node whose first auto-connect fails (here: its first upgrade is
// answered 503) is dialled again with the reconnect backoff, although
// discovery reports nothing new about it.
func TestAutoConnectRetriesAFailedDial(t *testing.T) {
	ctx := context.Background()
	memory, caller := autoConnectCluster(t)
	late := startNode(t, netron.Config{ID: "late"}) // serves through the handler below
	var upgrades atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if upgrades.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		late.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
	if err := memory(time.Minute).Register(ctx, discovery.NodeInfo{ID: "late", Address: url}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an auto-connect retried after its first dial failed", func() bool {
		for _, p := range caller.Peers() {
			if p.ID() == "late" && p.Err() == nil {
				return true
			}
		}
		return false
	})
	if n := upgrades.Load(); n < 2 {
		t.Fatalf("%d upgrades, want the refused one and a later one", n)
	}
}
