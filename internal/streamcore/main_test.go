package streamcore_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// side is one end of a real loopback WebSocket connection: its own bus,
// hub and stream manager.
type side struct {
	bus  *bus.Bus
	hub  *transport.Hub
	m    *streamcore.Manager
	conn *transport.Conn
}

// pair connects two hubs over loopback. ext: both sides negotiated the
// stream extension (as two Go peers do); otherwise both are plain.
func pair(t testing.TB, ext bool, opts ...streamcore.Option) (server, client *side) {
	t.Helper()
	return pairWith(t, ext, opts, opts)
}

// pairWith is pair with options of each side's manager.
func pairWith(t testing.TB, ext bool, serverOpts, clientOpts []streamcore.Option) (server, client *side) {
	t.Helper()
	return pairHubs(t, ext, nil, serverOpts, clientOpts)
}

// pairHubs is pairWith with options of both hubs.
func pairHubs(t testing.TB, ext bool, hubOpts []transport.Option, serverOpts, clientOpts []streamcore.Option) (server, client *side) {
	t.Helper()
	mk := func(id string, opts []streamcore.Option) *side {
		b := bus.New()
		h := transport.NewHub(b, id, append([]transport.Option{transport.WithKeepAlive(-1, 0)}, hubOpts...)...)
		m, err := streamcore.NewManager(b, opts...)
		if err != nil {
			t.Fatal(err)
		}
		s := &side{bus: b, hub: h, m: m}
		t.Cleanup(func() {
			h.Close()
			m.Close()
			b.Close()
		})
		return s
	}
	server, client = mk("server", serverOpts), mk("client", clientOpts)
	connected, err := bus.NewTopic[transport.ConnEvent](server.bus, transport.TopicConnected).Subscribe(bus.WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	addr, err := server.hub.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client.conn, err = client.hub.Dial(ctx, "ws://"+addr.String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-connected.C():
		server.conn = ev.Conn
	case <-ctx.Done():
		t.Fatal("server did not see the connection")
	}
	if ext {
		for _, c := range []*transport.Conn{server.conn, client.conn} {
			c.SetExtensions(&transport.Extensions{Version: 1, Names: []string{streamcore.Extension}})
		}
	}
	return server, client
}

// open opens a stream from producer to consumer, as a call would: the
// producer announces, the consumer accepts.
func open[T any](t testing.TB, producer, consumer *side, live bool) (*stream.Writer[T], *stream.Reader[T]) {
	t.Helper()
	o, err := producer.m.NewOutbound(producer.conn, live)
	if err != nil {
		t.Fatal(err)
	}
	in, err := consumer.m.Accept(consumer.conn, o.Reference())
	if err != nil {
		t.Fatal(err)
	}
	r := newReader[T](context.Background(), in)
	t.Cleanup(func() { r.Close(); o.Close(nil) })
	return newWriter[T](o), r
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw frames, as a hand-written peer sends them.

func chunkFrame(t testing.TB, id uint32, flags uint8, v any, streamID, index uint32) []byte {
	t.Helper()
	b := wire.AppendHeader(nil, id, flags)
	b, err := wire.AppendMarshal(b, v)
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendTrailer(b, streamID, index)
}

func eosFrame(id uint32, live bool, streamID, index uint32) []byte {
	f := uint8(0x55)
	if live {
		f = 0x75
	}
	b := wire.AppendHeader(nil, id, f)
	b = wire.AppendNil(b)
	return wire.AppendTrailer(b, streamID, index)
}

func packetFrame(t testing.TB, id uint32, flags uint8, v any) []byte {
	t.Helper()
	b := wire.AppendHeader(nil, id, flags)
	b, err := wire.AppendMarshal(b, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func send(t testing.TB, c *transport.Conn, frame []byte) {
	t.Helper()
	if err := c.Send(context.Background(), frame, nil); err != nil {
		t.Fatal(err)
	}
}

// collect reads r to its end.
func collect[T any](t testing.TB, r *stream.Reader[T]) ([]T, error) {
	t.Helper()
	ctx := testCtx(t)
	var out []T
	for {
		v, err := r.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("stream did not end")
			}
			return out, err
		}
		out = append(out, v)
	}
}

// waitFor polls cond for up to 30 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newLocal returns a bus and a manager for in-process streams.
// runLocal streams src through an outbound stream of m into m's own
// inbound side and collects what arrives, as collect does.
func runLocal[T any](t testing.TB, m *streamcore.Manager, src any) ([]T, error) {
	t.Helper()
	o, err := m.NewOutbound(nil, isLive(src))
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Accept(nil, o.Reference())
	if err != nil {
		t.Fatal(err)
	}
	r := newReader[T](context.Background(), in)
	defer r.Close()
	streamcore.Start(o, producer(src))
	return collect(t, r)
}

func newLocal(t testing.TB, opts ...streamcore.Option) (*bus.Bus, *streamcore.Manager) {
	t.Helper()
	b := bus.New()
	m, err := streamcore.NewManager(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		b.Close()
	})
	return b, m
}
