package main

import (
	"context"

	"github.com/netron-go/netron"
)

// EventComputed is emitted by the demo calculator after each operation.
const EventComputed = "calculator:computed"

// Calculator is the seed's calculator@1.0.0 ("add", "multiply"). With a
// node, it emits EventComputed {op, a, b, result} after each operation,
// for those who watch.
type Calculator struct {
	node *netron.Node
}

// Add returns a + b.
func (c *Calculator) Add(ctx context.Context, a, b float64) float64 {
	return c.emit(ctx, "add", a, b, a+b)
}

// Multiply returns a * b.
func (c *Calculator) Multiply(ctx context.Context, a, b float64) float64 {
	return c.emit(ctx, "multiply", a, b, a*b)
}

func (c *Calculator) emit(ctx context.Context, op string, a, b, result float64) float64 {
	if c.node != nil {
		_ = c.node.Emit(context.WithoutCancel(ctx), EventComputed, map[string]any{"op": op, "a": a, "b": b, "result": result})
	}
	return result
}
