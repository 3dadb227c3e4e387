package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/discovery/redisdisc"
)

const serveDescription = `
Runs a node until Ctrl-C or SIGTERM, then shuts it down gracefully.

The configuration comes from --config FILE (YAML or JSON, the seed's shape
under the netron key; default $NETRON_CONFIG), then NETRON_… environment
variables (NETRON_PORT, NETRON_DISCOVERY_REDIS_HOST, …), then the flags
below. Without a port or server setting the node listens on port 9000.
The node's URL is printed once it listens; logs go to stderr.

A node that cannot listen (its port is taken) fails at once with exit code
1; an invalid configuration exits with 2 and names the field, as does a
configuration file that cannot be read.

Example configuration:
  netron:
    id: my-node
    port: 9000
    discovery:
      enabled: true
      redis: {host: localhost, port: 6379}
      interval: 5000   # milliseconds, or "5s"
      ttl: 15000
  logger: {level: info, format: text}
  shutdownTimeout: 10s

Examples:
  netron serve --config app.yaml
  NETRON_PORT=9001 netron serve --demo-services
  netron serve --discovery redis://10.0.0.5:6379 --advertise 10.0.0.11
`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := newFlags("serve", "[flags]", serveDescription, stderr)
	configFile := flags.String("config", os.Getenv("NETRON_CONFIG"), "configuration `file` (YAML or JSON)")
	id := flags.String("id", "", "node `id` (overrides netron.id)")
	host := flags.String("host", "", "`address` to bind (overrides netron.host; default every interface)")
	port := flags.Int("port", 0, "`port` to listen on (overrides netron.port; 0 picks a free port)")
	disc := flags.String("discovery", os.Getenv("NETRON_DISCOVERY"),
		"join discovery in Redis: a redis:// or rediss:// `URL`, or a configuration file whose netron.discovery section names the Redis (overrides netron.discovery.redis and turns discovery on; $NETRON_DISCOVERY sets the default)")
	advertise := flags.String("advertise", "", "`address` other nodes reach this one at: host, host:port or ws:// URL (overrides netron.advertise; default: the bound address, or an address of this host that is not loopback when bound to every interface)")
	demo := flags.Bool("demo-services", false, "expose the demo's calculator@1.0.0 (it emits "+EventComputed+" events) and data@1.0.0 (streamData produces a stream)")
	logLevel := flags.String("log-level", "", "`level` of the logs: debug, info, warn, error (overrides logger.level)")
	logFormat := flags.String("log-format", "", "`format` of the logs: text or json (overrides logger.format)")
	httpAddr := flags.String("http", "", "serve the node's Prometheus metrics at /metrics and its snapshots (for netron top) at /api/ on `address`, e.g. 127.0.0.1:9090")
	withUI := flags.Bool("ui", false, "also serve the live web view of the mesh at / (on --http's address; default 127.0.0.1:9090)")
	pos, err := parse(flags, args, stdout)
	if err == nil && len(pos) > 0 {
		err = usageError("unexpected argument %q", pos[0])
	}
	if err != nil {
		return exit(stderr, "serve", err)
	}
	cfg, err := app.Load(*configFile, os.Environ())
	if err != nil {
		return exit(stderr, "serve", configErr(err))
	}
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	n := &cfg.Netron
	if set["id"] {
		n.ID = *id
	}
	if set["host"] {
		n.Host = *host
	}
	if set["advertise"] {
		n.Advertise = *advertise
	}
	if *disc != "" {
		dc, err := discoveryFlag(*disc)
		if err != nil {
			return exit(stderr, "serve", err)
		}
		n.Discovery.Enabled, n.Discovery.Redis = true, dc.Redis
		if dc.Prefix != "" {
			n.Discovery.Prefix = dc.Prefix
		}
	}
	if set["port"] {
		n.Port, n.Server = *port, true
	} else if !n.Server && n.Port == 0 {
		n.Port = 9000
	}
	if set["log-level"] {
		cfg.Logger.Level = *logLevel
	}
	if set["log-format"] {
		cfg.Logger.Format = *logFormat
	}
	if err := cfg.Validate(); err != nil {
		return exit(stderr, "serve", configErr(err))
	}
	if *withUI && *httpAddr == "" {
		*httpAddr = "127.0.0.1:9090"
	}
	return exit(stderr, "serve", serve(ctx, cfg, serveOptions{demo: *demo, http: *httpAddr, ui: *withUI}, stdout, stderr))
}

// serveOptions are serve's flags beyond the node's configuration.
type serveOptions struct {
	demo bool
	http string // --http: where to serve metrics; "" for nowhere
	ui   bool
}

// discoveryFlag reads --discovery: a Redis URL, or a configuration file
// whose discovery section names the Redis (and maybe the prefix).
func discoveryFlag(v string) (netron.DiscoveryConfig, error) {
	if strings.Contains(v, "://") {
		return netron.DiscoveryConfig{Redis: netron.RedisConfig{URL: v}}, nil
	}
	cfg, err := app.Load(v, os.Environ())
	if err != nil {
		return netron.DiscoveryConfig{}, configErr(err)
	}
	dc := cfg.Netron.Discovery
	if dc.Redis.Host == "" && dc.Redis.Addrs == "" && dc.Redis.URL == "" {
		return netron.DiscoveryConfig{}, usageError("--discovery %s: netron.discovery.redis names no Redis (host, addrs or url)", v)
	}
	return dc, nil
}

// configErr makes an invalid or unreadable configuration a usage error
// (exit code 2).
func configErr(err error) error {
	if errors.Is(err, app.ErrInvalidConfig) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

func serve(ctx context.Context, cfg *app.Config, opts serveOptions, stdout, stderr io.Writer) error {
	var metrics *netron.Metrics
	if opts.http != "" {
		metrics = netron.NewMetrics(netron.MetricsOptions{})
		cfg.Netron.Metrics = metrics
	}
	a, err := app.New(app.WithConfig(cfg), app.WithLogOutput(stderr))
	if err != nil {
		return configErr(err)
	}
	// The process is ours: go-redis's own log lines (one per failed dial
	// during an outage, which discovery reports itself, once) go to the
	// node's logger instead of raw stderr.
	redisdisc.SetGoRedisLogger(a.Logger(), slog.LevelDebug)
	node, err := a.Netron() // serving is the point: create it
	if err != nil {
		return err
	}
	if opts.http != "" {
		obs, err := startObserve(opts.http, node, metrics, opts.ui)
		if err != nil {
			return err
		}
		defer obs.Close()
		fmt.Fprintf(stdout, "metrics on %s/metrics\n", obs.URL())
		if opts.ui {
			fmt.Fprintf(stdout, "live view on %s/\n", obs.URL())
		}
	}
	if opts.demo {
		err := a.Register(
			app.Expose(a, "calculator@1.0.0", &Calculator{node: node}),
			app.Expose(a, "data@1.0.0", DataService{}),
		)
		if err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	select {
	case <-a.Ready():
		fmt.Fprintf(stdout, "node %s listening on %s\n", node.ID(), node.URL())
	case err := <-errc:
		return err
	}
	err = <-errc
	fmt.Fprintf(stdout, "node %s stopped\n", node.ID())
	return err
}
