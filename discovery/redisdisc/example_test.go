package redisdisc_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
)

// A node registers itself and looks up a service. (Needs a Redis server, so
// this example is compiled but not run.)
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Password: "", ContextTimeoutEnabled: true})
	defer rdb.Close() // the backend never closes it

	d, err := redisdisc.New(rdb,
		redisdisc.WithPrefix("netron:discovery"),
		redisdisc.WithHeartbeat(5*time.Second),
		redisdisc.WithTTL(15*time.Second),
		redisdisc.WithLogger(slog.Default()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close() // deregisters at once

	err = d.Register(ctx, discovery.NodeInfo{
		ID:       "node-1",
		Address:  "10.0.0.5:9000",
		Services: []discovery.ServiceInfo{{Name: "calculator", Version: "1.2.0"}},
	})
	if err != nil {
		log.Print(err) // with ErrUnavailable the registration is kept and retried
	}
	nodes, err := d.Find(ctx, "calculator", "^1")
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range nodes {
		fmt.Println(n.ID, n.Address)
	}
}
