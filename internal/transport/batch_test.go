package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

func rawDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, url+"/?id=raw", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	return ws
}

func batchPacket(frames ...[]byte) []byte {
	b := wire.AppendHeader(nil, 0, uint8(wire.TypeExt))
	b = wire.AppendArrayHeader(b, 1+len(frames))
	b = wire.AppendString(b, "batch")
	for _, f := range frames {
		b = wire.AppendBin(b, f)
	}
	return b
}

// The packets of a batch message are handled in order, like separate
// messages; a malformed or nested batch closes the connection.
func TestBatchMessages(t *testing.T) {
	server := newHub(t, "server")
	url := serve(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	ws := rawDial(t, url)
	ping := func(id byte) []byte { return []byte{0, 0, 0, id, 0x40, id} }
	if err := ws.Write(ctx, websocket.MessageBinary, batchPacket(ping(1), ping(2), ping(3))); err != nil {
		t.Fatal(err)
	}
	for id := byte(1); id <= 3; id++ {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg) != string([]byte{0, 0, 0, id, 0x00, id}) {
			t.Fatalf("pong %d: %x", id, msg)
		}
	}

	for name, msg := range map[string][]byte{
		"nested batch":      batchPacket(batchPacket(ping(1))),
		"element not a bin": append(wire.AppendString(append(wire.AppendHeader(nil, 0, 0x08), 0x92), "batch"), 0x05),
		"bad inner packet":  batchPacket([]byte{0xde, 0xad}),
	} {
		ws := rawDial(t, url)
		if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		_, _, err := ws.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusProtocolError {
			t.Errorf("%s: %v, want close 1002", name, err)
		}
	}
}

// A batch message never exceeds the batch bound nor the read limit: each
// packet fits the peer's limit, so the message they share must fit too.
// (A batch used to take one more packet whatever its size once below the
// bound, and the peer closed the connection as "message too big".)
func TestBatchFitsReadLimit(t *testing.T) {
	server := newHub(t, "server", transport.WithReadLimit(1<<20))
	client := newHub(t, "client", transport.WithReadLimit(1<<20))
	url := serve(t, server)
	disc := events(t, server, transport.TopicDisconnected)
	got, err := bus.NewTopic[transport.Inbound](server.Bus(), transport.TopicResponses).Subscribe(bus.WithBuffer(64))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	c.SetExtensions(&transport.Extensions{Version: 1, Names: []string{transport.ExtensionBatch}})
	// Responses to requests never made: the server only counts them.
	packet := func(n int) []byte {
		b := wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, false, 0))
		return wire.AppendBin(b, make([]byte, n))
	}
	const pairs = 10
	for range pairs {
		for _, n := range []int{200 << 10, 900 << 10} {
			if err := c.Queue(context.Background(), packet(n), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 2 * pairs {
		select {
		case <-got.C():
		case ev := <-disc.C():
			t.Fatalf("server closed the connection after %d of %d packets: %v", i, 2*pairs, ev.Err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d packets arrived", i, 2*pairs)
		}
	}
}

// A packet over the read limit closes the connection with 1009 (sent by
// coder/websocket) and, on our side, an error that matches peer.ErrProtocol.
func TestOverLimitIsProtocolError(t *testing.T) {
	server := newHub(t, "server", transport.WithReadLimit(1<<10))
	url := serve(t, server)
	disc := events(t, server, transport.TopicDisconnected)
	ws := rawDial(t, url)
	p := wire.AppendBin(wire.AppendHeader(nil, 1, wire.Flags(wire.TypeCall, true, 0)), make([]byte, 2<<10))
	if err := ws.Write(context.Background(), websocket.MessageBinary, p); err != nil {
		t.Fatal(err)
	}
	ev := next(t, disc.C())
	if !errors.Is(ev.Err, peer.ErrProtocol) || !errors.Is(ev.Err, peer.ErrDisconnected) {
		t.Fatalf("disconnected with %v, want peer.ErrProtocol", ev.Err)
	}
	if _, _, err := ws.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("peer saw %v, want close status 1009", err)
	}
}

// A peer that closes with 1009 because our message exceeded its read limit
// is reported as such, not as our own limit.
func TestPeerReadLimitReported(t *testing.T) {
	server := newHub(t, "server", transport.WithReadLimit(1<<10))
	url := serve(t, server)
	c, err := newHub(t, "client").Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	p := wire.AppendBin(wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, true, 0)), make([]byte, 2<<10))
	if err := c.Send(context.Background(), p, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open")
	}
	if err := c.Err(); errors.Is(err, peer.ErrProtocol) || !strings.Contains(err.Error(), "larger than its read limit") {
		t.Fatalf("closed with %v", err)
	}
}
