package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

const demoDescription = `
Runs the main job on the embedded default, in this process, with no Redis:
three nodes, each an application (package app), find each other through
in-memory discovery (the default when discovery is enabled without a Redis
host); the gateway asks for services by version range and discovery
connects it, it calls the calculator and receives the events the
calculator emits, reads a stream from the data node, and sees the data
node leave. It prints what happens and exits 0.

Examples:
  netron demo
  netron demo --verbose   # the applications' logs on stderr
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "[flags]", demoDescription, stderr)
	verbose := fs.Bool("verbose", false, "log the applications' lifecycle to stderr")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	pos, err := parse(fs, args, stdout)
	if err == nil && len(pos) > 0 {
		err = usageError("unexpected argument %q", pos[0])
	}
	if err != nil {
		return exit(stderr, "demo", err)
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	d := &demo{out: stdout, logger: logger}
	return exit(stderr, "demo", d.run(ctx))
}

// DataService is the seed's stream example: data@1.0.0 "streamData".
type DataService struct{}

// StreamData produces n chunks, "Chunk 0" to "Chunk n-1", a few
// milliseconds apart. It stops when the consumer does.
func (DataService) StreamData(ctx context.Context, n int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for i := range n {
			if i > 0 {
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
			if !yield(fmt.Appendf(nil, "Chunk %d", i), nil) {
				return
			}
		}
	}
}

type demo struct {
	out    io.Writer
	logger *slog.Logger
}

func (d *demo) say(who, format string, args ...any) {
	fmt.Fprintf(d.out, "%-16s %s\n", who+":", fmt.Sprintf(format, args...))
}

// nodeConfig is the configuration of a demo node: loopback, and discovery
// on the embedded default (the process-wide in-memory registry, as
// "discovery: {enabled: true}" without a Redis host gives).
func nodeConfig(id string, server bool) netron.Config {
	return netron.Config{ID: id, Host: "127.0.0.1", Server: server, Discovery: netron.DiscoveryConfig{Enabled: true}}
}

// startApp starts an application whose module exposes a service.
func (d *demo) startApp(ctx context.Context, id, service string, impl func(*netron.Node) any) (*app.App, error) {
	a, err := app.New(app.WithNetronConfig(nodeConfig(id, true)), app.WithLogger(d.logger.With("app", id)))
	if err != nil {
		return nil, err
	}
	node, err := a.Netron()
	if err != nil {
		return nil, err
	}
	if err := a.Register(app.Expose(a, service, impl(node))); err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	d.say(id, "listening on loopback, exposes %s, registered in discovery", service)
	return a, nil
}

func stopApp(a *app.App) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.Stop(ctx)
}

// eventKey names an event of the gateway for expect.
func eventKey(e netron.Event) string {
	switch v := e.Args[0].(type) {
	case netron.NodeEvent:
		return e.Name + " " + v.NodeID
	case netron.ServiceDiscovered:
		return e.Name + " " + v.QualifiedName + " on " + v.NodeID
	case netron.PeerEvent:
		return e.Name + " " + v.PeerID
	}
	return e.Name
}

// expect waits until the gateway has seen every one of keys, in any order
// (events of different sources have no order between them), and ignores
// the others. It returns the keys in the order given.
func expect(ctx context.Context, events <-chan netron.Event, keys ...string) ([]string, error) {
	missing := map[string]bool{}
	for _, k := range keys {
		missing[k] = true
	}
	for len(missing) > 0 {
		select {
		case e := <-events:
			delete(missing, eventKey(e))
		case <-ctx.Done():
			var left []string
			for k := range missing {
				left = append(left, k)
			}
			return nil, fmt.Errorf("waiting for %v: %w", left, ctx.Err())
		}
	}
	return keys, nil
}

func (d *demo) run(ctx context.Context) (err error) {
	fmt.Fprintln(d.out, "netron demo: three nodes in one process, in-memory discovery, no Redis")
	fmt.Fprintln(d.out)
	// The gateway: an application whose Netron has no server. It follows
	// its own events: discovery's and its connections'.
	gwApp, err := app.New(app.WithNetronConfig(nodeConfig("gateway", false)), app.WithLogger(d.logger.With("app", "gateway")))
	if err != nil {
		return err
	}
	gw, err := gwApp.Netron()
	if err != nil {
		return err
	}
	events := make(chan netron.Event, 256)
	sub, err := gw.On("*", func(e netron.Event) {
		if len(e.Args) == 1 {
			select {
			case events <- e:
			default: // more than the demo waits for
			}
		}
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := gwApp.Start(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopApp(gwApp)) }()
	show := func(keys ...string) error {
		got, err := expect(ctx, events, keys...)
		for _, k := range got {
			d.say("gateway", "event %s", k)
		}
		return err
	}

	// Two service nodes; discovery tells the gateway.
	calc, err := d.startApp(ctx, "calculator-node", "calculator@1.0.0", func(n *netron.Node) any { return &Calculator{node: n} })
	if err != nil {
		return err
	}
	defer stopApp(calc)
	if err := show("node:joined calculator-node", "service:discovered calculator@1.0.0 on calculator-node"); err != nil {
		return err
	}
	data, err := d.startApp(ctx, "data-node", "data@1.0.0", func(*netron.Node) any { return DataService{} })
	if err != nil {
		return err
	}
	dataStopped := false
	defer func() {
		if !dataStopped {
			stopApp(data)
		}
	}()
	if err := show("node:joined data-node", "service:discovered data@1.0.0 on data-node"); err != nil {
		return err
	}

	// Ask for the calculator by range: discovery finds the node, the
	// gateway connects to it.
	calcSvc, err := gw.Service(ctx, "calculator@^1")
	if err != nil {
		return err
	}
	if err := show("peer:connect calculator-node"); err != nil {
		return err
	}
	d.say("gateway", "calculator@^1 is %s on %s, methods %v", calcSvc.QualifiedName(), calcSvc.PeerID(), calcSvc.Methods())
	var calcPeer *netron.Peer
	for _, p := range gw.Peers() {
		if p.ID() == calcSvc.PeerID() {
			calcPeer = p
		}
	}
	if calcPeer == nil {
		return fmt.Errorf("no connection to %s", calcSvc.PeerID())
	}
	computed := make(chan netron.Event, 16)
	if _, err := calcPeer.On(ctx, EventComputed, func(e netron.Event) { computed <- e }); err != nil {
		return err
	}
	d.say("gateway", "subscribed to %s on %s", EventComputed, calcPeer.ID())
	for _, c := range []struct {
		method string
		a, b   float64
	}{{"add", 2, 3}, {"multiply", 4, 5}} {
		r, err := rpc.Call[float64](ctx, calcSvc, c.method, c.a, c.b)
		if err != nil {
			return err
		}
		d.say("gateway", "%s(%v, %v) = %v", c.method, c.a, c.b, r)
		select {
		case ev := <-computed:
			b, _ := marshalJSON(ev.Args[0], false)
			d.say("gateway", "event %s from %s: %s", ev.Name, ev.Source, b)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", EventComputed, ctx.Err())
		}
	}

	// A stream from the data node.
	dataSvc, err := gw.Service(ctx, "data@^1")
	if err != nil {
		return err
	}
	if err := show("peer:connect data-node"); err != nil {
		return err
	}
	d.say("gateway", "data@^1 is %s on %s", dataSvc.QualifiedName(), dataSvc.PeerID())
	chunks := 0
	for chunk, err := range rpc.Stream[[]byte](ctx, dataSvc, "streamData", 5) {
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		d.say("gateway", "stream chunk %d: %q", chunks, chunk)
		chunks++
	}
	d.say("gateway", "stream complete: %d chunks", chunks)

	// The data node leaves: it deregisters, then closes its connections.
	d.say("data-node", "stopping")
	dataStopped = true
	if err := stopApp(data); err != nil {
		return err
	}
	if err := show("node:left data-node", "peer:disconnect data-node"); err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "demo complete: 3 nodes, 2 calls, 2 events, 1 stream of %d chunks\n", chunks)
	return nil
}
