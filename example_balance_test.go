package netron_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/rpc"
)

// Where answers with the node it runs on.
type Where struct{ node string }

func (w Where) Here() string { return w.node }

// startWhere starts nodes offering where@1.0.0 and a client node, on one
// in-memory registry, and returns the client and a func that stops them.
func startWhere(ctx context.Context, ids ...string) (*netron.Node, func()) {
	hub := discovery.NewHub()
	var stops []func()
	for _, id := range ids {
		reg := discovery.NewMemory(discovery.WithHub(hub))
		n, _ := netron.New(netron.Config{ID: id, Host: "127.0.0.1", Server: true, DiscoveryBackend: reg})
		_ = n.Expose("where@1.0.0", Where{node: id})
		if err := n.Start(ctx); err != nil {
			panic(err)
		}
		stops = append(stops, func() { n.Stop(ctx); reg.Close() })
	}
	reg := discovery.NewMemory(discovery.WithHub(hub))
	client, _ := netron.New(netron.Config{ID: "client", DiscoveryBackend: reg})
	_ = client.Start(ctx)
	stops = append(stops, func() { client.Stop(ctx); reg.Close() })
	return client, func() {
		var wg sync.WaitGroup
		for _, stop := range stops {
			wg.Go(stop)
		}
		wg.Wait()
	}
}

// A handle found through discovery balances over every instance of the
// highest matching version; round-robin takes them in turn.
func ExampleWithBalancer() {
	ctx := context.Background()
	client, stop := startWhere(ctx, "node-a", "node-b", "node-c")
	defer stop()

	svc, err := client.Service(ctx, "where@^1", netron.WithBalancer(netron.RoundRobin))
	if err != nil {
		panic(err)
	}
	for range 6 {
		here, err := rpc.Call[string](ctx, svc, "here")
		fmt.Print(here, " ", err, "; ")
	}
	fmt.Println()
	// Output:
	// node-a <nil>; node-b <nil>; node-c <nil>; node-a <nil>; node-b <nil>; node-c <nil>;
}

// A pinned handle stays on the instance it picked.
func ExampleWithPinned() {
	ctx := context.Background()
	client, stop := startWhere(ctx, "node-a", "node-b", "node-c")
	defer stop()

	svc, err := client.Service(ctx, "where@^1", netron.WithPinned())
	if err != nil {
		panic(err)
	}
	same := true
	for range 5 {
		here, err := rpc.Call[string](ctx, svc, "here")
		same = same && err == nil && here == svc.PeerID()
	}
	fmt.Println("every call on one instance:", same)
	// Output:
	// every call on one instance: true
}

// Store is a key-value service whose Get and Delete may run twice.
type Store struct{}

func (s *Store) Get(key string) string         { return "value of " + key }
func (s *Store) Delete(key string) error       { return nil }
func (s *Store) Append(key, value string) bool { return true }

// Methods marked idempotent at Expose may run again on another instance
// when a call of theirs fails in transit; the mark is in their
// description, on every node that fetches it.
func ExampleNode_Expose_idempotent() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "store", Host: "127.0.0.1", Server: true})
	if err := server.Expose("store@1.0.0", &Store{}, rpc.Idempotent("get", "Delete")); err != nil {
		panic(err)
	}
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)
	client, _ := netron.New(netron.Config{ID: "client"})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}
	svc, _ := p.Service(ctx, "store@1.0.0")
	for _, m := range svc.Description().MethodNames() {
		fmt.Println(m, svc.Description().Methods[m].Idempotent)
	}
	// Output:
	// append false
	// delete true
	// get true
}
