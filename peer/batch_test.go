package peer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/internal/wire"
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
