package netron_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/rpc"
)

// BenchmarkBalancedCall compares a sequential call through a peer's
// handle (one connection, no balancer) with the same call through a
// handle from discovery balanced over 3 instances (power of two choices,
// round-robin) and a pinned one, all on loopback in this process.
func BenchmarkBalancedCall(b *testing.B) {
	ctx := context.Background()
	hub := discovery.NewHub()
	mem := func() discovery.Discovery {
		m := discovery.NewMemory(discovery.WithHub(hub))
		b.Cleanup(func() { m.Close() })
		return m
	}
	var insts []*netron.Node
	for i := range 3 {
		n := startNode(b, netron.Config{ID: fmt.Sprintf("inst-%d", i), Host: "127.0.0.1", Server: true, DiscoveryBackend: mem()})
		if err := n.Expose("calculator@1.0.0", Calculator{}); err != nil {
			b.Fatal(err)
		}
		insts = append(insts, n)
	}
	caller := startNode(b, netron.Config{ID: "caller", DiscoveryBackend: mem()})
	p, err := caller.Connect(ctx, insts[0].URL())
	if err != nil {
		b.Fatal(err)
	}
	direct, err := p.Service(ctx, "calculator@1.0.0")
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, svc *rpc.Service) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := svc.Call(ctx, "add", i, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("peer", func(b *testing.B) { run(b, direct) })
	for _, c := range []struct {
		name string
		opts []netron.ServiceOption
	}{
		{"balanced-3-p2c", nil},
		{"balanced-3-rr", []netron.ServiceOption{netron.WithBalancer(netron.RoundRobin)}},
		{"pinned", []netron.ServiceOption{netron.WithPinned()}},
	} {
		svc, err := caller.Service(ctx, "calculator@^1", c.opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) { run(b, svc) })
	}
}
