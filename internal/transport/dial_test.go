package transport_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
)

type stateKey struct{}

// BeforeStart attaches state that the handlers of the connected
// announcement already see.
func TestDialBeforeStart(t *testing.T) {
	server := newHub(t, "server")
	client := newHub(t, "client")
	url := serve(t, server)
	var sawState atomic.Bool
	unsub, err := bus.NewTopic[transport.ConnEvent](client.Bus(), transport.TopicConnected).SubscribeFunc(func(_ context.Context, ev transport.ConnEvent) {
		v, ok := ev.Conn.Value(stateKey{})
		sawState.Store(ok && v == "attached")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	var seen *transport.Conn
	c, err := client.Dial(context.Background(), url, transport.BeforeStart(func(c *transport.Conn) {
		seen = c
		c.LoadOrStoreValue(stateKey{}, "attached")
	}))
	if err != nil {
		t.Fatal(err)
	}
	if seen != c {
		t.Fatal("BeforeStart did not get the dialled connection")
	}
	if !sawState.Load() {
		t.Fatal("the connected handler ran before BeforeStart")
	}
}
