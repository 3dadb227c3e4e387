package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
)

// Order is the payload of the order events. Events travel as msgpack; a
// subscriber decodes the arguments with Event.Decode.
type Order struct {
	ID    int     `msgpack:"id"`
	Total float64 `msgpack:"total,omitempty"`
}

// NetworkMonitor is the seed's: it gets the Netron injected and listens to
// peer and service events. Each event becomes a line on Lines.
type NetworkMonitor struct {
	netron *netron.Node
	Lines  chan string
	subs   []*netron.Subscription[netron.Event]
}

// NewNetworkMonitor takes the Netron as a constructor argument.
func NewNetworkMonitor(n *netron.Node) *NetworkMonitor {
	return &NetworkMonitor{netron: n, Lines: make(chan string, 64)}
}

func (m *NetworkMonitor) Name() string { return "network-monitor" }

// Start subscribes; the handlers run in goroutines of their own, one event
// at a time, in order.
func (m *NetworkMonitor) Start(context.Context) error {
	for name, fn := range map[string]func(netron.Event){
		netron.EventPeerConnected:    m.onPeerConnected,
		netron.EventPeerDisconnected: m.onPeerDisconnected,
		netron.EventServiceExposed:   m.onServiceExposed,
	} {
		sub, err := m.netron.On(name, fn)
		if err != nil {
			return err
		}
		m.subs = append(m.subs, sub)
	}
	return nil
}

// Stop unsubscribes: once it returns, no handler runs.
func (m *NetworkMonitor) Stop(context.Context) error {
	for _, s := range m.subs {
		s.Close()
	}
	return nil
}

func (m *NetworkMonitor) onPeerConnected(e netron.Event) {
	pe := e.Args[0].(netron.PeerEvent)
	m.Lines <- fmt.Sprintf("Peer %s connected", pe.PeerID)
}

func (m *NetworkMonitor) onPeerDisconnected(e netron.Event) {
	pe := e.Args[0].(netron.PeerEvent)
	m.Lines <- fmt.Sprintf("Peer %s disconnected", pe.PeerID)
}

func (m *NetworkMonitor) onServiceExposed(e netron.Event) {
	se := e.Args[0].(netron.ServiceEvent)
	m.Lines <- fmt.Sprintf("Service exposed: %s", se.QualifiedName)
}

// onOrder handles the order events of a peer.
func (m *NetworkMonitor) onOrder(e netron.Event) {
	var o Order
	if err := e.Decode(0, &o); err != nil {
		m.Lines <- fmt.Sprintf("%s from %s: undecodable: %v", e.Name, e.Source, err)
		return
	}
	m.Lines <- fmt.Sprintf("%s from %s: order %d %v", e.Name, e.Source, o.ID, o.Total)
}

// Stats is a service the monitor exposes once it is up.
type Stats struct{}

// Uptime is a placeholder method.
func (Stats) Uptime() string { return "up" }

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
}

func newApp(id string, server bool) (*app.App, *netron.Node, error) {
	a, err := app.New(
		app.WithNetronConfig(netron.Config{ID: id, Host: "127.0.0.1", Server: server}),
		app.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return nil, nil, err
	}
	n, err := a.Netron()
	return a, n, err
}

func run(ctx context.Context, out io.Writer) error {
	// expect prints the next n lines of the monitor, in the order they
	// come; every step below causes exactly the events it waits for.
	var monitor *NetworkMonitor
	expect := func(n int) error {
		for range n {
			select {
			case line := <-monitor.Lines:
				fmt.Fprintf(out, "  monitor: %s\n", line)
			case <-ctx.Done():
				return fmt.Errorf("waiting for an event: %w", ctx.Err())
			}
		}
		return nil
	}

	// The orders node emits its events to whoever subscribes.
	ordersApp, orders, err := newApp("orders-node", true)
	if err != nil {
		return err
	}
	if err := ordersApp.Start(ctx); err != nil {
		return err
	}
	ordersStopped := false
	defer func() {
		if !ordersStopped {
			ordersApp.Stop(context.Background())
		}
	}()

	// The monitor application: its module gets the Netron injected.
	monApp, mon, err := newApp("monitor-node", false)
	if err != nil {
		return err
	}
	monitor = NewNetworkMonitor(mon)
	monApp.Register(monitor)
	if err := monApp.Start(ctx); err != nil {
		return err
	}
	defer monApp.Stop(context.Background())

	fmt.Fprintln(out, "monitor-node connects to orders-node")
	p, err := mon.Connect(ctx, orders.URL())
	if err != nil {
		return err
	}
	if err := expect(1); err != nil {
		return err
	}

	fmt.Fprintln(out, `monitor-node subscribes to "order:*" on orders-node`)
	if _, err := p.On(ctx, "order:*", monitor.onOrder); err != nil {
		return err
	}
	fmt.Fprintln(out, "orders-node emits order:created and order:shipped")
	if err := orders.Emit(ctx, "order:created", Order{ID: 1, Total: 9.5}); err != nil {
		return err
	}
	if err := orders.Emit(ctx, "order:shipped", Order{ID: 1}); err != nil {
		return err
	}
	if err := expect(2); err != nil {
		return err
	}

	fmt.Fprintln(out, "monitor-node exposes stats@1.0.0")
	if err := mon.Expose("stats@1.0.0", Stats{}); err != nil {
		return err
	}
	if err := expect(1); err != nil {
		return err
	}

	fmt.Fprintln(out, "orders-node stops")
	ordersStopped = true
	if err := ordersApp.Stop(ctx); err != nil {
		return err
	}
	return expect(1)
}
