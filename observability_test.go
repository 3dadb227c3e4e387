package netron_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// metricValue sums the series of the family name (without the netron_
// prefix) whose labels include want: a counter's or gauge's value, a
// histogram's count.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "netron_"+name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func registered(t *testing.T) (*netron.Metrics, *prometheus.Registry) {
	m := netron.NewMetrics(netron.MetricsOptions{})
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestMetricsCalls(t *testing.T) {
	ms, sreg := registered(t)
	mc, creg := registered(t)
	cfg := nodeConfig("server", true)
	cfg.Metrics = ms
	server := startNode(t, cfg)
	if err := server.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, netron.Config{ID: "client", Metrics: mc})
	ctx := context.Background()
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "everything@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := rpc.Call[int](ctx, svc, "sum", i, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Call(ctx, "fail", "no"); err == nil {
		t.Fatal("fail did not fail")
	}
	if _, err := svc.Call(ctx, "coded"); err == nil {
		t.Fatal("coded did not fail")
	}
	sum := map[string]string{"service": "everything@1.0.0", "method": "sum"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	// The client counted each call when its reply came.
	for _, c := range []struct {
		name string
		l    map[string]string
		want float64
	}{
		{"rpc_started_total", with(sum, "side", "client"), 3},
		{"rpc_handled_total", with(sum, "side", "client", "code", "ok"), 3},
		{"rpc_duration_seconds", with(sum, "side", "client"), 3},
		{"rpc_in_flight", map[string]string{"side": "client"}, 0},
		{"rpc_handled_total", map[string]string{"side": "client", "method": "fail", "code": "500"}, 1},
		{"rpc_handled_total", map[string]string{"side": "client", "method": "coded", "code": "429"}, 1},
		{"rpc_started_total", map[string]string{"side": "server"}, 0},
	} {
		if got := metricValue(t, creg, c.name, c.l); got != c.want {
			t.Errorf("client %s%v = %v, want %v", c.name, c.l, got, c.want)
		}
	}
	if got := metricValue(t, creg, "rpc_request_bytes_total", with(sum, "side", "client")); got < 3*10 {
		t.Errorf("client request bytes of 3 Sum calls = %v", got)
	}
	if got := metricValue(t, creg, "rpc_response_bytes_total", with(sum, "side", "client")); got < 3*6 {
		t.Errorf("client response bytes of 3 Sum calls = %v", got)
	}
	// The server counts a call once its reply is out, which the caller may
	// see first: wait for the last (eventually, hostile_test.go).
	eventually(t, "the server counts 5 calls", func() bool {
		return metricValue(t, sreg, "rpc_duration_seconds", map[string]string{"side": "server"}) == 5
	})
	for _, c := range []struct {
		name string
		l    map[string]string
		want float64
	}{
		{"rpc_started_total", with(sum, "side", "server"), 3},
		{"rpc_handled_total", with(sum, "side", "server", "code", "ok"), 3},
		{"rpc_handled_total", map[string]string{"side": "server", "method": "fail", "code": "500"}, 1},
		{"rpc_handled_total", map[string]string{"side": "server", "method": "coded", "code": "429"}, 1},
		{"rpc_in_flight", map[string]string{"side": "server"}, 0},
		{"rpc_started_total", map[string]string{"side": "client"}, 0},
	} {
		if got := metricValue(t, sreg, c.name, c.l); got != c.want {
			t.Errorf("server %s%v = %v, want %v", c.name, c.l, got, c.want)
		}
	}
	// Calls of names the node does not have count under other: a peer
	// cannot add series.
	raw := dialRaw(t, server.URL(), "raw", false)
	for i, target := range []string{"nosuch@1.0.0", "everything@1.0.0"} {
		call, _ := wire.AppendMarshal(wire.AppendHeader(nil, uint32(i+1), wire.Flags(wire.TypeCall, true, 0)), []any{target, "nosuchMethod"})
		raw.send(call)
		if reply := raw.recv(); !reply.IsError() {
			t.Fatalf("a call of %s.nosuchMethod: %x", target, reply.Data)
		}
	}
	eventually(t, "the unknown calls", func() bool {
		return metricValue(t, sreg, "rpc_handled_total", map[string]string{"side": "server", "service": "other", "method": "other", "code": "404"}) == 1 &&
			metricValue(t, sreg, "rpc_handled_total", map[string]string{"side": "server", "service": "everything@1.0.0", "method": "other", "code": "404"}) == 1
	})
	// What one side sent the other received.
	for _, name := range []string{"rpc_request_bytes_total", "rpc_response_bytes_total"} {
		c, s := metricValue(t, creg, name, with(sum, "side", "client")), metricValue(t, sreg, name, with(sum, "side", "server"))
		if c != s || c == 0 {
			t.Errorf("%s: client %v, server %v", name, c, s)
		}
	}
}

// WaitGate's Wait blocks until its channel closes; started tells when a
// call is running.
type WaitGate struct {
	release chan struct{}
	started chan struct{}
}

func (b WaitGate) Wait(ctx context.Context) error {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestMetricsRefusalsAndInFlight(t *testing.T) {
	ms, sreg := registered(t)
	cfg := nodeConfig("server", true)
	cfg.Metrics = ms
	cfg.MaxConcurrentRequestsPerPeer = 1
	server := startNode(t, cfg)
	b := WaitGate{release: make(chan struct{}), started: make(chan struct{}, 1)}
	if err := server.Expose("blocker@1.0.0", b); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, netron.Config{ID: "client"})
	ctx := context.Background()
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "blocker@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { _, err := svc.Call(ctx, "wait"); first <- err }()
	<-b.started
	inFlight := map[string]string{"side": "server", "service": "blocker@1.0.0", "method": "wait"}
	if got := metricValue(t, sreg, "rpc_in_flight", inFlight); got != 1 {
		t.Errorf("in flight while a call runs = %v, want 1", got)
	}
	_, err = svc.Call(ctx, "wait")
	if !errors.Is(err, rpc.ErrTooManyRequests) {
		t.Fatalf("second call: %v, want 429", err)
	}
	if got := metricValue(t, sreg, "refused_total", map[string]string{"code": "429", "limit": "peer"}); got != 1 {
		t.Errorf("refused{429,peer} = %v, want 1", got)
	}
	close(b.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	eventually(t, "no call in flight", func() bool { return metricValue(t, sreg, "rpc_in_flight", inFlight) == 0 })
}

// Chain's Relay calls its next node's Relay, or answers at the last.
type Chain struct {
	next *rpc.Service
	fail bool
}

func (c Chain) Relay(ctx context.Context, s string) (string, error) {
	if c.next == nil {
		if c.fail {
			return "", rpc.NewError(409, "conflict at the end", nil)
		}
		return s + "!", nil
	}
	return rpc.Call[string](ctx, c.next, "relay", s)
}

// A call A → B → C, where B calls C inside its handler, makes one trace:
// A's client span, B's server span under it, B's client span under that,
// C's server span under that one.
func TestTraceAcrossNodes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	ctx := context.Background()
	traced := func(id string) netron.Config {
		cfg := nodeConfig(id, true)
		cfg.TracerProvider = tp
		return cfg
	}
	c := startNode(t, traced("C"))
	if err := c.Expose("chain@1.0.0", Chain{}); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, traced("B"))
	pc, err := b.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	next, err := pc.Service(ctx, "chain@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Expose("chain@1.0.0", Chain{next: next}); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, traced("A"))
	pb, err := a.Connect(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	first, err := pb.Service(ctx, "chain@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, root := tp.Tracer("test").Start(ctx, "root")
	got, err := rpc.Call[string](rctx, first, "relay", "hi")
	root.End()
	if err != nil || got != "hi!" {
		t.Fatalf("Relay = %q, %v", got, err)
	}
	// Server spans end once their reply is out, after the caller's.
	eventually(t, "5 spans", func() bool { return len(exp.GetSpans()) == 5 })
	spans := exp.GetSpans()
	find := func(kind trace.SpanKind, node string) tracetest.SpanStub {
		t.Helper()
		for _, s := range spans {
			if s.SpanKind != kind {
				continue
			}
			for _, a := range s.Attributes {
				if a.Key == "netron.node" && a.Value.AsString() == node {
					return s
				}
			}
		}
		t.Fatalf("no %v span of node %s in %v", kind, node, spans)
		return tracetest.SpanStub{}
	}
	aClient, bServer := find(trace.SpanKindClient, "A"), find(trace.SpanKindServer, "B")
	bClient, cServer := find(trace.SpanKindClient, "B"), find(trace.SpanKindServer, "C")
	for _, l := range []struct {
		name          string
		child, parent trace.SpanContext
		remote        bool
	}{
		{"A client under root", aClient.Parent, root.SpanContext(), false},
		{"B server under A client", bServer.Parent, aClient.SpanContext, true},
		{"B client under B server", bClient.Parent, bServer.SpanContext, false},
		{"C server under B client", cServer.Parent, bClient.SpanContext, true},
	} {
		if l.child.TraceID() != root.SpanContext().TraceID() || l.child.SpanID() != l.parent.SpanID() || l.child.IsRemote() != l.remote {
			t.Errorf("%s: parent %v (remote %v), want %v", l.name, l.child.SpanID(), l.child.IsRemote(), l.parent.SpanID())
		}
	}
	if aClient.Name != "chain@1.0.0/relay" || cServer.Name != "chain@1.0.0/relay" {
		t.Errorf("span names %q, %q", aClient.Name, cServer.Name)
	}
}

// An error reply carries the trace and span ids of the server's span in
// TitanError's traceId and spanId, and the spans record the error.
func TestTraceErrorIDs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	cfg := nodeConfig("server", true)
	cfg.TracerProvider = tp
	server := startNode(t, cfg)
	if err := server.Expose("chain@1.0.0", Chain{fail: true}); err != nil {
		t.Fatal(err)
	}
	// A raw client sees the error's bytes.
	raw := dialRaw(t, server.URL(), "raw", false)
	call, _ := wire.AppendMarshal(wire.AppendHeader(nil, 7, wire.Flags(wire.TypeCall, true, 0)), []any{"chain@1.0.0", "relay", "x"})
	raw.send(call)
	reply := raw.recv()
	var te wire.TitanError
	if err := wire.Unmarshal(reply.Data, &te); err != nil || !reply.IsError() || te.Code != 409 {
		t.Fatalf("reply %x: %+v %v", reply.Data, te, err)
	}
	eventually(t, "the server span", func() bool { return len(exp.GetSpans()) == 1 })
	s := exp.GetSpans()[0]
	if te.TraceID != s.SpanContext.TraceID().String() || te.SpanID != s.SpanContext.SpanID().String() {
		t.Errorf("error ids %s/%s, span %s/%s", te.TraceID, te.SpanID, s.SpanContext.TraceID(), s.SpanContext.SpanID())
	}
	if s.Status.Code.String() != "Error" || s.Parent.IsValid() {
		t.Errorf("span status %v, parent %v", s.Status, s.Parent)
	}
}

// A plain Netron peer never gets the trace context: the CALL a traced Go
// node sends it is Netron's [defId, method, ...args].
func TestTraceNotSentToPlainPeer(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	calls := make(chan []byte, 1)
	url, _ := fakeTitan(t, func(ws *websocket.Conn, call wire.Packet) {
		calls <- call.Data
		out, _ := wire.AppendMarshal(wire.AppendHeader(nil, call.ID, 0x03), 1)
		ws.Write(context.Background(), websocket.MessageBinary, out)
	})
	client := startNode(t, netron.Config{ID: "ts-client", TracerProvider: tp})
	ctx := context.Background()
	p, err := client.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "streamer@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, root := tp.Tracer("test").Start(ctx, "root")
	defer root.End()
	if _, err := svc.Call(rctx, "count", 3); err != nil {
		t.Fatal(err)
	}
	var req []any
	if err := wire.Unmarshal(<-calls, &req); err != nil {
		t.Fatal(err)
	}
	if len(req) != 3 || req[0] != "01a21b02-5d46-7924-a290-4f0d610e11a5" || req[1] != "count" {
		t.Fatalf("the plain peer got %#v", req)
	}
	if spans := exp.GetSpans(); len(spans) != 1 || !strings.HasSuffix(spans[0].Name, "/count") {
		t.Errorf("spans %v, want the client span", spans)
	}
}

// Count5 streams 0..n-1.
type Count5 struct{}

func (Count5) Count(n int) <-chan int {
	ch := make(chan int, n)
	for i := range n {
		ch <- i
	}
	close(ch)
	return ch
}

// Connections, handshakes, auth refusals, streams and events emitted are
// counted as they happen.
func TestMetricsConnectionsStreamsEvents(t *testing.T) {
	ms, sreg := registered(t)
	mc, creg := registered(t)
	cfg := nodeConfig("server", true)
	cfg.Metrics = ms
	cfg.Auth.Token = "secret"
	server := startNode(t, cfg)
	if err := server.Expose("counter@1.0.0", Count5{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A peer without the token is refused before its handshake; one that
	// hangs up in the middle of its handshake fails it.
	if _, err := startNode(t, netron.Config{ID: "stranger"}).Connect(ctx, server.URL()); err == nil {
		t.Fatal("a peer without the token connected")
	}
	if got := metricValue(t, sreg, "auth_refusals_total", nil); got != 1 {
		t.Errorf("auth refusals %v, want 1", got)
	}
	ws, _, err := websocket.Dial(ctx, server.URL(), &websocket.DialOptions{HTTPHeader: map[string][]string{"Authorization": {"Bearer secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil { // the hello; no client-id follows
		t.Fatal(err)
	}
	ws.CloseNow()
	eventually(t, "a failed handshake", func() bool { return metricValue(t, sreg, "handshake_failures_total", nil) == 1 })

	client := startNode(t, netron.Config{ID: "client", Metrics: mc, Auth: netron.AuthConfig{DialToken: "secret"}})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, sreg, "connections", map[string]string{"direction": "inbound", "kind": "go"}); got != 1 {
		t.Errorf("server: inbound Go connections %v, want 1", got)
	}
	if got := metricValue(t, creg, "connections", map[string]string{"direction": "outbound", "kind": "go"}); got != 1 {
		t.Errorf("client: outbound Go connections %v, want 1", got)
	}
	if got := metricValue(t, sreg, "connections_opened_total", map[string]string{"direction": "inbound"}); got != 1 {
		t.Errorf("server: inbound connections opened %v, want 1", got)
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
	eventually(t, "the streams' ends", func() bool {
		return metricValue(t, creg, "streams_closed_total", map[string]string{"direction": "in"}) == 1 &&
			metricValue(t, sreg, "streams_closed_total", map[string]string{"direction": "out"}) == 1
	})
	for _, c := range []struct {
		g    prometheus.Gatherer
		name string
		l    map[string]string
		want float64
	}{
		{creg, "streams_opened_total", map[string]string{"direction": "in"}, 1},
		{sreg, "streams_opened_total", map[string]string{"direction": "out"}, 1},
		{creg, "stream_chunks_total", map[string]string{"direction": "in"}, 5},
		{sreg, "stream_chunks_total", map[string]string{"direction": "out"}, 5},
		{sreg, "streams_failed_total", nil, 0},
	} {
		if got := metricValue(t, c.g, c.name, c.l); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.l, got, c.want)
		}
	}
	if in, out := metricValue(t, creg, "stream_bytes_total", map[string]string{"direction": "in"}), metricValue(t, sreg, "stream_bytes_total", map[string]string{"direction": "out"}); in != out || in < 5*wire.HeaderSize {
		t.Errorf("stream bytes: read %v, written %v", in, out)
	}

	for range 3 {
		if err := server.Emit(ctx, "news", "hi"); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, sreg, "events_emitted_total", map[string]string{"event": "news"}); got != 3 {
		t.Errorf("events emitted %v, want 3", got)
	}

	p.Close()
	eventually(t, "the connection's end", func() bool {
		return metricValue(t, sreg, "connections_closed_total", map[string]string{"direction": "inbound"}) == 1 &&
			metricValue(t, sreg, "connections", nil) == 0
	})
}
