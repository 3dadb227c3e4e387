package netron_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func recvEvent(t testing.TB, ch <-chan netron.Event) netron.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return netron.Event{}
}

// noEvent checks that nothing arrives on ch for a short while.
func noEvent(t testing.TB, ch <-chan netron.Event) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %s %v", e.Name, e.Args)
	case <-time.After(50 * time.Millisecond):
	}
}

// chanHandler returns a handler that forwards events to a channel.
func chanHandler() (func(netron.Event), chan netron.Event) {
	ch := make(chan netron.Event, 4096)
	return func(e netron.Event) { ch <- e }, ch
}

type Late struct{}

func (Late) Ping() string { return "pong" }

// connectPair starts a server node and a client node connected to it.
func connectPair(t *testing.T, scfg, ccfg netron.Config) (server, client *netron.Node, p *netron.Peer) {
	t.Helper()
	scfg.Host, scfg.Server = "127.0.0.1", true
	server = startNode(t, scfg)
	client = startNode(t, ccfg)
	p, err := client.Connect(context.Background(), server.URL())
	if err != nil {
		t.Fatal(err)
	}
	return server, client, p
}

// serverPeer returns the server's Peer for the connection from id.
func serverPeer(t *testing.T, server *netron.Node, id string) *netron.Peer {
	t.Helper()
	var found *netron.Peer
	waitFor(t, "peer "+id, func() bool {
		for _, p := range server.Peers() {
			if p.ID() == id {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

func TestEventsOnEmit(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, netron.Config{ID: "solo"})

	fn, exact := chanHandler()
	unsub := on(t, n, "news", fn)
	fn2, prefix := chanHandler()
	defer on(t, n, "news:*", fn2)()
	fn3, all := chanHandler()
	defer on(t, n, "*", fn3)()
	sub, err := n.Events("news")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	if err := n.Emit(ctx, "news", "first", 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Emit(ctx, "news:sport", map[string]any{"score": 3}); err != nil {
		t.Fatal(err)
	}
	e := recvEvent(t, exact)
	if e.Name != "news" || e.Source != "solo" || e.Peer != nil || !slices.Equal(e.Args, []any{"first", 1}) {
		t.Fatalf("On(news) got %+v", e)
	}
	if e := recvEvent(t, sub.C()); e.Name != "news" {
		t.Fatalf("Events(news) got %+v", e)
	}
	if e := recvEvent(t, prefix); e.Name != "news:sport" {
		t.Fatalf("On(news:*) got %+v", e)
	}
	if a, b := recvEvent(t, all), recvEvent(t, all); a.Name != "news" || b.Name != "news:sport" {
		t.Fatalf("On(*) got %s, %s", a.Name, b.Name)
	}
	noEvent(t, exact) // news:sport is not news
	noEvent(t, prefix)

	// Unsubscribe stops delivery.
	unsub()
	unsub() // idempotent
	if err := n.Emit(ctx, "news", "second"); err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, all); e.Args[0] != "second" {
		t.Fatalf("On(*) got %+v", e)
	}
	noEvent(t, exact)
	if e := recvEvent(t, sub.C()); e.Args[0] != "second" {
		t.Fatalf("Events(news) got %+v", e)
	}
	sub.Close()
	_ = n.Emit(ctx, "news", "third")
	recvEvent(t, all)
	for e := range sub.C() {
		t.Fatalf("closed Events still got %+v", e)
	}

	// Event.Decode gives typed views.
	var s string
	var i int
	if err := e.Decode(0, &s); err != nil || s != "first" {
		t.Fatalf("Decode string: %q %v", s, err)
	}
	if err := e.Decode(1, &i); err != nil || i != 1 {
		t.Fatalf("Decode int: %d %v", i, err)
	}
	if err := e.Decode(2, &i); !errors.Is(err, netron.ErrInvalidEvent) {
		t.Fatalf("Decode past the end: %v", err)
	}
}

// Subscriptions come and go while events are emitted: a subscription that
// stays for the whole run gets every event, in order, and (under -race)
// the router's lists are never written where a dispatch reads.
func TestEventsSubscribeWhileEmitting(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, netron.Config{ID: "churn"})
	const events = 2000
	var got atomic.Int64
	var bad atomic.Bool
	stable := on(t, n, "tick", func(e netron.Event) {
		if i, _ := e.Args[0].(int); int64(i) != got.Load() {
			bad.Store(true)
		}
		got.Add(1)
	}, bus.WithPolicy(bus.Block))
	defer stable()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var held []func()
			for i := 0; ; i++ {
				select {
				case <-stop:
					for _, u := range held {
						u()
					}
					return
				default:
				}
				name := []string{"tick", "tick*", "t*", "other"}[(g+i)%4]
				held = append(held, on(t, n, name, func(netron.Event) {}))
				if len(held) > 8 {
					held[0]()
					held = held[1:]
				}
			}
		})
	}
	for i := range events {
		if err := n.Emit(ctx, "tick", i); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < events && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got.Load() != events || bad.Load() {
		t.Fatalf("stable subscription got %d of %d events (out of order: %v)", got.Load(), events, bad.Load())
	}
}

func TestEventsEmitErrors(t *testing.T) {
	ctx := context.Background()
	n, err := netron.New(netron.Config{ID: "e"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "news*", strings.Repeat("x", 2000)} {
		if err := n.Emit(ctx, name); !errors.Is(err, netron.ErrInvalidEvent) {
			t.Errorf("Emit(%.10q): %v, want ErrInvalidEvent", name, err)
		}
	}
	if _, err := n.Events(""); !errors.Is(err, netron.ErrInvalidEvent) {
		t.Errorf("Events(\"\"): %v", err)
	}
	if _, err := netron.Subscribe[int](n); !errors.Is(err, netron.ErrUnknownEventType) {
		t.Errorf("Subscribe[int]: %v", err)
	}
	if _, err := n.On("x", nil); !errors.Is(err, netron.ErrInvalidEvent) {
		t.Errorf("On with a nil handler: %v", err)
	}
	if _, err := n.On("", func(netron.Event) {}); !errors.Is(err, netron.ErrInvalidEvent) {
		t.Errorf("On with an empty name: %v", err)
	}
	// Subscriptions that live when the node stops end with ErrStopped.
	running, err := n.On("news", func(netron.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := n.Events("news")
	if err != nil {
		t.Fatal(err)
	}
	typed, err := netron.Subscribe[netron.PeerEvent](n)
	if err != nil {
		t.Fatal(err)
	}
	if running.C() != nil || ch.C() == nil || running.Err() != nil {
		t.Errorf("C: handler %v, channel %v; Err %v", running.C(), ch.C(), running.Err())
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []<-chan struct{}{running.Done(), ch.Done(), typed.Done()} {
		<-d
	}
	for i, err := range []error{running.Err(), ch.Err(), typed.Err()} {
		if !errors.Is(err, netron.ErrStopped) {
			t.Errorf("subscription %d after Stop: Err %v, want ErrStopped", i, err)
		}
	}
	for range ch.C() { // closed
	}
	if err := running.Close(); err != nil || !errors.Is(running.Err(), netron.ErrStopped) {
		t.Errorf("Close after Stop: %v, Err %v", err, running.Err())
	}
	if err := n.Emit(ctx, "news"); !errors.Is(err, netron.ErrStopped) {
		t.Errorf("Emit after Stop: %v", err)
	}
	if _, err := n.On("news", func(netron.Event) {}); !errors.Is(err, netron.ErrStopped) {
		t.Errorf("On after Stop: %v", err)
	}
	if _, err := n.Events("news"); !errors.Is(err, netron.ErrStopped) {
		t.Errorf("Events after Stop: %v", err)
	}
}

func TestEventsLifecycle(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	seedFn, seed := chanHandler()
	defer on(t, server, netron.EventPeerConnected, seedFn)()
	origFn, orig := chanHandler()
	defer on(t, server, netron.EventPeerConnect, origFn)()
	discFn, disc := chanHandler()
	defer on(t, server, netron.EventPeerDisconnected, discFn)()
	peers, err := netron.Subscribe[netron.PeerEvent](server)
	if err != nil {
		t.Fatal(err)
	}
	defer peers.Close()
	services, err := netron.Subscribe[netron.ServiceEvent](server)
	if err != nil {
		t.Fatal(err)
	}
	defer services.Close()
	svcFn, svc := chanHandler()
	defer on(t, server, "service:*", svcFn)()

	client := startNode(t, nodeConfig("client", false))
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan netron.Event{seed, orig} {
		e := recvEvent(t, ch)
		var pe netron.PeerEvent
		if err := e.Decode(0, &pe); err != nil || pe.PeerID != "client" || !pe.Connected || pe.Peer == nil {
			t.Fatalf("connect event %+v: %+v %v", e, pe, err)
		}
	}
	select {
	case pe := <-peers.C():
		if pe.PeerID != "client" || !pe.Connected {
			t.Fatalf("typed %+v", pe)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no typed PeerEvent")
	}

	if err := server.Expose("late@1.0.0", Late{}); err != nil {
		t.Fatal(err)
	}
	if err := server.Unexpose("late@1.0.0"); err != nil {
		t.Fatal(err)
	}
	se := <-services.C()
	if !se.Exposed || se.QualifiedName != "late@1.0.0" || se.Definition == nil || se.PeerID != "server" {
		t.Fatalf("expose %+v", se)
	}
	if se2 := <-services.C(); se2.Exposed || se2.DefID != se.Definition.ID {
		t.Fatalf("unexpose %+v", se2)
	}
	if e1, e2 := recvEvent(t, svc), recvEvent(t, svc); e1.Name != netron.EventServiceExpose || e2.Name != netron.EventServiceUnexpose {
		t.Fatalf("service:* got %s, %s", e1.Name, e2.Name)
	}

	p.Close()
	e := recvEvent(t, disc)
	var pe netron.PeerEvent
	if err := e.Decode(0, &pe); err != nil || pe.PeerID != "client" || pe.Connected || !errors.Is(pe.Err, netron.ErrPeerDisconnected) {
		t.Fatalf("disconnect %+v: %+v %v", e, pe, err)
	}
	if e.Name != netron.EventPeerDisconnected {
		t.Fatalf("delivered as %q", e.Name)
	}
}

func TestEventsNodeAndDiscovery(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, netron.Config{ID: "n"})
	fn, ch := chanHandler()
	defer on(t, n, "node:*", fn)()
	fn2, found := chanHandler()
	defer on(t, n, netron.EventServiceDiscovered, fn2)()
	nodes, _ := netron.Subscribe[netron.NodeEvent](n)
	defer nodes.Close()
	disc, _ := netron.Subscribe[netron.ServiceDiscovered](n)
	defer disc.Close()

	if err := netron.PublishNodeEvent(ctx, n, netron.NodeEvent{NodeID: "other", Joined: true}); err != nil {
		t.Fatal(err)
	}
	_ = netron.PublishNodeEvent(ctx, n, netron.NodeEvent{NodeID: "other"})
	_ = netron.PublishServiceDiscovered(ctx, n, netron.ServiceDiscovered{NodeID: "other", QualifiedName: "calc@1.0.0"})
	if a, b := recvEvent(t, ch), recvEvent(t, ch); a.Name != netron.EventNodeJoined || b.Name != netron.EventNodeLeft {
		t.Fatalf("node events %s %s", a.Name, b.Name)
	}
	if e := recvEvent(t, found); e.Args[0].(netron.ServiceDiscovered).QualifiedName != "calc@1.0.0" {
		t.Fatalf("discovered %+v", e)
	}
	if ne := <-nodes.C(); ne.NodeID != "other" || !ne.Joined {
		t.Fatalf("typed %+v", ne)
	}
	if sd := <-disc.C(); sd.NodeID != "other" {
		t.Fatalf("typed %+v", sd)
	}
}

// syncBuffer is a log sink for the race detector.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEventsHandlerPanicContained(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	n := startNode(t, netron.Config{ID: "p", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	fn, ch := chanHandler()
	defer on(t, n, "x", func(e netron.Event) {
		if e.Args[0] == "boom" {
			panic("handler exploded")
		}
		fn(e)
	})()
	_ = n.Emit(ctx, "x", "boom")
	_ = n.Emit(ctx, "x", "fine")
	if e := recvEvent(t, ch); e.Args[0] != "fine" {
		t.Fatalf("after the panic: %+v", e)
	}
	if s := logs.String(); !strings.Contains(s, "event handler panicked") || !strings.Contains(s, "handler exploded") {
		t.Fatalf("log: %s", s)
	}
}

// Many goroutines emit at once; every subscriber sees each goroutine's
// events in the order it emitted them.
func TestEventsOrderingLocal(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, netron.Config{ID: "o"})
	const sources, per = 8, 2000
	var mu sync.Mutex
	last := make(map[int]int)
	count := 0
	var bad atomic.Value
	defer on(t, n, "seq", func(e netron.Event) {
		src, seq := e.Args[0].(int), e.Args[1].(int)
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := last[src]; ok && seq != prev+1 {
			bad.Store(fmt.Sprintf("source %d: %d after %d", src, seq, prev))
		}
		last[src] = seq
		count++
	}, bus.WithPolicy(bus.Block))()
	ch, err := n.Events("seq", bus.WithPolicy(bus.Block), bus.WithBuffer(sources*per))
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()

	var wg sync.WaitGroup
	for s := range sources {
		wg.Go(func() {
			for i := range per {
				if err := n.Emit(ctx, "seq", s, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return count == sources*per })
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
	lastCh := make(map[int]int)
	for range sources * per {
		e := <-ch.C()
		src, seq := e.Args[0].(int), e.Args[1].(int)
		if prev, ok := lastCh[src]; ok && seq != prev+1 {
			t.Fatalf("channel: source %d: %d after %d", src, seq, prev)
		}
		lastCh[src] = seq
	}
}

// A handler that cannot keep up: the emitter never waits, the queue stays
// at its size, and the oldest events are the ones dropped.
func TestEventsSlowHandlerDropsOldest(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, netron.Config{ID: "slow"})
	const buffer, total = 16, 1000
	release := make(chan struct{})
	started := make(chan struct{})
	var mu sync.Mutex
	var got []int
	defer on(t, n, "tick", func(e netron.Event) {
		seq := e.Args[0].(int)
		if seq == 0 {
			close(started)
			<-release
		}
		mu.Lock()
		got = append(got, seq)
		mu.Unlock()
	}, bus.WithBuffer(buffer))()
	ch, err := n.Events("tick", bus.WithBuffer(buffer))
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()

	_ = n.Emit(ctx, "tick", 0)
	<-started
	for i := 1; i < total; i++ {
		if err := n.Emit(ctx, "tick", i); err != nil { // never waits for the blocked handler
			t.Fatal(err)
		}
	}
	close(release)
	waitFor(t, "the last event", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 && got[len(got)-1] == total-1 })
	want := []int{0}
	for i := total - buffer; i < total; i++ {
		want = append(want, i)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v (DropOldest keeps the newest %d)", got, want, buffer)
	}
	if d := ch.Dropped(); d != total-buffer {
		t.Fatalf("channel dropped %d, want %d", d, total-buffer)
	}
	if len(ch.C()) != buffer {
		t.Fatalf("channel holds %d, want %d", len(ch.C()), buffer)
	}
}

// Go peers: subscribe to a remote node's events (names and patterns); the
// events travel as one-way EXT packets.
func TestEventsRemoteGo(t *testing.T) {
	ctx := context.Background()
	server, client, p := connectPair(t, netron.Config{ID: "server"}, netron.Config{ID: "client"})
	if !p.IsGo() || !netron.ConnOf(p).Extensions().Has(rpccore.ExtensionEvents) {
		t.Fatalf("extensions %+v", netron.ConnOf(p).Extensions())
	}
	if sp := serverPeer(t, server, "client"); !sp.IsGo() || !netron.ConnOf(sp).Extensions().Has(rpccore.ExtensionEvents) {
		t.Fatalf("server side: extensions %+v", netron.ConnOf(sp).Extensions())
	}
	// Watch what reaches the client.
	var ext, emitTasks atomic.Int64
	var firstExt atomic.Value
	u1, _ := bus.NewTopic[transport.Inbound](client.Bus(), transport.TopicStreams).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
		if in.Packet.Type() == wire.TypeExt {
			if ext.Add(1) == 1 {
				firstExt.Store(append([]byte{in.Packet.Flags}, in.Packet.Data...))
			}
		}
	})
	defer u1()
	u2, _ := bus.NewTopic[transport.Inbound](client.Bus(), transport.TopicRequests).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
		if in.Packet.Type() == wire.TypeTask && bytes.Contains(in.Packet.Data, []byte("emit")) {
			emitTasks.Add(1)
		}
	})
	defer u2()

	fn, news := chanHandler()
	unsub, err := p.On(ctx, "news", fn)
	if err != nil {
		t.Fatal(err)
	}
	fn2, all := chanHandler()
	unsubAll, err := p.On(ctx, "news*", fn2)
	if err != nil {
		t.Fatal(err)
	}
	// One forwarder for the client: the live catalogue's two names and ours.
	if c, n := netron.ForwarderCount(server), netron.ForwardedNames(server); c != 1 || n != 4 {
		t.Fatalf("forwarders %d, names %d", c, n)
	}
	if err := server.Emit(ctx, "news", "hello", 42, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	_ = server.Emit(ctx, "news:tech", map[string]any{"a": 1.5})
	e := recvEvent(t, news)
	if e.Name != "news" || e.Source != "server" || e.Peer != p {
		t.Fatalf("got %+v", e)
	}
	if e.Args[0] != "hello" || e.Args[1] != int64(42) || !bytes.Equal(e.Args[2].([]byte), []byte{1, 2}) {
		t.Fatalf("args %#v", e.Args)
	}
	if a, b := recvEvent(t, all), recvEvent(t, all); a.Name != "news" || b.Name != "news:tech" || b.Args[0].(map[string]any)["a"] != 1.5 {
		t.Fatalf("pattern got %+v, %+v", a, b)
	}
	// The counters run after the delivery, in the same reader goroutine.
	waitFor(t, "2 EXT packets", func() bool { return ext.Load() >= 2 })
	if ext.Load() != 2 || emitTasks.Load() != 0 {
		t.Fatalf("%d EXT packets, %d emit tasks; want 2 and 0 (one packet per event, not per subscription)", ext.Load(), emitTasks.Load())
	}
	// The EXT event packet: flags 0x48, data ["event", name, ...args].
	want := append([]byte{0x48, 0x95, 0xa5}, "event"...)
	want = append(append(want, 0xa4), "news"...)
	want = append(append(want, 0xa5), "hello"...)
	want = append(want, 42, 0xc4, 2, 1, 2)
	if got := firstExt.Load().([]byte); !bytes.Equal(got, want) {
		t.Fatalf("EXT packet\n got % x\nwant % x", got, want)
	}

	// Unsubscribing the name keeps the pattern; unsubscribing both removes
	// the forwarder on the server.
	if err := unsub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	_ = server.Emit(ctx, "news", "again")
	if e := recvEvent(t, all); e.Args[0] != "again" {
		t.Fatalf("got %+v", e)
	}
	noEvent(t, news)
	if err := unsubAll.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if n := netron.ForwardedNames(server); n != 2 {
		t.Fatalf("names forwarded after unsubscribe: %d, want the catalogue's 2", n)
	}
	_ = server.Emit(ctx, "news", "unheard")
	noEvent(t, all)
	if netron.HandlerCount(client) != 0 {
		t.Fatalf("client handlers %d", netron.HandlerCount(client))
	}
}

// Events of many goroutines of one node reach a remote subscriber in each
// goroutine's order, over the EXT packet and over Netron's emit tasks.
func TestEventsOrderingRemote(t *testing.T) {
	for _, mode := range []string{"ext", "task"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			server, _, p := connectPair(t, netron.Config{ID: "server", EventQueueSize: 1024}, netron.Config{ID: "client"})
			if mode == "task" {
				// Make the server treat the client as a plain Netron peer.
				netron.ConnOf(serverPeer(t, server, "client")).SetExtensions(&transport.Extensions{})
			}
			const sources, per = 4, 250 // fits the forwarder's queue of 1024: nothing is dropped
			var mu sync.Mutex
			last := make(map[int64]int64)
			count := 0
			var bad atomic.Value
			unsub, err := p.On(ctx, "seq", func(e netron.Event) {
				src, seq := e.Args[0].(int64), e.Args[1].(int64)
				mu.Lock()
				defer mu.Unlock()
				if prev, ok := last[src]; ok && seq != prev+1 {
					bad.Store(fmt.Sprintf("source %d: %d after %d", src, seq, prev))
				}
				last[src] = seq
				count++
			}, bus.WithPolicy(bus.Block))
			if err != nil {
				t.Fatal(err)
			}
			defer unsub.Unsubscribe(ctx)
			var wg sync.WaitGroup
			for s := range sources {
				wg.Go(func() {
					for i := range per {
						_ = server.Emit(ctx, "seq", s, i)
					}
				})
			}
			wg.Wait()
			waitFor(t, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return count == sources*per })
			if b := bad.Load(); b != nil {
				t.Fatal(b)
			}
			if d := netron.ForwarderDropped(server); d != 0 {
				t.Fatalf("dropped %d", d)
			}
		})
	}
}

// A subscriber goes away: its forwarder and every goroutine that served
// it are gone, and the emitter carries on.
func TestEventsNoLeakAfterSubscriberDisconnects(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	keep := goleak.IgnoreCurrent()

	client, err := netron.New(netron.Config{ID: "client"})
	if err != nil {
		t.Fatal(err)
	}
	_ = client.Start(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	fn, ch := chanHandler()
	if _, err := p.On(ctx, "news", fn); err != nil {
		t.Fatal(err)
	}
	if _, err := p.On(ctx, "peer:*", fn); err != nil {
		t.Fatal(err)
	}
	// The same over Netron's emit tasks, from a second client.
	client2, _ := netron.New(netron.Config{ID: "client2"})
	_ = client2.Start(ctx)
	p2, err := client2.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	netron.ConnOf(serverPeer(t, server, "client2")).SetExtensions(&transport.Extensions{})
	if _, err := p2.On(ctx, "news", fn); err != nil {
		t.Fatal(err)
	}
	_ = server.Emit(ctx, "news", 1)
	recvEvent(t, ch)
	recvEvent(t, ch)
	if c := netron.ForwarderCount(server); c != 2 {
		t.Fatalf("forwarders %d", c)
	}
	if err := client.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "forwarders removed", func() bool { return netron.ForwarderCount(server) == 0 && netron.ForwardedNames(server) == 0 })
	// The server's idle request workers are the node's (bounded, they exit
	// after a while or at Stop), not the subscriber's.
	if err := goleak.Find(keep, goleak.IgnoreTopFunction("github.com/netron-go/netron/internal/rpccore.(*Server).worker")); err != nil {
		t.Fatal(err)
	}
	// Later events go nowhere, without errors.
	if err := server.Emit(ctx, "news", 2); err != nil {
		t.Fatal(err)
	}
	c3 := startNode(t, nodeConfig("client3", false))
	if _, err := c3.Connect(ctx, server.URL()); err != nil { // peer:connect has no forwarder left
		t.Fatal(err)
	}
}

// The emitter's side of a subscription ends when the emitter goes away.
func TestEventsSubscriptionsEndWithConnection(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	ccfg := nodeConfig("client", false)
	ccfg.Reconnect.Disabled = true // reconnect_test.go: subscriptions that survive
	client := startNode(t, ccfg)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	base := netron.HandlerCount(client)
	unsub, err := p.On(ctx, "news", func(netron.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if netron.HandlerCount(client) != base+1 {
		t.Fatalf("handlers %d", netron.HandlerCount(client))
	}
	_ = server.Stop(ctx)
	<-p.Done()
	<-unsub.Done()
	if err := unsub.Err(); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("Err after disconnect: %v, want ErrPeerDisconnected", err)
	}
	waitFor(t, "handler closed", func() bool { return netron.HandlerCount(client) == base })
	if err := unsub.Unsubscribe(ctx); err != nil {
		t.Fatalf("unsubscribe after disconnect: %v", err)
	}
	if _, err := p.On(ctx, "news", func(netron.Event) {}); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("subscribe after disconnect: %v", err)
	}
}

// A raw Netron subscriber that stops reading while the node emits fast:
// Emit never waits, the forwarder holds at most its queue plus the emit
// window, drops the oldest events, and delivers the newest once the
// subscriber reads again.
func TestEventsSlowRemoteSubscriber(t *testing.T) {
	ctx := context.Background()
	const queue, total = 64, 20000
	// The emits in flight wait for answers far longer than the test runs:
	// one that timed out would let another in.
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, EventQueueSize: queue,
		RequestTimeout: 10 * time.Minute})
	raw := dialRaw(t, server.URL(), "slow", false)
	raw.send(unhex(t, "00000001 44 92 a9 737562736372696265 a4 6e657773")) // subscribe news
	if r := raw.recv(); r.Flags != 0x04 || !bytes.Equal(r.Data, []byte{0xd4, 0, 0}) {
		t.Fatalf("subscribe answer %x %x", r.Flags, r.Data)
	}
	payload := bytes.Repeat([]byte{'x'}, 64)
	for i := range total {
		if err := server.Emit(ctx, "news", i, payload); err != nil {
			t.Fatal(err)
		}
	}
	// The subscriber answers nothing yet: at most emitWindow (64) emits are
	// in flight, plus one being sent, plus the queue.
	waitFor(t, "drops", func() bool { return netron.ForwarderDropped(server) >= total-queue-66 })

	// Read again, answering every emit, until the last event arrives.
	var seqs []int64
	for len(seqs) == 0 || seqs[len(seqs)-1] != total-1 {
		r := raw.recv()
		if r.Flags != 0x44 {
			t.Fatalf("flags %x", r.Flags)
		}
		var v []any
		if err := wire.Unmarshal(r.Data, &v); err != nil || len(v) != 4 || v[0] != "emit" || v[1] != "news" {
			t.Fatalf("emit %v %v", v, err)
		}
		seqs = append(seqs, v[2].(int64))
		raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), 0xd4, 0, 0))
	}
	if len(seqs) > queue+66 || !slices.IsSorted(seqs) {
		t.Fatalf("received %d events: %v", len(seqs), seqs)
	}
	// The tail is the newest events, contiguous: the oldest were dropped.
	tail := seqs[len(seqs)-queue:]
	for i, s := range tail {
		if s != int64(total-queue+i) {
			t.Fatalf("tail %v is not the newest %d events", tail, queue)
		}
	}
	if d := netron.ForwarderDropped(server); d != uint64(total-len(seqs)) {
		t.Fatalf("dropped %d, received %d of %d", d, len(seqs), total)
	}
	raw.ws.CloseNow()
	waitFor(t, "forwarder removed", func() bool { return netron.ForwarderCount(server) == 0 })
}

// A raw Netron-protocol client subscribes with the subscribe task and gets
// the emit requests of capture 2 (phase 2), byte for byte, and Titan's
// lifecycle payloads.
func TestEventsRawNetronSubscriber(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true, MaxSubscriptionsPerPeer: 6})
	raw := dialRaw(t, server.URL(), "ts-client", true)
	id := uint32(16)
	task := func(args ...string) wire.Packet {
		t.Helper()
		b := wire.AppendArrayHeader(wire.AppendHeader(nil, id, 0x44), len(args))
		for _, a := range args {
			b = wire.AppendString(b, a)
		}
		raw.send(b)
		r := raw.recv()
		if r.ID != id {
			t.Fatalf("answer to %d has id %d", id, r.ID)
		}
		id++
		return r
	}
	undefined := []byte{0xd4, 0, 0}
	// c2 #43/#44, byte for byte.
	raw.send(unhex(t, "00000010 44 92 a9 737562736372696265 a4 6e657773"))
	if r := raw.recv(); !bytes.Equal(r.Append(nil), unhex(t, "00000010 04 d40000")) {
		t.Fatalf("subscribe answer % x", r.Append(nil))
	}
	id++

	// c2 #45/#46: the emit requests; the first answered as Titan does, the
	// second as netron-browser does (flags 03, nil).
	_ = server.Emit(ctx, "news", map[string]any{"headline": "first", "n": 1})
	_ = server.Emit(ctx, "news", "second", 2, []any{true, nil})
	r1, r2 := raw.recv(), raw.recv()
	if r1.Flags != 0x44 || !bytes.Equal(r1.Data, unhex(t, "93 a4656d6974 a46e657773 82 a8686561646c696e65 a56669727374 a16e 01")) {
		t.Fatalf("emit 1: %x % x", r1.Flags, r1.Data)
	}
	if r2.Flags != 0x44 || !bytes.Equal(r2.Data, unhex(t, "95 a4656d6974 a46e657773 a67365636f6e64 02 92 c3 c0")) {
		t.Fatalf("emit 2: %x % x", r2.Flags, r2.Data)
	}
	raw.send(append(wire.AppendHeader(nil, r1.ID, 0x04), undefined...))
	raw.send(append(wire.AppendHeader(nil, r2.ID, 0x03), 0xc0))

	// c2 #52–#59: service:expose and service:unexpose.
	for _, name := range []string{"service:expose", "service:unexpose", "peer:connect", "peer:disconnect"} {
		if r := task("subscribe", name); r.Flags != 0x04 || !bytes.Equal(r.Data, undefined) {
			t.Fatalf("subscribe %s: %x % x", name, r.Flags, r.Data)
		}
	}
	if err := server.Expose("late@1.0.0", Late{}); err != nil {
		t.Fatal(err)
	}
	r := raw.recv()
	prefix := unhex(t, "93 a4656d6974 ae736572766963653a6578706f7365 85 a46e616d65 a46c617465 a776657273696f6e a5312e302e30"+
		" ad7175616c69666965644e616d65 aa6c61746540312e302e30 a6706565724964 a974732d736572766572 aa646566696e6974696f6e")
	if r.Flags != 0x44 || !bytes.HasPrefix(r.Data, prefix) {
		t.Fatalf("service:expose\n got % x\nwant % x…", r.Data, prefix)
	}
	var v []any
	if err := wire.Unmarshal(r.Data, &v); err != nil {
		t.Fatal(err)
	}
	def := v[2].(map[string]any)["definition"].(wire.Definition)
	if def.Meta.Name != "late" || def.PeerID != "ts-server" {
		t.Fatalf("definition %+v", def)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), undefined...))
	_ = server.Unexpose("late@1.0.0")
	r = raw.recv()
	want := unhex(t, "93 a4656d6974 b0736572766963653a756e6578706f7365 85 a46e616d65 a46c617465 a776657273696f6e a5312e302e30"+
		" ad7175616c69666965644e616d65 aa6c61746540312e302e30 a6706565724964 a974732d736572766572 a56465664964 d924")
	want = append(want, def.ID...)
	if r.Flags != 0x44 || !bytes.Equal(r.Data, want) {
		t.Fatalf("service:unexpose\n got % x\nwant % x", r.Data, want)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), undefined...))

	// c2 #67: peer:connect {peerId}, and then peer:disconnect.
	other := dialRaw(t, server.URL(), "ts-client-2", false)
	r = raw.recv()
	if !bytes.Equal(r.Data, unhex(t, "93 a4656d6974 ac706565723a636f6e6e656374 81 a6706565724964 ab74732d636c69656e742d32")) {
		t.Fatalf("peer:connect % x", r.Data)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), undefined...))
	other.ws.CloseNow()
	r = raw.recv()
	if !bytes.Equal(r.Data, unhex(t, "93 a4656d6974 af706565723a646973636f6e6e656374 81 a6706565724964 ab74732d636c69656e742d32")) {
		t.Fatalf("peer:disconnect % x", r.Data)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), undefined...))

	// The cap: 6 names per peer (5 so far), then TitanError 429.
	if r := task("subscribe", "a"); r.Flags != 0x04 {
		t.Fatalf("6th subscribe: %x", r.Flags)
	}
	if r := task("subscribe", "a"); r.Flags != 0x04 {
		t.Fatalf("repeated subscribe: %x", r.Flags) // idempotent, does not count
	}
	r = task("subscribe", "b")
	if r.Flags != 0x84 {
		t.Fatalf("7th subscribe: flags %x", r.Flags)
	}
	var te wire.TitanError
	if err := wire.Unmarshal(r.Data, &te); err != nil || te.Code != 429 {
		t.Fatalf("7th subscribe: %+v %v", te, err)
	}

	// unsubscribe (c2 #50/#51): no more news, but "a" still arrives.
	if r := task("unsubscribe", "news"); r.Flags != 0x04 || !bytes.Equal(r.Data, undefined) {
		t.Fatalf("unsubscribe: %x % x", r.Flags, r.Data)
	}
	_ = server.Emit(ctx, "news", "unheard")
	_ = server.Emit(ctx, "a", "heard")
	if r := raw.recv(); !bytes.Contains(r.Data, []byte("heard")) || bytes.Contains(r.Data, []byte("unheard")) {
		t.Fatalf("after unsubscribe % x", r.Data)
	}
	// A peer's emit task to us is answered with undefined (c2 phase 4).
	if r := task("emit", "news", "x"); r.Flags != 0x04 || !bytes.Equal(r.Data, undefined) {
		t.Fatalf("emit to the server: %x % x", r.Flags, r.Data)
	}
	if netron.ForwarderCount(server) != 1 {
		t.Fatalf("forwarders %d", netron.ForwarderCount(server))
	}
	raw.ws.CloseNow()
	waitFor(t, "forwarder removed", func() bool { return netron.ForwarderCount(server) == 0 })
}

// Our node subscribes to a raw Netron peer's events: it runs the subscribe
// task, and the peer's emit requests reach the handler, answered with
// undefined.
func TestEventsRawNetronEmitter(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	raw := dialRaw(t, server.URL(), "ts-peer", false)
	p := serverPeer(t, server, "ts-peer")
	if p.IsGo() {
		t.Fatal("a raw peer is not a Go peer")
	}
	if _, err := p.On(ctx, "news*", func(netron.Event) {}); !errors.Is(err, netron.ErrPatternUnsupported) {
		t.Fatalf("pattern on a Netron peer: %v", err)
	}
	fn, ch := chanHandler()
	type result struct {
		unsub *netron.Subscription[netron.Event]
		err   error
	}
	done := make(chan result, 1)
	go func() {
		u, err := p.On(ctx, "news", fn)
		done <- result{u, err}
	}()
	r := raw.recv()
	var v []any
	if err := wire.Unmarshal(r.Data, &v); err != nil || r.Flags != 0x44 || !slices.Equal(v, []any{"subscribe", "news"}) {
		t.Fatalf("subscribe request %x %v %v", r.Flags, v, err)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), 0xd4, 0, 0))
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	// c2 #45 and #46, as the raw peer's requests.
	raw.send(unhex(t, "00000011 44 93 a4656d6974 a46e657773 82 a8686561646c696e65 a56669727374 a16e 01"))
	raw.send(unhex(t, "00000012 44 95 a4656d6974 a46e657773 a67365636f6e64 02 92 c3 c0"))
	var answered []uint32 // tasks run concurrently: answers may come in any order
	for range 2 {
		r := raw.recv()
		if r.Flags != 0x04 || !bytes.Equal(r.Data, []byte{0xd4, 0, 0}) {
			t.Fatalf("answer to %d: %x % x", r.ID, r.Flags, r.Data)
		}
		answered = append(answered, r.ID)
	}
	if slices.Sort(answered); !slices.Equal(answered, []uint32{0x11, 0x12}) {
		t.Fatalf("answered %v", answered)
	}
	e1, e2 := recvEvent(t, ch), recvEvent(t, ch)
	if e1.Name != "news" || e1.Source != "ts-peer" || e1.Peer != p || fmt.Sprint(e1.Args) != "[map[headline:first n:1]]" {
		t.Fatalf("event 1 %+v", e1)
	}
	if fmt.Sprint(e2.Args) != "[second 2 [true <nil>]]" {
		t.Fatalf("event 2 %+v", e2)
	}
	// An event nobody subscribed to is answered and dropped.
	raw.send(unhex(t, "00000013 44 92 a4656d6974 a56f74686572"))
	if r := raw.recv(); r.ID != 0x13 || r.Flags != 0x04 {
		t.Fatalf("answer %d %x", r.ID, r.Flags)
	}
	noEvent(t, ch)
	// Unsubscribe runs the unsubscribe task.
	go func() { done <- result{err: res.unsub.Unsubscribe(ctx)} }()
	r = raw.recv()
	if err := wire.Unmarshal(r.Data, &v); err != nil || !slices.Equal(v, []any{"unsubscribe", "news"}) {
		t.Fatalf("unsubscribe request %v %v", v, err)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), 0xd4, 0, 0))
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	raw.send(unhex(t, "00000014 44 92 a4656d6974 a46e657773"))
	raw.recv()
	noEvent(t, ch)

	// Events is the channel form; Close returns before the peer has
	// answered the unsubscribe task, which the raw peer holds.
	go func() {
		s, err := p.Events(ctx, "news")
		done <- result{s, err}
	}()
	r = raw.recv()
	if err := wire.Unmarshal(r.Data, &v); err != nil || !slices.Equal(v, []any{"subscribe", "news"}) {
		t.Fatalf("subscribe request %v %v", v, err)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), 0xd4, 0, 0))
	res = <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	raw.send(unhex(t, "00000015 44 93 a4656d6974 a46e657773 03"))
	raw.recv()
	if e := <-res.unsub.C(); fmt.Sprint(e.Args) != "[3]" {
		t.Fatalf("event from the channel %+v", e)
	}
	if err := res.unsub.Close(); err != nil {
		t.Fatal(err)
	}
	<-res.unsub.Done()
	if _, open := <-res.unsub.C(); open || res.unsub.Err() != nil {
		t.Fatalf("after Close: channel open %v, Err %v", open, res.unsub.Err())
	}
	r = raw.recv() // sent after Close returned, answered only now
	if err := wire.Unmarshal(r.Data, &v); err != nil || !slices.Equal(v, []any{"unsubscribe", "news"}) {
		t.Fatalf("unsubscribe request after Close %v %v", v, err)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), 0xd4, 0, 0))
}

// Lifecycle events of a remote Go node, by the seed's name, with Titan's
// payload.
func TestEventsRemoteLifecycle(t *testing.T) {
	ctx := context.Background()
	server, _, p := connectPair(t, netron.Config{ID: "server"}, netron.Config{ID: "client"})
	fn, ch := chanHandler()
	if _, err := p.On(ctx, netron.EventPeerConnected, fn); err != nil {
		t.Fatal(err)
	}
	third := startNode(t, nodeConfig("third", false))
	if _, err := third.Connect(ctx, server.URL()); err != nil {
		t.Fatal(err)
	}
	e := recvEvent(t, ch)
	var pe netron.PeerEvent
	if err := e.Decode(0, &pe); err != nil || e.Name != netron.EventPeerConnected || pe.PeerID != "third" {
		t.Fatalf("%+v: %+v %v", e, pe, err)
	}
}

// A connected client learns of services exposed and unexposed after it
// connected, without reconnecting.
func TestEventsLiveCatalogue(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	_ = server.Expose("early@1.0.0", Late{})
	client := startNode(t, nodeConfig("client", false))

	// Services exposed while the client connects are not missed.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 40 {
			_ = server.Expose(fmt.Sprintf("svc%d@1.0.0", i), Late{})
		}
	})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitFor(t, "the whole catalogue", func() bool { return len(p.Services()) == 41 })

	_ = server.Expose("late@1.0.0", Late{})
	waitFor(t, "late@1.0.0", func() bool { _, ok := p.Services()["late@1.0.0"]; return ok })
	if def := p.Services()["late@1.0.0"]; def.Name != "late" || def.PeerID != "server" {
		t.Fatalf("definition %+v", def)
	}
	svc, err := p.Service(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := rpc.Call[string](ctx, svc, "ping"); err != nil || s != "pong" {
		t.Fatalf("ping: %q %v", s, err)
	}
	for i := range 40 {
		_ = server.Unexpose(fmt.Sprintf("svc%d@1.0.0", i))
	}
	_ = server.Unexpose("late@1.0.0")
	waitFor(t, "unexposed", func() bool { return len(p.Services()) == 1 })
	if _, ok := p.Services()["early@1.0.0"]; !ok {
		t.Fatalf("catalogue %v", p.Services())
	}
}

// Emit reports arguments that cannot be encoded for a subscribed peer.
func TestEventsEmitUnencodable(t *testing.T) {
	ctx := context.Background()
	server, _, p := connectPair(t, netron.Config{ID: "server"}, netron.Config{ID: "client"})
	fn, ch := chanHandler()
	if _, err := p.On(ctx, "x", fn); err != nil {
		t.Fatal(err)
	}
	if err := server.Emit(ctx, "x", make(chan int)); err == nil {
		t.Fatal("Emit of a channel to a peer did not fail")
	}
	_ = server.Emit(ctx, "x", "ok")
	if e := recvEvent(t, ch); e.Args[0] != "ok" {
		t.Fatalf("got %+v", e)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		"93 a4656d6974 a46e657773 82 a8686561646c696e65 a56669727374 a16e 01", // c2 #45
		"95 a4656d6974 a46e657773 a67365636f6e64 02 92 c3 c0",                 // c2 #46
		"93 a4656d6974 ac706565723a636f6e6e656374 81 a6706565724964 ab74732d636c69656e742d32",
		"94 a56576656e74 a46e657773 a568656c6c6f 2a",
		"92 a56576656e74 c0",
		"dc0003 a4656d6974 a1 78 c0",
		"91 a4656d6974",
	} {
		b := unhexF(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := wire.SkipValue(data); err != nil || n != len(data) {
			return // the packet decoder lets only one whole value through
		}
		for _, kind := range []string{"emit", "event"} {
			name, args, err := netron.ParseEvent(data, kind)
			if err == nil && name == "" {
				t.Fatalf("no error and no name for % x", data)
			}
			_ = args
		}
	})
}

func unhexF(s string) []byte {
	var out []byte
	s = strings.ReplaceAll(s, " ", "")
	for i := 0; i+1 < len(s); i += 2 {
		var b byte
		fmt.Sscanf(s[i:i+2], "%02x", &b)
		out = append(out, b)
	}
	return out
}

// A remote subscription with bus.Block whose handler is stuck holds back
// its own connection only: the reader waits outside the node-wide inbound
// topic, so another peer's events still arrive. (It used to wait inside,
// and every connection's events and stream packets waited with it.)
func TestBlockingRemoteSubscriberHoldsOnlyItsConnection(t *testing.T) {
	ctx := context.Background()
	s1 := startNode(t, netron.Config{ID: "s1", Host: "127.0.0.1", Server: true})
	s2 := startNode(t, netron.Config{ID: "s2", Host: "127.0.0.1", Server: true})
	c := startNode(t, netron.Config{ID: "c"})
	p1, err := c.Connect(ctx, s1.URL())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.Connect(ctx, s2.URL())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	stuck := make(chan struct{}, 1)
	if _, err := p1.On(ctx, "x", func(netron.Event) {
		select {
		case stuck <- struct{}{}:
		default:
		}
		<-release
	}, bus.WithBuffer(1), bus.WithPolicy(bus.Block)); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	if _, err := p2.On(ctx, "y", func(netron.Event) {
		select {
		case got <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	// One event in the stuck handler, one in its queue, the rest hold the
	// reader of s1's connection.
	for i := range 10 {
		if err := s1.Emit(ctx, "x", i); err != nil {
			t.Fatal(err)
		}
	}
	<-stuck
	// The rest of s1's events reach c's reader, which waits for room in
	// the subscription's queue (a Hold, run by the reader).
	waitFor(t, "the reader of s1's connection to wait", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "transport.(*Conn).runHeld(")
	})
	if err := s2.Emit(ctx, "y", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("s2's event waited for a stuck handler of s1's events")
	}
}

// on subscribes fn to name on n and returns what ends the subscription.
func on(t testing.TB, n *netron.Node, name string, fn func(netron.Event), opts ...bus.SubOption) func() {
	t.Helper()
	s, err := n.On(name, fn, opts...)
	if err != nil {
		t.Fatalf("On(%q): %v", name, err)
	}
	return func() { _ = s.Close() }
}
