package netron_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/internal/testredis"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Events delivered to and dropped by the node's own subscriptions and the
// subscriptions of peers, and the drops of the node's bus by topic, are
// counted as they happen.
func TestMetricsEventsAndBusDrops(t *testing.T) {
	ms, sreg := registered(t)
	cfg := nodeConfig("server", true)
	cfg.Metrics = ms
	server := startNode(t, cfg)
	ctx := context.Background()

	// A subscription of one place that nobody reads: the first event
	// waits in its queue, the next two are dropped.
	slow, err := server.Events("news", bus.WithBuffer(1), bus.WithPolicy(bus.DropNewest))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// A peer's subscription: the server forwards the events.
	client := startNode(t, netron.Config{ID: "client"})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan netron.Event, 8)
	sub, err := p.On(ctx, "news", func(ev netron.Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	local := map[string]string{"subscription": "news", "to": "local"}
	remote := map[string]string{"subscription": "news", "to": "peer"}
	if d := metricValue(t, sreg, "events_delivered_total", local); d != 0 {
		t.Fatalf("delivered before any event: %v", d)
	}
	for range 3 {
		if err := server.Emit(ctx, "news", "hi"); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		<-got
	}
	for _, c := range []struct {
		name string
		l    map[string]string
		want float64
	}{
		{"events_delivered_total", local, 3},
		{"events_dropped_total", local, 2},
		{"events_delivered_total", remote, 3},
		{"events_dropped_total", remote, 0},
		{"bus_dropped_total", map[string]string{"topic": "netron.events.sub.*"}, 2},
	} {
		if v := metricValue(t, sreg, c.name, c.l); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.l, v, c.want)
		}
	}
	if d := slow.Dropped(); d != 2 {
		t.Errorf("the subscription dropped %d", d)
	}

	// A topic of the user's on the node's bus.
	jobs := bus.NewTopic[int](server.Bus(), "jobs")
	js, err := jobs.Subscribe(bus.WithBuffer(0), bus.WithPolicy(bus.DropNewest))
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	for i := range 4 {
		if err := jobs.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if v := metricValue(t, sreg, "bus_dropped_total", map[string]string{"topic": "jobs"}); v != 4 {
		t.Errorf("bus drops of jobs = %v, want 4", v)
	}
}

// Refusals by limit: the peers a node takes (503), the subscriptions a
// peer may make (429); and a failed handshake counted on the dialling
// side too.
func TestMetricsLimitRefusalsAndDialFailures(t *testing.T) {
	ms, sreg := registered(t)
	cfg := nodeConfig("server", true)
	cfg.Metrics = ms
	cfg.MaxPeers = 1
	cfg.MaxSubscriptionsPerPeer = 4
	server := startNode(t, cfg)
	ctx := context.Background()
	first := startNode(t, netron.Config{ID: "first"})
	p, err := first.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	mc, creg := registered(t)
	second := startNode(t, netron.Config{ID: "second", Metrics: mc})
	if _, err := second.Connect(ctx, server.URL()); err == nil {
		t.Fatal("a second peer connected past MaxPeers 1")
	}
	if v := metricValue(t, sreg, "refused_total", map[string]string{"code": "503", "limit": "peers"}); v != 1 {
		t.Errorf("refused{503,peers} = %v, want 1", v)
	}
	if v := metricValue(t, creg, "handshake_failures_total", map[string]string{"direction": "outbound"}); v != 1 {
		t.Errorf("the dialler's failed handshakes = %v, want 1", v)
	}
	// Subscribe until the limit refuses (the client's catalog of the
	// server's services takes some of the places).
	subRefused := map[string]string{"code": "429", "limit": "subscriptions"}
	for i := 0; ; i++ {
		before := metricValue(t, sreg, "refused_total", subRefused)
		s, err := p.On(ctx, "e"+strconv.Itoa(i), func(netron.Event) {})
		if err == nil {
			defer s.Close()
			if v := metricValue(t, sreg, "refused_total", subRefused); v != before {
				t.Fatalf("subscription %d accepted, refusals %v → %v", i, before, v)
			}
			continue
		}
		if !errors.Is(err, rpc.ErrTooManyRequests) {
			t.Fatalf("subscription %d: %v", i, err)
		}
		if v := metricValue(t, sreg, "refused_total", subRefused); v != before+1 {
			t.Errorf("refused{429,subscriptions} = %v, want %v", v, before+1)
		}
		break
	}

	// A node that refuses the dialler's credentials.
	acfg := nodeConfig("guarded", true)
	acfg.Auth.Token = "secret"
	guarded := startNode(t, acfg)
	if _, err := second.Connect(ctx, guarded.URL()); !errors.Is(err, peer.ErrUnauthenticated) {
		t.Fatalf("connect without the token: %v", err)
	}
	if v := metricValue(t, creg, "handshake_failures_total", map[string]string{"direction": "outbound"}); v != 2 {
		t.Errorf("the dialler's failed handshakes = %v, want 2", v)
	}
}

// What a node learns from discovery: the members, and the changes by
// kind.
func TestMetricsDiscoveryMembers(t *testing.T) {
	hub := discovery.NewHub()
	mem := func() discovery.Discovery {
		d := discovery.NewMemory(discovery.WithHub(hub), discovery.WithHeartbeat(100*time.Millisecond), discovery.WithTTL(1500*time.Millisecond))
		t.Cleanup(func() { d.Close() })
		return d
	}
	ms, reg := registered(t)
	cfg := nodeConfig("watcher", true)
	cfg.Metrics = ms
	cfg.DiscoveryBackend = mem()
	startNode(t, cfg)
	if v := metricValue(t, reg, "discovery_members", nil); v != 0 {
		t.Fatalf("members alone: %v", v)
	}
	ctx := context.Background()
	others := make([]*netron.Node, 2)
	for i := range others {
		n, err := netron.New(netron.Config{ID: "m" + strconv.Itoa(i), Host: "127.0.0.1", Server: true, DiscoveryBackend: mem()})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		others[i] = n
	}
	eventually(t, "two members", func() bool { return metricValue(t, reg, "discovery_members", nil) == 2 })
	if v := metricValue(t, reg, "discovery_announcements_total", map[string]string{"kind": "joined"}); v != 2 {
		t.Errorf("joins %v, want 2", v)
	}
	if err := others[0].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { others[1].Stop(ctx) })
	eventually(t, "one member", func() bool { return metricValue(t, reg, "discovery_members", nil) == 1 })
	if v := metricValue(t, reg, "discovery_announcements_total", map[string]string{"kind": "left"}); v != 1 {
		t.Errorf("leaves %v, want 1", v)
	}
	if v := metricValue(t, reg, "discovery_redis_errors_total", nil); v != 0 {
		t.Errorf("redis errors of an in-memory discovery: %v", v)
	}
}

// A node on Redis discovery reports the failed round trips of an outage
// and its end.
func TestMetricsDiscoveryRedis(t *testing.T) {
	srv := testredis.Start(t)
	host, portStr, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(portStr)
	ms, reg := registered(t)
	cfg := nodeConfig("r1", true)
	cfg.Metrics = ms
	cfg.Discovery = netron.DiscoveryConfig{Enabled: true, Redis: netron.RedisConfig{Host: host, Port: port},
		Interval: 100 * time.Millisecond, TTL: 1500 * time.Millisecond, Prefix: "test:" + t.Name()}
	startNode(t, cfg)
	for _, name := range []string{"discovery_redis_errors_total", "discovery_redis_reconnects_total", "discovery_redis_resyncs_total"} {
		if !hasFamily(t, reg, "netron_"+name) {
			t.Errorf("no %s", name)
		}
	}
	if v := metricValue(t, reg, "discovery_redis_errors_total", nil); v != 0 {
		t.Fatalf("errors before the outage: %v", v)
	}
	srv.Stop()
	eventually(t, "a redis error", func() bool { return metricValue(t, reg, "discovery_redis_errors_total", nil) > 0 })
	srv.Restart(t)
	eventually(t, "the reconnect", func() bool { return metricValue(t, reg, "discovery_redis_reconnects_total", nil) == 1 })
	eventually(t, "the resync of the empty redis", func() bool { return metricValue(t, reg, "discovery_redis_resyncs_total", nil) >= 1 })
}

func hasFamily(t *testing.T, g prometheus.Gatherer, name string) bool {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return true
		}
	}
	return false
}

// A streaming call makes a server span for the stream under the call's
// server span, which ends with the stream.
func TestTraceStreamSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	cfg := nodeConfig("server", true)
	cfg.TracerProvider = tp
	server := startNode(t, cfg)
	if err := server.Expose("counter@1.0.0", Count5{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := startNode(t, netron.Config{ID: "client", TracerProvider: tp})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "counter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range rpc.Stream[int](ctx, svc, "count", 5) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("%d values", n)
	}
	eventually(t, "3 spans", func() bool { return len(exp.GetSpans()) == 3 })
	var client_, call, stream tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		switch {
		case s.SpanKind == trace.SpanKindClient:
			client_ = s
		case s.Name == "counter@1.0.0/count stream":
			stream = s
		case s.Name == "counter@1.0.0/count":
			call = s
		}
	}
	if !call.SpanContext.IsValid() || !stream.SpanContext.IsValid() {
		t.Fatalf("spans %v", exp.GetSpans())
	}
	if call.Parent.SpanID() != client_.SpanContext.SpanID() || stream.Parent.SpanID() != call.SpanContext.SpanID() ||
		stream.SpanContext.TraceID() != client_.SpanContext.TraceID() {
		t.Errorf("parents: call under %v (client %v), stream under %v (call %v)", call.Parent.SpanID(), client_.SpanContext.SpanID(), stream.Parent.SpanID(), call.SpanContext.SpanID())
	}
	if stream.EndTime.Before(call.EndTime) || stream.Status.Code.String() == "Error" {
		t.Errorf("stream span ends %v (status %v), call span %v", stream.EndTime, stream.Status, call.EndTime)
	}
}

// A subscribed peer that stops reading loses its oldest queued events,
// counted as drops of its subscription (TestEventsSlowRemoteSubscriber
// has the queue's behaviour).
func TestMetricsPeerSubscriptionDrops(t *testing.T) {
	ms, sreg := registered(t)
	const queue, total = 4, 200
	cfg := nodeConfig("server", true)
	cfg.Metrics = ms
	cfg.EventQueueSize = queue
	cfg.RequestTimeout = 10 * time.Minute // no emit in flight times out and lets another in
	server := startNode(t, cfg)
	raw := dialRaw(t, server.URL(), "slow", false)
	raw.send(unhex(t, "00000001 44 92 a9 737562736372696265 a4 6e657773")) // subscribe news
	if r := raw.recv(); r.Flags != 0x04 {
		t.Fatalf("subscribe answer %x %x", r.Flags, r.Data)
	}
	ctx := context.Background()
	for i := range total {
		if err := server.Emit(ctx, "news", i); err != nil {
			t.Fatal(err)
		}
	}
	// At most emitWindow (64) emits in flight, one being sent, the queue.
	waitFor(t, "drops", func() bool { return netron.ForwarderDropped(server) >= total-queue-66 })
	remote := map[string]string{"subscription": "news", "to": "peer"}
	if v := metricValue(t, sreg, "events_delivered_total", remote); v != total {
		t.Errorf("delivered %v, want %d", v, total)
	}
	if v, d := metricValue(t, sreg, "events_dropped_total", remote), netron.ForwarderDropped(server); v != float64(d) {
		t.Errorf("dropped %v, the forwarder dropped %d", v, d)
	}
	raw.ws.CloseNow()
}
