package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

//go:embed app.yaml
var defaultConfig []byte

// GreeterConfig is the application's own section of the configuration.
type GreeterConfig struct {
	Greeting string `json:"greeting"`
}

// Greeter is a module that exposes greeter@1.0.0. It keeps the
// application's accessor and reaches the Netron only when it starts.
type Greeter struct {
	netrons app.NetronProvider
	cfg     GreeterConfig
	node    *netron.Node
}

// NewGreeter reads the greeter section of the application's configuration.
func NewGreeter(a *app.App) (*Greeter, error) {
	g := &Greeter{netrons: a, cfg: GreeterConfig{Greeting: "Hi"}}
	if err := a.Config().Section("greeter", &g.cfg); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Greeter) Name() string { return "greeter" }

func (g *Greeter) Start(context.Context) error {
	n, err := g.netrons.Netron()
	if err != nil {
		return err
	}
	g.node = n
	return n.Expose("greeter@1.0.0", greeterService{greeting: g.cfg.Greeting})
}

func (g *Greeter) Stop(context.Context) error { return g.node.Unexpose("greeter@1.0.0") }

type greeterService struct{ greeting string }

// Greet is called by peers as "greet".
func (s greeterService) Greet(name string) string { return s.greeting + ", " + name + "!" }

// Connector is the seed's MyService: it gets the Netron as a constructor
// argument and connects to peers with it.
type Connector struct {
	netron *netron.Node
}

// NewConnector takes the Netron; asking the application for it creates it.
func NewConnector(n *netron.Node) *Connector { return &Connector{netron: n} }

func (c *Connector) Name() string                { return "connector" }
func (c *Connector) Start(context.Context) error { return nil }
func (c *Connector) Stop(context.Context) error  { return nil }

// ConnectToPeer connects to the node at address.
func (c *Connector) ConnectToPeer(ctx context.Context, address string) (*netron.Peer, error) {
	return c.netron.Connect(ctx, address)
}

func main() {
	configFile := flag.String("config", "", "configuration file (default: the embedded app.yaml)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, name := defaultConfig, "app.yaml"
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "basic:", err)
			os.Exit(1)
		}
		data, name = b, *configFile
	}
	if err := run(ctx, os.Stdout, data, name, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "basic:", err)
		os.Exit(1)
	}
}

// steps prints the application's lifecycle steps ("app: …" log messages).
type steps struct {
	out  io.Writer
	name string
}

func (s steps) Enabled(context.Context, slog.Level) bool { return true }
func (s steps) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s steps) WithGroup(string) slog.Handler            { return s }
func (s steps) Handle(_ context.Context, r slog.Record) error {
	msg, ok := strings.CutPrefix(r.Message, "app: ")
	if !ok {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "module" {
			msg += " (" + a.Value.String() + ")"
		}
		return true
	})
	fmt.Fprintf(s.out, "  [%s] %s\n", s.name, msg)
	return nil
}

func run(ctx context.Context, out io.Writer, configData []byte, configName string, environ []string) error {
	// Configuration: the file, then the environment, then validation.
	cfg, err := app.ParseConfig(configData, configName)
	if err != nil {
		return err
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(out, "config: netron.id = %s (from %s), request timeout %s\n",
		cfg.Netron.ID, cfg.Source("netron.id"), cfg.Netron.RequestTimeout)

	// The server application: a module that reaches the Netron through
	// the accessor when it starts.
	server, err := app.New(app.WithConfig(cfg), app.WithLogger(slog.New(steps{out, cfg.Netron.ID})))
	if err != nil {
		return err
	}
	greeter, err := NewGreeter(server)
	if err != nil {
		return err
	}
	if err := server.Register(greeter); err != nil {
		return err
	}
	fmt.Fprintln(out, "starting the server application:")
	if err := server.Start(ctx); err != nil {
		return err
	}
	node, err := server.Netron()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Netron ID: %s\n", node.ID())

	// The client application: its module gets the Netron as a
	// constructor argument.
	client, err := app.New(app.WithNetronConfig(netron.Config{ID: "client-node"}), app.WithLogger(slog.New(steps{out, "client-node"})))
	if err != nil {
		return err
	}
	clientNode, err := client.Netron()
	if err != nil {
		return err
	}
	connector := NewConnector(clientNode)
	if err := client.Register(connector); err != nil {
		return err
	}
	fmt.Fprintln(out, "starting the client application:")
	if err := client.Start(ctx); err != nil {
		return err
	}
	p, err := connector.ConnectToPeer(ctx, node.URL())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Connected to: %s\n", p.ID())
	svc, err := p.Service(ctx, "greeter@^1")
	if err != nil {
		return err
	}
	greeting, err := rpc.Call[string](ctx, svc, "greet", "Go")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s.greet(\"Go\") = %q\n", svc.QualifiedName(), greeting)

	fmt.Fprintln(out, "stopping the client application:")
	if err := client.Stop(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "stopping the server application:")
	return server.Stop(ctx)
}
