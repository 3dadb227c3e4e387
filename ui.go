package netron

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/ui"
)

// UIHandler returns the live web view of this node and its cluster: a
// page at / showing the nodes discovery knows with their services, this
// node's connections, call and error rates per service and event rates,
// updated every second without a reload (server-sent events from
// /api/events). /api/snapshot returns the same data once, as JSON, for
// netron top. The counts come from Config.Metrics: without it the page
// shows the nodes and connections and no rates. netron serve --ui mounts
// it; see docs/observability.md.
func (n *Node) UIHandler() http.Handler {
	return ui.Handler(n.snapshot, 0)
}

// uiHandler is UIHandler with another update interval, for tests.
func (n *Node) uiHandler(interval time.Duration) http.Handler {
	return ui.Handler(n.snapshot, interval)
}

// snapshot is what the live view shows now.
func (n *Node) snapshot(ctx context.Context) ui.Snapshot {
	s := ui.Snapshot{Node: n.cfg.ID, Time: time.Now().UnixMilli(), Nodes: []ui.Node{}, Links: []ui.Link{}, Services: []ui.Service{}, Peers: []ui.Peer{}, Events: []ui.Event{}}
	self := ui.Node{ID: n.cfg.ID, Self: true, Services: slices.Sorted(maps.Keys(n.reg.Definitions()))}
	if a := n.Addr(); a != nil {
		self.Address = n.URL()
	}
	s.Nodes = append(s.Nodes, self)
	if d := n.Discovery(); d != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nodes, err := d.Nodes(ctx)
		cancel()
		if err != nil {
			n.logger.Debug("netron: ui: discovery", "err", err)
		}
		for _, info := range nodes {
			if info.ID == n.cfg.ID {
				continue
			}
			v := ui.Node{ID: info.ID, Address: info.Address, Services: []string{}}
			for _, svc := range info.Services {
				v.Services = append(v.Services, svc.Name+"@"+svc.Version)
			}
			s.Nodes = append(s.Nodes, v)
		}
	}
	var m = n.cfg.Metrics.inner()
	for _, p := range n.Peers() {
		dir, kind := "outbound", "netron"
		if p.Accepted() {
			dir = "inbound"
		}
		if p.IsGo() {
			kind = "go"
		}
		s.Links = append(s.Links, ui.Link{From: n.cfg.ID, To: p.ID(), Direction: dir, Kind: kind})
		var calls uint64
		if conn := p.conn.Load(); conn != nil {
			calls = rpccore.PeerCalls(n.client, conn)
		}
		s.Peers = append(s.Peers, ui.Peer{ID: p.ID(), Direction: dir, Kind: kind, Calls: calls})
	}
	for _, t := range m.CallTotals() {
		s.Services = append(s.Services, ui.Service{Name: t.Service, Side: t.Side, Calls: t.Calls, Errors: t.Errors, Running: t.Running})
	}
	for _, t := range m.EventTotals() {
		s.Events = append(s.Events, ui.Event{Name: t.Event, Emitted: t.Emitted})
	}
	return s
}
