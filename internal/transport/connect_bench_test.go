package transport_test

import (
	"context"
	"testing"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
)

// BenchmarkConnect measures the time from dialling to being able to send
// packets, for the three kinds of client: a Go peer (Hub.Dial), a Titan
// client (?id=, answers the hello with its client-id) and netron-browser
// (no id, names itself in its first message). Each iteration opens one
// connection and closes it.
func BenchmarkConnect(b *testing.B) {
	server := transport.NewHub(busFor(b), "server", transport.WithKeepAlive(-1, 0))
	b.Cleanup(func() { server.Close() })
	addr, err := server.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	url := "ws://" + addr.String()
	ctx := context.Background()
	b.Run("go", func(b *testing.B) {
		client := transport.NewHub(busFor(b), "client", transport.WithKeepAlive(-1, 0))
		b.Cleanup(func() { client.Close() })
		for b.Loop() {
			c, err := client.Dial(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("titan", func(b *testing.B) {
		for b.Loop() {
			ws, _, err := websocket.Dial(ctx, url+"/?id=titan-client", nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.Read(ctx); err != nil { // the hello
				b.Fatal(err)
			}
			if err := ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"client-id","id":"titan-client"}`)); err != nil {
				b.Fatal(err)
			}
			ws.CloseNow()
		}
	})
	b.Run("browser", func(b *testing.B) {
		for b.Loop() {
			ws, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.Read(ctx); err != nil { // the hello
				b.Fatal(err)
			}
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"client-id","id":"browser-client"}`)); err != nil {
				b.Fatal(err)
			}
			ws.CloseNow()
		}
	})
}

// busFor returns a bus closed with b.
func busFor(b *testing.B) *bus.Bus {
	bs := bus.New()
	b.Cleanup(func() { bs.Close() })
	return bs
}
