package discovery_test

import (
	"context"
	"fmt"

	"github.com/netron-go/netron/discovery"
)

// Two nodes of one process find each other through the in-memory backend.
func Example() {
	ctx := context.Background()
	hub := discovery.NewHub() // omit WithHub to use the process-wide registry
	calc := discovery.NewMemory(discovery.WithHub(hub))
	defer calc.Close()
	client := discovery.NewMemory(discovery.WithHub(hub))
	defer client.Close()

	_ = calc.Register(ctx, discovery.NodeInfo{
		ID:      "calc-1",
		Address: "127.0.0.1:9000",
		Services: []discovery.ServiceInfo{
			{Name: "calculator", Version: "1.4.0"},
		},
	})

	nodes, _ := client.Find(ctx, "calculator", "^1")
	for _, n := range nodes {
		fmt.Println(n.ID, n.Address)
	}
	// Output: calc-1 127.0.0.1:9000
}

// Find returns the nodes offering a service in a version range, the highest
// version first.
func ExampleMemory_Find() {
	ctx := context.Background()
	m := discovery.NewMemory(discovery.WithHub(discovery.NewHub()))
	defer m.Close()
	for id, v := range map[string]string{"a": "1.0.0", "b": "1.3.2", "c": "2.0.0"} {
		_ = m.Register(ctx, discovery.NodeInfo{ID: id, Services: []discovery.ServiceInfo{{Name: "echo", Version: v}}})
	}
	for _, rng := range []string{"^1", "~1.3", ">=1.0 <3", "3.x"} {
		nodes, _ := m.Find(ctx, "echo", rng)
		fmt.Printf("%-9s %d:", rng, len(nodes))
		for _, n := range nodes {
			fmt.Print(" ", n.ID, "@", n.Services[0].Version)
		}
		fmt.Println()
	}
	// Output:
	// ^1        2: b@1.3.2 a@1.0.0
	// ~1.3      1: b@1.3.2
	// >=1.0 <3  3: c@2.0.0 b@1.3.2 a@1.0.0
	// 3.x       0:
}

// Watch reports the current members, then every change.
func ExampleMemory_Watch() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := discovery.NewHub()
	a := discovery.NewMemory(discovery.WithHub(hub))
	defer a.Close()
	b := discovery.NewMemory(discovery.WithHub(hub))
	defer b.Close()

	_ = a.Register(ctx, discovery.NodeInfo{ID: "n1", Address: "h:1"})
	events, _ := b.Watch(ctx)
	fmt.Println((<-events).Kind, "n1")

	_ = a.Register(ctx, discovery.NodeInfo{ID: "n1", Address: "h:2"}) // new details
	ev := <-events
	fmt.Println(ev.Kind, ev.Node.ID, ev.Node.Address)

	_ = a.Deregister(ctx, "n1")
	ev = <-events
	fmt.Println(ev.Kind, ev.Node.ID)
	// Output:
	// joined n1
	// updated n1 h:2
	// left n1
}

func ExampleMatchVersion() {
	for _, rng := range []string{"1.2.3", "^1", "~1.2", ">=1.0 <2", "^2", ""} {
		ok, _ := discovery.MatchVersion("1.2.3", rng)
		fmt.Printf("%q %v\n", rng, ok)
	}
	// Output:
	// "1.2.3" true
	// "^1" true
	// "~1.2" true
	// ">=1.0 <2" true
	// "^2" false
	// "" true
}
