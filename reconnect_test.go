package netron_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
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

// Counter counts the calls it serves, so that a test can tell whether a
// request was run twice.
type Counter struct {
	adds, slows atomic.Int64
}

func (c *Counter) Add(a, b int) int { c.adds.Add(1); return a + b }

// Slow runs until its caller goes away.
func (c *Counter) Slow(ctx context.Context) error {
	c.slows.Add(1)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("not cancelled")
	}
}

func (c *Counter) Upto(n int) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		for i := range n {
			if !yield(i, nil) {
				return
			}
		}
	}
}

// fastReconnect is the reconnect configuration of these tests.
var fastReconnect = netron.ReconnectConfig{BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}

// startCounterServer starts a node that exposes a Counter at port (0: a
// free one), the way a restarted process would: same id, same services,
// new definition ids.
func startCounterServer(t *testing.T, port int) (*netron.Node, *Counter) {
	t.Helper()
	n, err := netron.New(netron.Config{ID: "server", Host: "127.0.0.1", Port: port, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &Counter{}
	if err := n.Expose("counter@1.0.0", c); err != nil { // before Start: no peer sees it without
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n, c
}

func portOf(t *testing.T, n *netron.Node) int {
	t.Helper()
	_, p, err := net.SplitHostPort(n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return port
}

// stopNow stops a node without letting anything in flight finish, as a
// crash would.
func stopNow(t *testing.T, n *netron.Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitReconnecting(t *testing.T, p *netron.Peer) {
	t.Helper()
	waitFor(t, "the peer to notice the outage", func() bool { return errors.Is(p.Err(), netron.ErrReconnecting) })
}

// emitUntilReceived emits name on server until ch gets it: the client
// renews its subscription a moment after it reconnects.
func emitUntilReceived(t *testing.T, server *netron.Node, ch <-chan netron.Event, name string, arg any) netron.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := server.Emit(context.Background(), name, arg); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-ch:
			return e
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event within 30 s", name)
		}
	}
}

// The server node restarts on the same port: the client's Peer, its
// service handle and its subscription, all made before, keep working; the
// call in flight when the server went away fails and is not run again;
// calls during the outage fail at once.
func TestReconnectAfterServerRestart(t *testing.T) {
	ctx := context.Background()
	server1, c1 := startCounterServer(t, 0)
	port := portOf(t, server1)
	client := startNode(t, netron.Config{ID: "client", RequestTimeout: 10 * time.Second, Reconnect: fastReconnect})
	var connects atomic.Int64
	defer on(t, client, netron.EventPeerConnect, func(netron.Event) { connects.Add(1) })()

	p, err := client.Connect(ctx, server1.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "counter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := rpc.Call[int](ctx, svc, "add", 1, 2); err != nil || sum != 3 {
		t.Fatalf("add: %d %v", sum, err)
	}
	fn, ch := chanHandler()
	if _, err := p.On(ctx, "news", fn); err != nil {
		t.Fatal(err)
	}
	if err := server1.Emit(ctx, "news", "before"); err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, ch); e.Args[0] != "before" || e.Peer != p {
		t.Fatalf("event %v from %p, want from %p", e.Args, e.Peer, p)
	}

	// A call in flight when the server goes away.
	inflight := make(chan error, 1)
	go func() {
		_, err := svc.Call(ctx, "slow")
		inflight <- err
	}()
	waitFor(t, "the slow call to run", func() bool { return c1.slows.Load() == 1 })
	stopNow(t, server1)
	select {
	case err := <-inflight:
		if !errors.Is(err, netron.ErrPeerDisconnected) {
			t.Fatalf("call in flight: %v, want ErrPeerDisconnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight did not fail when the server went away")
	}

	// The outage: everything fails at once, matchably (ErrReconnecting,
	// not the request timeout's error).
	waitReconnecting(t, p)
	_, err = svc.Call(ctx, "add", 1, 2)
	if !errors.Is(err, netron.ErrReconnecting) || !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("call during the outage: %v, want ErrReconnecting", err)
	}
	if _, err := p.Service(ctx, "counter@1.0.0"); !errors.Is(err, netron.ErrReconnecting) {
		t.Fatalf("lookup during the outage: %v", err)
	}
	if _, err := p.On(ctx, "other", fn); !errors.Is(err, netron.ErrReconnecting) {
		t.Fatalf("subscribe during the outage: %v", err)
	}
	if _, err := rpc.OpenStream[int](ctx, svc, "upto", 3); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("stream during the outage: %v", err)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the peer reconnects")
	default:
	}
	waitFor(t, "dial attempts", func() bool { return netron.ReconnectDials(p) >= 2 })

	// The server comes back: a new node on the same port.
	server2, c2 := startCounterServer(t, port)
	waitFor(t, "the reconnect", func() bool { return p.Err() == nil })
	if sum, err := rpc.Call[int](ctx, svc, "add", 2, 3); err != nil || sum != 5 {
		t.Fatalf("add after the reconnect: %d %v", sum, err)
	}
	if c2.adds.Load() != 1 || c1.adds.Load() != 1 {
		t.Fatalf("adds: old server %d, new server %d", c1.adds.Load(), c2.adds.Load())
	}
	var got []int
	for v, err := range rpc.Stream[int](ctx, svc, "upto", 3) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("stream after the reconnect: %v", got)
	}
	if e := emitUntilReceived(t, server2, ch, "news", "after"); e.Args[0] != "after" || e.Peer != p {
		t.Fatalf("event after the reconnect: %v from %p", e.Args, e.Peer)
	}
	// Nothing was replayed: the new server never ran the slow call.
	if n := c2.slows.Load(); n != 0 {
		t.Fatalf("the call in flight ran %d times on the new server", n)
	}
	// The handle is the same Peer, listed by the node; the catalogue is the
	// new server's.
	if ps := client.Peers(); len(ps) != 1 || ps[0] != p {
		t.Fatalf("peers %v, want the same handle %p", ps, p)
	}
	if def, ok := p.Services()["counter@1.0.0"]; !ok || def.ID == svc.Description().ID {
		t.Fatalf("catalogue after the reconnect: %v (old id %s)", p.Services(), svc.Description().ID)
	}
	waitFor(t, "two peer:connect events", func() bool { return connects.Load() == 2 })
}

// Services exposed by the restarted node keep reaching the live catalogue.
func TestReconnectCatalogStaysLive(t *testing.T) {
	ctx := context.Background()
	server1, _ := startCounterServer(t, 0)
	port := portOf(t, server1)
	client := startNode(t, netron.Config{ID: "client", Reconnect: fastReconnect})
	p, err := client.Connect(ctx, server1.URL())
	if err != nil {
		t.Fatal(err)
	}
	stopNow(t, server1)
	waitReconnecting(t, p)
	server2, _ := startCounterServer(t, port)
	waitFor(t, "the reconnect", func() bool { return p.Err() == nil })
	waitFor(t, "the catalogue subscription", func() bool { return netron.ForwardedNames(server2) == 2 })
	if err := server2.Expose("late@1.0.0", Late{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "late@1.0.0 in the catalogue", func() bool { _, ok := p.Services()["late@1.0.0"]; return ok })
}

// Close stops the reconnecting for good; so does MaxAttempts.
func TestReconnectCloseAndMaxAttempts(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"close", "maxAttempts"} {
		t.Run(how, func(t *testing.T) {
			server1, _ := startCounterServer(t, 0)
			port := portOf(t, server1)
			var logs syncBuffer
			cfg := netron.Config{ID: "client", Reconnect: fastReconnect, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if how == "maxAttempts" {
				cfg.Reconnect.MaxAttempts = 3
			}
			client := startNode(t, cfg)
			base := netron.HandlerCount(client)
			p, err := client.Connect(ctx, server1.URL())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.On(ctx, "news", func(netron.Event) {}); err != nil {
				t.Fatal(err)
			}
			stopNow(t, server1)
			waitFor(t, "dial attempts", func() bool { return netron.ReconnectDials(p) >= 2 })
			if how == "close" {
				_ = p.Close()
			}
			select {
			case <-p.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed")
			}
			if err := p.Err(); !errors.Is(err, netron.ErrPeerDisconnected) || errors.Is(err, netron.ErrReconnecting) {
				t.Fatalf("Err after the end: %v", err)
			}
			if how == "maxAttempts" && netron.ReconnectDials(p) != 3 {
				t.Fatalf("%d dials, want 3", netron.ReconnectDials(p))
			}
			waitFor(t, "the reconnect goroutine to end", func() bool { return netron.ReconnectLoops(client) == 0 })
			waitFor(t, "the subscription to end", func() bool { return netron.HandlerCount(client) == base })
			dials := netron.ReconnectDials(p)
			server2, _ := startCounterServer(t, port)
			time.Sleep(100 * time.Millisecond) // several backoff periods
			if d := netron.ReconnectDials(p); d != dials || len(server2.Peers()) != 0 || len(client.Peers()) != 0 {
				t.Fatalf("reconnected after the end: %d dials (then %d), server peers %d", d, dials, len(server2.Peers()))
			}
			if !strings.Contains(logs.String(), `msg="netron: reconnecting"`) || !strings.Contains(logs.String(), "attempt=2") {
				t.Fatalf("no reconnecting log line with the attempt:\n%s", logs.String())
			}
		})
	}
}

// Stop returns promptly while a peer waits out a long backoff, and leaves
// no goroutine behind (TestMain checks for leaks).
func TestReconnectStopDuringBackoff(t *testing.T) {
	ctx := context.Background()
	server, _ := startCounterServer(t, 0)
	client, err := netron.New(netron.Config{ID: "client", Reconnect: netron.ReconnectConfig{BaseDelay: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	stopNow(t, server)
	waitReconnecting(t, p)
	start := time.Now()
	if err := client.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Stop took %v during a one-minute backoff", d)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done open after Stop")
	}
	if netron.ReconnectLoops(client) != 0 {
		t.Fatal("reconnect goroutine left")
	}
}

// With Reconnect.Disabled a dialled peer behaves as before: it is gone
// with its connection.
func TestReconnectDisabled(t *testing.T) {
	ctx := context.Background()
	server, _ := startCounterServer(t, 0)
	client := startNode(t, netron.Config{ID: "client", Reconnect: netron.ReconnectConfig{Disabled: true}})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "counter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	stopNow(t, server)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	_, err = svc.Call(ctx, "add", 1, 2)
	if !errors.Is(err, netron.ErrPeerDisconnected) || errors.Is(err, netron.ErrReconnecting) {
		t.Fatalf("call after the disconnect: %v", err)
	}
	if netron.ReconnectLoops(client) != 0 {
		t.Fatal("a reconnect goroutine for a peer that does not reconnect")
	}
}

// Chaos: a server node with many subscribed clients restarts; every client
// comes back with its subscription and its service handle.
func TestChaosServerRestart(t *testing.T) {
	ctx := context.Background()
	const clients = 20
	server1, _ := startCounterServer(t, 0)
	port := portOf(t, server1)
	type cl struct {
		p   *netron.Peer
		svc *rpc.Service
		got atomic.Int64
	}
	cls := make([]*cl, clients)
	for i := range cls {
		n := startNode(t, netron.Config{ID: fmt.Sprintf("client-%d", i), Reconnect: fastReconnect})
		p, err := n.Connect(ctx, server1.URL())
		if err != nil {
			t.Fatal(err)
		}
		svc, err := p.Service(ctx, "counter")
		if err != nil {
			t.Fatal(err)
		}
		c := &cl{p: p, svc: svc}
		if _, err := p.On(ctx, "tick", func(netron.Event) { c.got.Add(1) }); err != nil {
			t.Fatal(err)
		}
		cls[i] = c
	}
	stopNow(t, server1)
	for _, c := range cls {
		waitReconnecting(t, c.p)
	}
	server2, c2 := startCounterServer(t, port)
	waitFor(t, "every client back with its subscription", func() bool {
		_ = server2.Emit(ctx, "tick")
		for _, c := range cls {
			if c.got.Load() == 0 {
				return false
			}
		}
		return true
	})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for _, c := range cls {
		wg.Go(func() {
			if _, err := rpc.Call[int](ctx, c.svc, "add", 1, 1); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := c2.adds.Load(); n != clients {
		t.Fatalf("%d adds on the new server, want %d", n, clients)
	}
}

// With discovery, a restarted node does not get a second connection: its
// node:joined (AutoConnect) or a lookup of its service nudges the
// reconnecting peer, which comes back at once instead of after its backoff.
func TestReconnectWithDiscovery(t *testing.T) {
	for _, mode := range []string{"autoConnect", "lookup"} {
		t.Run(mode, func(t *testing.T) { reconnectWithDiscovery(t, mode == "autoConnect") })
	}
}

func reconnectWithDiscovery(t *testing.T, autoConnect bool) {
	ctx := context.Background()
	cluster := memoryCluster(t)
	memory := func() discovery.Discovery { return cluster(1500 * time.Millisecond) }
	startServer := func(port int) *netron.Node {
		return startCounterNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Port: port, Server: true, DiscoveryBackend: memory()})
	}
	caller := startNode(t, netron.Config{ID: "caller", DiscoveryBackend: memory(),
		Discovery: netron.DiscoveryConfig{AutoConnect: autoConnect},
		Reconnect: netron.ReconnectConfig{BaseDelay: time.Minute}})
	server1 := startServer(0)
	port := portOf(t, server1)
	if autoConnect {
		// The peer is listed before Connect has set up its reconnect loop.
		waitFor(t, "auto-connect", func() bool { return len(caller.Peers()) == 1 && netron.ReconnectLoops(caller) == 1 })
	}
	svc, err := caller.Service(ctx, "counter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one peer", func() bool { return len(caller.Peers()) == 1 })
	p := caller.Peers()[0]
	if err := server1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitReconnecting(t, p)
	startServer(port)
	if autoConnect {
		waitFor(t, "the nudged reconnect", func() bool { return p.Err() == nil })
	} else {
		waitFor(t, "the restarted node in discovery", func() bool {
			nodes, _ := caller.Discovery().Find(ctx, "counter", "")
			return len(nodes) == 1
		})
		if _, err := caller.Service(ctx, "counter@1.0.0"); err != nil {
			t.Fatal(err)
		}
		if p.Err() != nil {
			t.Fatalf("the lookup returned before the peer reconnected: %v", p.Err())
		}
	}
	if sum, err := rpc.Call[int](ctx, svc, "add", 1, 2); err != nil || sum != 3 {
		t.Fatalf("add after the restart: %d %v", sum, err)
	}
	if ps := caller.Peers(); len(ps) != 1 || ps[0] != p {
		t.Fatalf("peers %v, want only %p", ps, p)
	}
}
