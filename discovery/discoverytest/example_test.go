package discoverytest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/discoverytest"
)

// memoryCluster is what a backend hands the suite for each case: instances
// that share one registry, and nothing with other cases. This is the
// in-memory backend's; a test runs the suite with
//
//	discoverytest.Run(t, memoryCluster)
func memoryCluster(_ *testing.T, cfg discoverytest.Config) discoverytest.Cluster {
	hub := discovery.NewHub()
	return discoverytest.Cluster{New: func(*testing.T) discovery.Discovery {
		return discovery.NewMemory(discovery.WithHub(hub), discovery.WithHeartbeat(cfg.Heartbeat), discovery.WithTTL(cfg.TTL))
	}}
}

// Two instances of one cluster see each other's nodes.
func Example() {
	ctx := context.Background()
	c := memoryCluster(nil, discoverytest.Fast)
	a, b := c.New(nil), c.New(nil)
	defer a.Close()
	defer b.Close()
	_ = a.Register(ctx, discovery.NodeInfo{
		ID:       "node-a",
		Address:  "ws://127.0.0.1:9000/",
		Services: []discovery.ServiceInfo{{Name: "calculator", Version: "1.2.0"}},
	})
	nodes, err := b.Find(ctx, "calculator", "^1")
	fmt.Println(len(nodes), nodes[0].ID, err)
	// Output: 1 node-a <nil>
}
