// Command calculator is the seed's first example: one node exposes the
// service calculator@1.0.0 (add, multiply), a second node connects to it
// over WebSocket on loopback and calls it.
//
//	go run ./examples/calculator
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// Calculator is the service. Exported methods become "add" and "multiply".
type Calculator struct{}

// Add returns a + b.
func (Calculator) Add(a, b float64) float64 { return a + b }

// Multiply returns a * b.
func (Calculator) Multiply(a, b float64) float64 { return a * b }

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "calculator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	server, err := netron.New(netron.Config{ID: "calculator-node", Host: "127.0.0.1", Server: true})
	if err != nil {
		return err
	}
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer server.Stop(context.Background())
	if err := server.Expose("calculator@1.0.0", Calculator{}); err != nil {
		return err
	}
	fmt.Fprintf(out, "server %s exposes calculator@1.0.0 at %s\n", server.ID(), server.URL())

	client, err := netron.New(netron.Config{ID: "client-node"})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer client.Stop(context.Background())
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "client %s connected to %s\n", client.ID(), p.ID())

	calc, err := p.Service(ctx, "calculator@^1")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "found %s with methods %v\n", calc.QualifiedName(), calc.Methods())
	sum, err := rpc.Call[float64](ctx, calc, "add", 2, 3)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "add(2, 3) = %v\n", sum)
	product, err := rpc.Call[float64](ctx, calc, "multiply", 4, 5)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "multiply(4, 5) = %v\n", product)
	return nil
}
