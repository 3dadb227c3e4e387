package main

import (
	"context"
	"os"
)

// The program with the embedded app.yaml and no environment variables.
func Example() {
	if err := run(context.Background(), os.Stdout, defaultConfig, "app.yaml", nil); err != nil {
		panic(err)
	}
	// Output:
	// config: netron.id = my-node (from app.yaml:4), request timeout 5s
	//   [my-node] netron registered (created on first access)
	// starting the server application:
	//   [my-node] starting
	//   [my-node] netron created
	//   [my-node] module started (greeter)
	//   [my-node] netron started
	//   [my-node] ready
	// Netron ID: my-node
	//   [client-node] netron registered (created on first access)
	//   [client-node] netron created
	// starting the client application:
	//   [client-node] starting
	//   [client-node] module started (connector)
	//   [client-node] netron started
	//   [client-node] ready
	// Connected to: my-node
	// greeter@1.0.0.greet("Go") = "Hello, Go!"
	// stopping the client application:
	//   [client-node] stopping
	//   [client-node] module stopped (connector)
	//   [client-node] netron stopped
	//   [client-node] stopped
	// stopping the server application:
	//   [my-node] stopping
	//   [my-node] module stopped (greeter)
	//   [my-node] netron stopped
	//   [my-node] stopped
}
