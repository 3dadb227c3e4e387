package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
)

// The commands that talk to a node can find it through discovery: with
// --discovery (a redis:// URL, or a configuration file whose
// netron.discovery section names the Redis), the node is the one offering
// the service called, or the one --node names by id. The command reads the
// membership with a discovery instance of its own that registers nothing:
// running a command does not make a member come and go.

// registerDiscovery adds --discovery and --prefix to fs.
func (c *clientFlags) registerDiscovery(fs *flag.FlagSet) {
	c.fs = fs
	fs.StringVar(&c.discovery, "discovery", os.Getenv("NETRON_DISCOVERY"),
		"find nodes through discovery: a redis:// or rediss:// `URL`, or a configuration file whose netron.discovery section names the Redis ($NETRON_DISCOVERY sets the default)")
	fs.StringVar(&c.prefix, "prefix", "", "discovery key `prefix` (default: the configuration file's, else netron:discovery)")
}

// nodeGiven reports whether --node was on the command line.
func (c *clientFlags) nodeGiven() bool {
	given := false
	if c.fs != nil {
		c.fs.Visit(func(f *flag.Flag) { given = given || f.Name == "node" })
	}
	return given
}

// openDiscovery opens a discovery instance that only reads.
func (c *clientFlags) openDiscovery() (*redisdisc.Discovery, error) {
	var ep redisdisc.Endpoint
	prefix := c.prefix
	switch {
	case c.discovery == "":
		return nil, usageError("no --discovery (a redis:// URL or a configuration file)")
	case strings.Contains(c.discovery, "://"):
		ep = redisdisc.Endpoint{URL: c.discovery}
	default:
		cfg, err := app.Load(c.discovery, os.Environ())
		if err != nil {
			return nil, configErr(err)
		}
		dc := cfg.Netron.Discovery
		ep = dc.Redis.Endpoint()
		if ep.URL == "" && len(ep.Addrs) == 0 {
			return nil, usageError("--discovery %s: netron.discovery.redis names no Redis (host, addrs or url)", c.discovery)
		}
		if prefix == "" {
			prefix = dc.Prefix
		}
	}
	// A short read block: Close waits for the stream reader's XREAD.
	opts := []redisdisc.Option{redisdisc.WithReadBlock(100 * time.Millisecond)}
	if prefix != "" {
		opts = append(opts, redisdisc.WithPrefix(prefix))
	}
	d, err := redisdisc.ConnectEndpoint(ep, opts...)
	if errors.Is(err, discovery.ErrInvalidOption) {
		return nil, usageError("--discovery: %v", err)
	}
	return d, err
}

// members returns the members discovery lists.
func (c *clientFlags) members(ctx context.Context) ([]discovery.NodeInfo, error) {
	d, err := c.openDiscovery()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return nodes, nil
}

// open connects to the node the command is for: nodeURL when the command
// line named one, else, with --discovery, the node --node names by id, or
// the best node offering service (highest matching version first, the
// next when one does not answer), or the only node of the cluster; else
// --node. With --wait it waits, for that long, for discovery to list such
// a node, as it waits for a node to listen. Reading discovery, waiting and
// every attempt keep one deadline, --timeout plus --wait: trying the next
// node never goes past what the caller allowed.
func (c *clientFlags) open(ctx context.Context, nodeURL, service string) (*client, error) {
	if nodeURL != "" || c.discovery == "" || isURL(c.node) && c.nodeGiven() {
		return c.connect(ctx, nodeURL)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout+c.wait)
	defer cancel()
	d, err := c.openDiscovery()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	until := time.Now().Add(c.wait)
	for {
		nodes, err := c.candidates(ctx, d, service)
		if err == nil {
			return c.connectFirst(ctx, nodes)
		}
		var nf notFound
		if !errors.As(err, &nf) || !time.Now().Before(until) {
			return nil, err
		}
		if refusedHook != nil {
			refusedHook()
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// notFound is the error of candidates when discovery lists no node the
// command could use (yet: --wait waits for one).
type notFound struct{ msg string }

func (e notFound) Error() string { return e.msg }

// candidates returns the nodes discovery lists that the command may use,
// in the order to try them (see open).
func (c *clientFlags) candidates(ctx context.Context, d discovery.Discovery, service string) ([]discovery.NodeInfo, error) {
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var servers []discovery.NodeInfo
	for _, n := range nodes {
		if !n.ClientOnly() {
			servers = append(servers, n)
		}
	}
	if c.nodeGiven() {
		for _, n := range servers {
			if n.ID == c.node {
				return []discovery.NodeInfo{n}, nil
			}
		}
		return nil, notFound{fmt.Sprintf("discovery lists no node %q (it has %s)", c.node, idList(servers))}
	}
	if service != "" {
		name, rng, _ := strings.Cut(service, "@")
		if rng == "latest" {
			rng = ""
		}
		if err := discovery.ValidateRange(rng); err != nil {
			return nil, usageError("%q: %v", service, err)
		}
		view := discovery.NewView()
		for _, n := range servers {
			view.Put(n, time.Minute, discovery.Revision{Incarnation: 1, Seq: 1}, time.Now())
		}
		offering, _ := view.Find(name, rng)
		if len(offering) == 0 {
			return nil, notFound{"no node in discovery offers " + service}
		}
		return offering, nil
	}
	switch len(servers) {
	case 0:
		return nil, notFound{"discovery lists no node with an address"}
	case 1:
		return servers, nil
	}
	return nil, usageError("discovery lists %d nodes (%s): name one with --node ID", len(servers), idList(servers))
}

// connectFirst connects to the first of nodes that answers, within ctx:
// once ctx has ended the others are not tried.
func (c *clientFlags) connectFirst(ctx context.Context, nodes []discovery.NodeInfo) (*client, error) {
	var errs []error
	for _, n := range nodes {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s at %s: not tried: %w", n.ID, n.Address, ctx.Err()))
			continue
		}
		cl, err := c.connect(ctx, n.Address)
		if err == nil {
			return cl, nil
		}
		errs = append(errs, fmt.Errorf("%s at %s: %w", n.ID, n.Address, err))
	}
	if len(nodes) == 1 {
		return nil, errors.Unwrap(errs[0])
	}
	return nil, errors.Join(errs...)
}

func isURL(s string) bool { return strings.HasPrefix(s, "ws://") || strings.HasPrefix(s, "wss://") }

func idList(nodes []discovery.NodeInfo) string {
	if len(nodes) == 0 {
		return "none"
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	return strings.Join(ids, ", ")
}

const nodesDescription = `
Lists the nodes of the cluster that discovery knows: their ids, the
addresses peers reach them at, the services they offer and when they last
heartbeated. Client-only members (nodes without a server, which nothing can
dial) are left out unless --all is given.

The cluster is the one --discovery names: a redis:// or rediss:// URL
(?addr=… for more Cluster seeds or sentinels, &master_name=… for Sentinel),
or a configuration file whose netron.discovery section names the Redis.

Examples:
  netron nodes --discovery redis://127.0.0.1:6379
  netron nodes --discovery app.yaml --json
  netron call --discovery redis://127.0.0.1:6379 'calculator@^1' add 2 3
`

// nodeJSON is one node in the --json output of nodes.
type nodeJSON struct {
	ID            string    `json:"id"`
	Address       string    `json:"address"`
	Services      []string  `json:"services"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
	ClientOnly    bool      `json:"clientOnly,omitempty"`
}

func runNodes(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("nodes", "[flags]", nodesDescription, stderr)
	var cf clientFlags
	cf.registerDiscovery(fs)
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "how long to wait for discovery")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "list client-only members too")
	pos, err := parse(fs, args, stdout)
	if err == nil && len(pos) > 0 {
		err = usageError("unexpected argument %q", pos[0])
	}
	if err != nil {
		return exit(stderr, "nodes", err)
	}
	return exit(stderr, "nodes", listNodes(ctx, &cf, *asJSON, *all, stdout))
}

func listNodes(ctx context.Context, cf *clientFlags, asJSON, all bool, stdout io.Writer) error {
	nodes, err := cf.members(ctx)
	if err != nil {
		return err
	}
	out := []nodeJSON{}
	for _, n := range nodes {
		if n.ClientOnly() && !all {
			continue
		}
		svcs := []string{}
		for _, s := range n.Services {
			svcs = append(svcs, s.Name+"@"+s.Version)
		}
		out = append(out, nodeJSON{ID: n.ID, Address: n.Address, Services: svcs, LastHeartbeat: n.LastSeen, ClientOnly: n.ClientOnly()})
	}
	if asJSON {
		return printJSON(stdout, out, true)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSERVICES\tLAST HEARTBEAT")
	for _, n := range out {
		addr := n.Address
		if n.ClientOnly {
			addr = "(client only)"
		}
		svcs := strings.Join(n.Services, ",")
		if svcs == "" {
			svcs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\n", n.ID, addr, svcs, time.Since(n.LastHeartbeat).Round(100*time.Millisecond))
	}
	return tw.Flush()
}
