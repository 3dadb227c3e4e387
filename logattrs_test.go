package netron_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// Faulty's methods panic: in a call, and in the producer of a stream.
type Faulty struct{}

func (Faulty) Boom() error { panic("boom") }

func (Faulty) Flood(ctx context.Context, w *stream.Writer[int]) error { panic("flood") }

// logLines returns the JSON log lines of logs whose msg is msg.
func logLines(t *testing.T, logs *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// The log lines about a call carry the node, the peer, the request id,
// the service and the method; those about a stream the node, the peer and
// the stream; those about a peer the node and the peer
// (docs/observability.md, "Logs").
func TestLogAttributes(t *testing.T) {
	var logs syncBuffer
	cfg := nodeConfig("server", true)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	server := startNode(t, cfg)
	if err := server.Expose("faulty@1.0.0", Faulty{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := startNode(t, netron.Config{ID: "client"})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "faulty@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Call(ctx, "boom"); err == nil {
		t.Fatal("boom did not fail")
	}
	for _, err := range rpc.Stream[int](ctx, svc, "flood") {
		if err == nil {
			t.Fatal("flood yielded a value")
		}
	}
	p.Close()
	eventually(t, "the server's line of the disconnect", func() bool {
		return len(logLines(t, &logs, "netron: peer disconnected")) > 0
	})
	check := func(msg string, want map[string]any, keys ...string) {
		t.Helper()
		lines := logLines(t, &logs, msg)
		if len(lines) == 0 {
			t.Errorf("no line %q in\n%s", msg, logs.String())
			return
		}
		l := lines[0]
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%q: %s = %v, want %v", msg, k, l[k], v)
			}
		}
		for _, k := range keys {
			if _, ok := l[k]; !ok {
				t.Errorf("%q has no %s: %v", msg, k, l)
			}
		}
	}
	check("netron: handler panicked", map[string]any{"node": "server", "peer": "client", "service": "faulty@1.0.0", "method": "boom"}, "request_id")
	check("netron: stream producer panicked", map[string]any{"node": "server", "peer": "client"}, "stream")
	check("netron: peer disconnected", map[string]any{"node": "server", "peer": "client"})
}
