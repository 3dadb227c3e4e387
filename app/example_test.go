package app_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

// Greeter is a module that needs the Netron: it takes the accessor and
// reaches the Netron when it starts.
type Greeter struct {
	netrons app.NetronProvider
}

func (g *Greeter) Start(context.Context) error {
	n, err := g.netrons.Netron()
	if err != nil {
		return err
	}
	return n.Expose("greeter@1.0.0", g)
}

func (g *Greeter) Stop(context.Context) error { return nil }

// Hello is called by peers as "hello".
func (g *Greeter) Hello(name string) string { return "hello, " + name }

// An application with a configuration file's content, a module that
// exposes a service, and a Netron created because that module accessed it.
func Example() {
	ctx := context.Background()
	cfg, err := app.ParseConfig([]byte(`
netron:
  id: greeter-node
  host: 127.0.0.1
  server: true   # port 0: any free port
`), "app.yaml")
	if err != nil {
		panic(err)
	}
	a, err := app.New(app.WithConfig(cfg), app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	_ = a.Register(&Greeter{netrons: a})
	if err := a.Start(ctx); err != nil {
		panic(err)
	}
	defer a.Stop(ctx)

	node, _ := a.Netron()
	client, _ := netron.New(netron.Config{ID: "client"})
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, node.URL())
	if err != nil {
		panic(err)
	}
	greeter, _ := p.Service(ctx, "greeter")
	msg, err := rpc.Call[string](ctx, greeter, "hello", "Titan")
	fmt.Println(p.ID(), msg, err)
	// Output: greeter-node hello, Titan <nil>
}

// A configuration error names the field and where its value came from.
func ExampleLoad() {
	_, err := app.Load("", []string{"NETRON_PORT=90000"})
	fmt.Println(err)
	// Output: invalid config: netron.port (NETRON_PORT): 90000 is not a TCP port (0-65535)
}
