package main

import (
	"context"
	"os"
)

func Example() {
	if err := run(context.Background(), os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// monitor-node connects to orders-node
	//   monitor: Peer orders-node connected
	// monitor-node subscribes to "order:*" on orders-node
	// orders-node emits order:created and order:shipped
	//   monitor: order:created from orders-node: order 1 9.5
	//   monitor: order:shipped from orders-node: order 1 0
	// monitor-node exposes stats@1.0.0
	//   monitor: Service exposed: stats@1.0.0
	// orders-node stops
	//   monitor: Peer orders-node disconnected
}
