package streamcore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/stream"
)

// endPacket is a STREAM_ERROR or STREAM_CLOSE one side received.
type endPacket struct {
	typ  wire.Type
	id   uint64
	text string
}

// watchEnds reports the STREAM_ERROR and STREAM_CLOSE packets s receives,
// next to its Manager.
func watchEnds(t testing.TB, s *side) <-chan endPacket {
	t.Helper()
	ch := make(chan endPacket, 64)
	unsub, err := bus.NewTopic[transport.Inbound](s.bus, transport.TopicStreams).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
		typ := in.Packet.Type()
		if typ != wire.TypeStreamError && typ != wire.TypeStreamClose {
			return
		}
		var m map[string]any
		_ = wire.Unmarshal(in.Packet.Data, &m)
		e := endPacket{typ: typ}
		switch id := m["streamId"].(type) {
		case int64:
			e.id = uint64(id)
		case uint64:
			e.id = id
		}
		if e.text, _ = m["message"].(string); e.text == "" {
			e.text, _ = m["reason"].(string)
		}
		select {
		case ch <- e:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return ch
}

// nextEnd waits up to 2 s for the next end packet.
func nextEnd(t testing.TB, ch <-chan endPacket, what string) endPacket {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(30 * time.Second):
		t.Fatalf("no STREAM_ERROR or STREAM_CLOSE: %s", what)
		return endPacket{}
	}
}

// waitDone waits up to 2 s for ctx to end.
func waitDone(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// forever sends to w until its stream ends.
func forever(w *stream.Writer[int]) func(context.Context) error {
	return func(ctx context.Context) error {
		for i := 0; ; i++ {
			if err := w.Send(ctx, i); err != nil {
				return err
			}
		}
	}
}

// A producer that gets no credit within the claim timeout gives up and
// says so (STREAM_ERROR "not-claimed"), so that a consumer that opens the
// stream afterwards fails instead of waiting for ever: an upload (a live
// stream, no inactivity timeout) whose method starts late. The packet
// names the producer's id; the consumer's own stream with the same id is
// not touched.
func TestGivenUpProducerTellsConsumer(t *testing.T) {
	server, client := pair(t, true, streamcore.WithClaimTimeout(100*time.Millisecond))
	ends := watchEnds(t, server)
	// The server produces stream 1 to the client; the client's upload
	// below is stream 1 too.
	down, downR := open[int](t, server, client, true)
	o, err := client.m.NewOutbound(client.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID() != down.ID() {
		t.Fatalf("ids %d and %d: the test needs the same id both ways", o.ID(), down.ID())
	}
	w := newWriter[int](o)
	o.Start(forever(w))
	waitDone(t, o.Context(), "the producer to give up")
	if c := context.Cause(o.Context()); !errors.Is(c, streamcore.ErrNotClaimed) {
		t.Fatalf("the producer ended with %v, want ErrNotClaimed", c)
	}
	e := nextEnd(t, ends, "the producer gave up silently")
	if e.typ != wire.TypeStreamError || e.id != uint64(o.ID()) || e.text != streamcore.ReasonNotClaimed {
		t.Fatalf("got %s {streamId %d, %q}, want STREAM_ERROR {%d, %q}", e.typ, e.id, e.text, o.ID(), streamcore.ReasonNotClaimed)
	}
	// The server's own stream 1 carries on.
	ctx := testCtx(t)
	if err := down.Send(ctx, 42); err != nil {
		t.Fatalf("the server's stream with the same id: %v", err)
	}
	if v, err := downR.Recv(ctx); err != nil || v != 42 {
		t.Fatalf("the server's stream with the same id: %v %v", v, err)
	}
	// The method starts late and opens the upload: it fails at once.
	in, err := server.m.Accept(server.conn, o.Reference())
	if err != nil {
		t.Fatal(err)
	}
	r := newReader[int](context.Background(), in)
	defer r.Close()
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = r.Recv(rctx)
	if !errors.Is(err, streamcore.ErrNotClaimed) || !errors.Is(err, streamcore.ErrRemote) {
		t.Fatalf("the late consumer got %v, want a RemoteError matching ErrNotClaimed", err)
	}
}

// Credit for a stream the producer no longer has is answered with
// STREAM_ERROR "not-claimed" for that id; credit for an id it never
// allocated, and a cancel of a stream it does not have, are not.
func TestCreditForUnknownStreamIsAnswered(t *testing.T) {
	server, client := pair(t, true)
	ends := watchEnds(t, client)
	gone, err := server.m.NewOutbound(server.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	gone.Abort(errors.New("never announced")) // sends nothing
	id := uint64(gone.ID())
	send(t, client.conn, packetFrame(t, 6, 0x48, []any{"credit", id + 100, 1 << 20}))
	send(t, client.conn, packetFrame(t, 7, 0x48, []any{"cancel", id, "consumer-cancel"}))
	send(t, client.conn, packetFrame(t, 8, 0x48, []any{"credit", id, 1 << 20}))
	// The answer to the last packet is the first end packet.
	e := nextEnd(t, ends, "credit for a stream that is gone was not answered")
	if e.typ != wire.TypeStreamError || e.id != id || e.text != streamcore.ReasonNotClaimed {
		t.Fatalf("got %s {streamId %d, %q}, want STREAM_ERROR {%d, %q}", e.typ, e.id, e.text, id, streamcore.ReasonNotClaimed)
	}
	in, out := server.m.Streams(server.conn)
	if in != 0 || out != 0 {
		t.Fatalf("the server has %d/%d streams", in, out)
	}
}

// Abort of a running producer tells its consumer, which would otherwise
// wait for ever on a live stream; Abort of a stream its consumer cannot
// know of sends nothing.
func TestAbortTellsConsumer(t *testing.T) {
	server, client := pair(t, true)
	ends := watchEnds(t, server)
	unknown, err := client.m.NewOutbound(client.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	unknown.Abort(errors.New("never announced"))

	o, err := client.m.NewOutbound(client.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	in, err := server.m.Accept(server.conn, o.Reference())
	if err != nil {
		t.Fatal(err)
	}
	r := newReader[int](context.Background(), in)
	defer r.Close()
	o.Start(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	o.Abort(errors.New("the caller gave up"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = r.Recv(ctx)
	var re *stream.RemoteError
	if !errors.As(err, &re) || re.Message != "the caller gave up" {
		t.Fatalf("the consumer got %v, want the producer's abort", err)
	}
	// Nothing for the stream that was never announced: its packet would
	// have come first, on the same connection. (The started one may get a
	// second: the answer to the credit its consumer granted meanwhile.)
	if e := nextEnd(t, ends, "no end"); e.id != uint64(o.ID()) {
		t.Fatalf("an end for stream %d (%q), want only %d", e.id, e.text, o.ID())
	}
}
