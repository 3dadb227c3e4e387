package netron_test

// The go blocks of README.md, docs/cli.md and docs/bus.md, as code that compiles: the
// docs test (internal/docstest) fails when a block is not found here (or
// in another .go file), so a block cannot drift from the API. The
// functions are not run; the examples and tests run the same calls.

import (
	"context"
	"fmt"
	"log"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

// README, "A tour" (Calculator is in example_test.go).
func docsTourServer(ctx context.Context) error {
	server, err := netron.New(netron.Config{ID: "calculator-node", Port: 9000})
	err = server.Start(ctx) // fails if it cannot bind
	defer server.Stop(ctx)
	err = server.Expose("calculator@1.0.0", Calculator{}) // Add → "add", Multiply → "multiply"
	return err
}

func docsTourClient(ctx context.Context) (float64, error) {
	client, err := netron.New(netron.Config{ID: "client-node"})
	err = client.Start(ctx)
	p, err := client.Connect(ctx, "ws://127.0.0.1:9000")
	calc, err := p.Service(ctx, "calculator@^1") // exact, latest ("calculator") or a semver range
	sum, err := rpc.Call[float64](ctx, calc, "add", 2, 3)
	return sum, err
}

// README, "Events".
func docsEvents(ctx context.Context, node *netron.Node, p *netron.Peer, order any, handler func(netron.Event)) error {
	sub, err := node.On("peer:connected", func(e netron.Event) { fmt.Println(e.Name) }) // Titan's names work too: "peer:connect"
	defer sub.Close()
	orders, err := node.Events("order:*") // prefix and wildcard subscriptions, as a channel
	for e := range orders.C() {
		fmt.Println(e.Name)
	}
	err = node.Emit(ctx, "order:created", order)           // to local handlers and subscribed peers
	remote, err := p.On(ctx, "order:*", handler)           // a remote node's events
	typed, err := netron.Subscribe[netron.PeerEvent](node) // typed lifecycle events
	_, _ = remote, typed
	return err
}

// README, "Streams".
func docsStreams(ctx context.Context, data *rpc.Service) {
	for chunk, err := range rpc.Stream[[]byte](ctx, data, "streamData") {
		fmt.Println(len(chunk), err)
	}
}

// README, "Discovery".
func docsDiscovery(ctx context.Context) {
	node, _ := netron.New(netron.Config{ID: "shop", Discovery: netron.DiscoveryConfig{
		Enabled: true,                                  // in-memory registry of the process…
		Redis:   netron.RedisConfig{Host: "127.0.0.1"}, // …or Redis Streams
	}})
	svc, _ := node.Service(ctx, "orders@^1") // every node offering orders@^1, balanced
	_ = svc
}

// docs/balancing.md.
func docsBalancing(ctx context.Context, node *netron.Node, store any) error {
	calc, err := node.Service(ctx, "calculator@^1")                                           // power of two choices
	inTurn, err := node.Service(ctx, "calculator@^1", netron.WithBalancer(netron.RoundRobin)) // in turn
	pinned, err := node.Service(ctx, "calculator@^1", netron.WithPinned())                    // one instance for good
	_, _, _ = calc, inTurn, pinned
	node.Expose("kv@1.0.0", store, rpc.Idempotent("get", "put"))
	return err
}

// README, "Applications and the command line".
func docsApp(ctx context.Context) error {
	cfg, err := app.LoadConfig("app.yaml") // YAML or JSON under `netron:`, then NETRON_… variables
	a, err := app.New(app.WithConfig(cfg))
	a.Register(app.Expose(a, "calculator@1.0.0", Calculator{}))
	err = a.Run(ctx)
	return err
}

// docs/cli.md, "Applications".
func docsCLIApp(ctx context.Context) error {
	cfg, err := app.LoadConfig("app.yaml")
	a, err := app.New(app.WithConfig(cfg))
	a.Register(
		app.Expose(a, "calculator@1.0.0", Calculator{}), // the Go counterpart of a Titan @Service class
		NewMonitor(a), // keeps the accessor: calls a.Netron() when it needs it
	)
	err = a.Run(ctx) // starts, waits for ctx / SIGINT / SIGTERM, shuts down within shutdownTimeout
	return err
}

// Monitor is docs/cli.md's module that keeps the application's Netron
// accessor and asks for the Netron when it needs it.
type Monitor struct{ netron app.NetronProvider }

func NewMonitor(p app.NetronProvider) *Monitor { return &Monitor{netron: p} }

func (m *Monitor) Start(context.Context) error {
	n, err := m.netron.Netron()
	if err == nil {
		_, err = n.On(netron.EventPeerConnect, func(e netron.Event) { fmt.Println("peer connected:", e.Args) })
	}
	return err
}

func (m *Monitor) Stop(context.Context) error { return nil }

// docs/bus.md, "Attaching Watermill".
func docsBusObserve(ctx context.Context, node *netron.Node) {
	r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	sc := node.Bus().Scope()
	r.AddNoPublisherHandler("calls", netron.TopicRequests, sc, func(m *message.Message) error {
		if m.Metadata.Get(netron.MetaKind) == netron.KindCall {
			args, _ := netron.DecodeArgs(m)
			log.Println(m.Metadata.Get(netron.MetaPeer), m.Metadata.Get(netron.MetaService),
				m.Metadata.Get(netron.MetaMethod), args)
		}
		return nil
	})
	go r.Run(ctx)
}

// docs/bus.md, "Cluster-wide events".
func docsClusterEvents() *netron.Node {
	node, _ := netron.New(netron.Config{
		Discovery:     netron.DiscoveryConfig{Redis: netron.RedisConfig{Host: "127.0.0.1"}},
		ClusterEvents: netron.ClusterEventsConfig{Enabled: true}, // Redis Streams on Discovery.Redis
	})
	return node
}
