package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
)

// netron demo: the main job on the embedded default.
func Example_demo() {
	code := run(context.Background(), []string{"demo"}, os.Stdout, os.Stderr)
	fmt.Println("exit", code)
	// Output:
	// netron demo: three nodes in one process, in-memory discovery, no Redis
	//
	// calculator-node: listening on loopback, exposes calculator@1.0.0, registered in discovery
	// gateway:         event node:joined calculator-node
	// gateway:         event service:discovered calculator@1.0.0 on calculator-node
	// data-node:       listening on loopback, exposes data@1.0.0, registered in discovery
	// gateway:         event node:joined data-node
	// gateway:         event service:discovered data@1.0.0 on data-node
	// gateway:         event peer:connect calculator-node
	// gateway:         calculator@^1 is calculator@1.0.0 on calculator-node, methods [add multiply]
	// gateway:         subscribed to calculator:computed on calculator-node
	// gateway:         add(2, 3) = 5
	// gateway:         event calculator:computed from calculator-node: {"a":2,"b":3,"op":"add","result":5}
	// gateway:         multiply(4, 5) = 20
	// gateway:         event calculator:computed from calculator-node: {"a":4,"b":5,"op":"multiply","result":20}
	// gateway:         event peer:connect data-node
	// gateway:         data@^1 is data@1.0.0 on data-node
	// gateway:         stream chunk 0: "Chunk 0"
	// gateway:         stream chunk 1: "Chunk 1"
	// gateway:         stream chunk 2: "Chunk 2"
	// gateway:         stream chunk 3: "Chunk 3"
	// gateway:         stream chunk 4: "Chunk 4"
	// gateway:         stream complete: 5 chunks
	// data-node:       stopping
	// gateway:         event node:left data-node
	// gateway:         event peer:disconnect data-node
	//
	// demo complete: 3 nodes, 2 calls, 2 events, 1 stream of 5 chunks
	// exit 0
}

// netron call against a node of this process.
func Example_call() {
	ctx := context.Background()
	a, _ := app.New(
		app.WithNetronConfig(netron.Config{ID: "calc", Host: "127.0.0.1", Server: true}),
		app.WithLogger(slog.New(slog.DiscardHandler)),
	)
	a.Register(app.Expose(a, "calculator@1.0.0", &Calculator{}))
	if err := a.Start(ctx); err != nil {
		panic(err)
	}
	defer a.Stop(ctx)
	node, _ := a.Netron()

	run(ctx, []string{"call", node.URL() + "calculator@^1", "multiply", "6", "7"}, os.Stdout, os.Stderr)
	code := run(ctx, []string{"call", "--node", node.URL(), "calculator", "add", "--args", "[2, 3]"}, os.Stdout, os.Stderr)
	fmt.Println("exit", code)
	code = run(ctx, []string{"call", node.URL() + "calculator", "add", "two", "3"}, os.Stdout, io.Discard)
	fmt.Println("exit", code)
	// Output:
	// 42
	// 5
	// exit 0
	// exit 2
}
