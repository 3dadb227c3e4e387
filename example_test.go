package netron_test

import (
	"context"
	"fmt"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

type Calculator struct{}

func (Calculator) Add(a, b float64) float64      { return a + b }
func (Calculator) Multiply(a, b float64) float64 { return a * b }

// One node exposes a versioned service, another connects over WebSocket and
// calls it.
func Example() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "calc-node", Host: "127.0.0.1", Server: true})
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)
	_ = server.Expose("calculator@1.0.0", Calculator{})

	client, _ := netron.New(netron.Config{ID: "client"})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}
	calc, _ := p.Service(ctx, "calculator@^1")
	sum, err := rpc.Call[float64](ctx, calc, "add", 2, 3)
	fmt.Println(p.ID(), calc.QualifiedName(), sum, err)
	// Output: calc-node calculator@1.0.0 5 <nil>
}

// Handlers subscribe to events by name (or by a "prefix*" pattern); Emit
// delivers to them in order, each handler in a goroutine of its own.
func ExampleNode_On() {
	ctx := context.Background()
	n, _ := netron.New(netron.Config{ID: "events-node"})
	_ = n.Start(ctx)
	defer n.Stop(ctx)

	got := make(chan netron.Event, 2)
	sub, err := n.On("order:*", func(e netron.Event) { got <- e })
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	_ = n.Emit(ctx, "order:created", "A-17", 3)
	_ = n.Emit(ctx, "order:shipped", "A-17")
	for range 2 {
		e := <-got
		fmt.Println(e.Name, e.Args, "from", e.Source)
	}
	// Output:
	// order:created [A-17 3] from events-node
	// order:shipped [A-17] from events-node
}

// A node subscribes to another node's events over the network, as a Titan
// peer would (the subscribe task), and receives them in order. Lifecycle
// events (peer:connect, service:expose, …) are subscribed to the same way.
func ExamplePeer_On() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "news-node", Host: "127.0.0.1", Server: true})
	_ = server.Start(ctx)
	defer server.Stop(ctx)
	client, _ := netron.New(netron.Config{ID: "reader"})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}

	got := make(chan netron.Event, 1)
	sub, err := p.On(ctx, "news", func(e netron.Event) { got <- e })
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	_ = server.Emit(ctx, "news", map[string]any{"headline": "first"})
	e := <-got
	fmt.Println(e.Name, e.Args[0], "from", e.Source)
	// Output: news map[headline:first] from news-node
}
