package transport_test

import (
	"context"
	"fmt"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
)

// A hub serves peers on a listener of its own and dials others; every
// connection is announced on the bus.
func Example() {
	ctx := context.Background()
	b := bus.New()
	defer b.Close()
	server := transport.NewHub(b, "server")
	defer server.Close()
	connected, _ := bus.Subscribe[transport.ConnEvent](b, transport.TopicConnected)
	defer connected.Close()
	addr, err := server.Listen("127.0.0.1:0")
	if err != nil {
		panic(err)
	}

	cb := bus.New()
	defer cb.Close()
	client := transport.NewHub(cb, "client")
	defer client.Close()
	conn, err := client.Dial(ctx, "ws://"+addr.String())
	if err != nil {
		panic(err)
	}
	ev := <-connected.C()
	fmt.Println("client sees", conn.ID())
	fmt.Println("server sees", ev.PeerID)
	// Output:
	// client sees server
	// server sees client
}
