// Command distributed is the seed's multi-node example: three nodes find
// each other through discovery and call each other's services by name,
// without knowing each other's addresses.
//
//	go run ./examples/distributed                          # in-memory discovery (the embedded default)
//	go run ./examples/distributed -redis 127.0.0.1:6379    # discovery over Redis Streams
//
// With Redis unreachable each node still starts (it warns on stderr that
// it runs and is announced when Redis is back), but nothing can be found:
// the program says so after a few seconds and exits with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/rpc"
)

// Inventory is offered by the node "warehouse".
type Inventory struct{}

// Stock returns how many of item are in stock.
func (Inventory) Stock(item string) int { return len(item) * 10 }

// Pricing is offered by the node "pricing".
type Pricing struct{}

// Price returns the unit price of item in cents.
func (Pricing) Price(item string) int { return 100 + len(item) }

// Orders is offered by the node "orders"; it calls the other two through
// discovery.
type Orders struct{ node *netron.Node }

// Quote asks inventory and pricing for item and returns a summary.
func (o Orders) Quote(ctx context.Context, item string, qty int) (string, error) {
	inv, err := o.node.Service(ctx, "inventory@^1")
	if err != nil {
		return "", err
	}
	stock, err := rpc.Call[int](ctx, inv, "stock", item)
	if err != nil {
		return "", err
	}
	pr, err := o.node.Service(ctx, "pricing@^2")
	if err != nil {
		return "", err
	}
	price, err := rpc.Call[int](ctx, pr, "price", item)
	if err != nil {
		return "", err
	}
	if qty > stock {
		return "", rpc.NewError(409, fmt.Sprintf("only %d %s in stock", stock, item), map[string]any{"stock": stock})
	}
	return fmt.Sprintf("%d × %s at %d¢ = %d¢ (%d in stock at %s, priced by %s)", qty, item, price, qty*price, stock, inv.PeerID(), pr.PeerID()), nil
}

func main() {
	redisAddr := flag.String("redis", "", "Redis address host:port for discovery (default: in-memory discovery)")
	password := flag.String("redis-password", "", "Redis password")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Warnings of the nodes (such as "discovery is unreachable") go to
	// stderr. go-redis logs through one logger per process; this program
	// owns its process, so it sends those lines there too, instead of
	// go-redis printing one line per failed dial on its own.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	redisdisc.SetGoRedisLogger(logger, slog.LevelDebug)
	if err := run(ctx, os.Stdout, logger, *redisAddr, *password); err != nil {
		fmt.Fprintln(os.Stderr, "distributed:", err)
		os.Exit(1)
	}
}

// discoveryWait bounds the wait for the nodes to see each other.
const discoveryWait = 5 * time.Second

func run(ctx context.Context, out io.Writer, logger *slog.Logger, redisAddr, password string) error {
	dc := netron.DiscoveryConfig{Enabled: true, Interval: time.Second, TTL: 3 * time.Second}
	if redisAddr != "" {
		host, port, err := net.SplitHostPort(redisAddr)
		if err != nil {
			return err
		}
		p, _ := strconv.Atoi(port)
		dc.Redis = netron.RedisConfig{Host: host, Port: p, Password: password}
		dc.Prefix = "netron:example:" + strconv.FormatInt(time.Now().UnixNano(), 36)
		fmt.Fprintln(out, "discovery: Redis at", redisAddr)
	} else {
		fmt.Fprintln(out, "discovery: in-memory (embedded default)")
	}
	start := func(id, service string, v func(*netron.Node) any) (*netron.Node, error) {
		n, err := netron.New(netron.Config{ID: id, Host: "127.0.0.1", Server: true, Discovery: dc, Logger: logger})
		if err != nil {
			return nil, err
		}
		if err := n.Expose(service, v(n)); err != nil {
			return nil, err
		}
		if err := n.Start(ctx); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "%s offers %s\n", id, service)
		return n, nil
	}
	var nodes []*netron.Node
	defer func() {
		for _, n := range nodes {
			n.Stop(context.Background())
		}
	}()
	for _, spec := range []struct {
		id, service string
		v           func(*netron.Node) any
	}{
		{"warehouse", "inventory@1.4.0", func(*netron.Node) any { return Inventory{} }},
		{"pricing", "pricing@2.1.0", func(*netron.Node) any { return Pricing{} }},
		{"orders", "orders@1.0.0", func(n *netron.Node) any { return Orders{node: n} }},
	} {
		n, err := start(spec.id, spec.service, spec.v)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	orders := nodes[2]
	// Wait until every node is visible (Redis: a few milliseconds). A node
	// whose Redis is unreachable keeps running and is announced once Redis
	// is back; until then nobody can find it.
	wctx, cancel := context.WithTimeout(ctx, discoveryWait)
	defer cancel()
	for {
		all, err := orders.Discovery().Nodes(wctx)
		if errors.Is(err, discovery.ErrUnavailable) || wctx.Err() != nil {
			fmt.Fprintf(out, "discovery: Redis at %s is unreachable: the nodes keep running and are announced when it is back, "+
				"but until then they cannot find each other; gave up after %v\n", redisAddr, discoveryWait)
			return fmt.Errorf("no discovery: %w", discovery.ErrUnavailable)
		}
		if err != nil {
			return err
		}
		if len(all) >= 3 {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	// A client that knows only the service name.
	client, err := netron.New(netron.Config{ID: "shop", Discovery: dc, Logger: logger})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	nodes = append(nodes, client)
	svc, err := client.Service(ctx, "orders@^1")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "shop found %s on %s\n", svc.QualifiedName(), svc.PeerID())
	quote, err := rpc.Call[string](ctx, svc, "quote", "widget", 3)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "quote:", quote)
	_, err = rpc.Call[string](ctx, svc, "quote", "widget", 1000)
	fmt.Fprintf(out, "too many: %v\nits code, for a program: rpc.Code(err) = %d\n", err, rpc.Code(err))
	return nil
}
