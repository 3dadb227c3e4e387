package netron_test

import (
	"context"
	"slices"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
)

// A service a peer publishes on a node is announced in discovery with the
// node's own services, and withdrawn from it when the peer disconnects.
func TestExposedServiceInDiscovery(t *testing.T) {
	ctx := context.Background()
	dhub := discovery.NewHub()
	mem := discovery.NewMemory(discovery.WithHub(dhub))
	t.Cleanup(func() { mem.Close() })
	view := discovery.NewMemory(discovery.WithHub(dhub))
	t.Cleanup(func() { view.Close() })
	hub := startNode(t, netron.Config{ID: "hub", Host: "127.0.0.1", Server: true, AllowRemoteExposure: true, DiscoveryBackend: mem})
	if err := hub.Expose("taker@1.0.0", taker{}); err != nil {
		t.Fatal(err)
	}
	announced := func() []string {
		nodes, err := view.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, nd := range nodes {
			if nd.ID == "hub" {
				for _, s := range nd.Services {
					names = append(names, s.Name+"@"+s.Version)
				}
			}
		}
		return names
	}
	eventually(t, "the hub's own service announced", func() bool { return slices.Contains(announced(), "taker@1.0.0") })

	b := startNode(t, netron.Config{ID: "b"})
	g := &greeter{}
	if err := b.Expose("greeter@1.0.0", g); err != nil {
		t.Fatal(err)
	}
	bp, err := b.Connect(ctx, hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := bp.ExposeService(ctx, "greeter"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the published service announced", func() bool { return slices.Contains(announced(), "greeter@1.0.0") })
	if err := bp.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the published service withdrawn after its peer left", func() bool {
		names := announced()
		return !slices.Contains(names, "greeter@1.0.0") && slices.Contains(names, "taker@1.0.0")
	})
}
