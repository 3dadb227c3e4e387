package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

// CalculatorService is the seed's calculator@1.0.0. Every exported method
// is callable by peers under its lowerCamel name (Add → "add"); the seed's
// @Public decorator is simply "exported".
type CalculatorService struct{}

// Add returns a + b.
func (CalculatorService) Add(a, b float64) float64 { return a + b }

// Multiply returns a * b.
func (CalculatorService) Multiply(a, b float64) float64 { return a * b }

// Divide returns a / b, or a 400 error with details for b == 0: the caller
// gets an *rpc.Error with the code, the message and the details.
func (CalculatorService) Divide(a, b float64) (float64, error) {
	if b == 0 {
		return 0, rpc.NewError(400, "division by zero", map[string]any{"dividend": a})
	}
	return a / b, nil
}

// Stats describes a list of numbers; structs travel as msgpack maps.
type Stats struct {
	Count int     `msgpack:"count"`
	Mean  float64 `msgpack:"mean"`
	Min   float64 `msgpack:"min"`
	Max   float64 `msgpack:"max"`
}

// Stats takes a slice and returns a struct.
func (CalculatorService) Stats(values []float64) (Stats, error) {
	if len(values) == 0 {
		return Stats{}, errors.New("no values")
	}
	s := Stats{Count: len(values), Min: math.Inf(1), Max: math.Inf(-1)}
	for _, v := range values {
		s.Mean += v / float64(len(values))
		s.Min, s.Max = min(s.Min, v), max(s.Max, v)
	}
	return s, nil
}

// Slow takes ms milliseconds, or less when the caller gives up: the
// context is cancelled when the caller's deadline passes or its
// connection closes.
func (CalculatorService) Slow(ctx context.Context, ms int) (int, error) {
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return ms, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// CalculatorV2 is calculator@2.0.0, exposed next to 1.0.0.
type CalculatorV2 struct{ CalculatorService }

// Power returns a to the power b.
func (CalculatorV2) Power(a, b float64) float64 { return math.Pow(a, b) }

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// The server: an application whose modules expose both versions, as
	// Titan's @Service classes in a module would.
	server, err := app.New(
		app.WithNetronConfig(netron.Config{ID: "calculator-node", Host: "127.0.0.1", Server: true}),
		app.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return err
	}
	server.Register(
		app.Expose(server, "calculator@1.0.0", CalculatorService{}),
		app.Expose(server, "calculator@2.0.0", CalculatorV2{}),
	)
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer server.Stop(context.Background())
	node, _ := server.Netron()

	client, err := netron.New(netron.Config{ID: "client-node"})
	if err != nil {
		return err
	}
	defer client.Stop(context.Background())
	p, err := client.Connect(ctx, node.URL())
	if err != nil {
		return err
	}

	// Lookup by exact version, range, or latest.
	calc, err := p.Service(ctx, "calculator@1.0.0")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s methods %v\n", calc.QualifiedName(), calc.Methods())
	for _, spec := range []string{"calculator@^2", "calculator"} {
		s, err := p.Service(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%q resolves to %s\n", spec, s.QualifiedName())
	}

	// Typed calls.
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
	stats, err := rpc.Call[Stats](ctx, calc, "stats", []float64{3, 1, 2})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "stats([3 1 2]) = %+v\n", stats)

	// Errors keep their code, message and details across the wire.
	_, err = rpc.Call[float64](ctx, calc, "divide", 1, 0)
	var re *rpc.Error
	if errors.As(err, &re) {
		fmt.Fprintf(out, "divide(1, 0) failed: code %d, %q, details %v\n", re.Code, re.Message, re.Details)
	}
	_, err = rpc.Call[float64](ctx, calc, "power", 2, 10)
	fmt.Fprintf(out, "power on 1.0.0: method not found = %v\n", errors.Is(err, rpc.ErrMethodNotFound))
	_, err = rpc.Call[float64](ctx, calc, "add", "two", 3)
	fmt.Fprintf(out, "add(\"two\", 3): bad argument = %v\n", errors.Is(err, rpc.ErrArgumentType))

	v2, err := p.Service(ctx, "calculator@^2")
	if err != nil {
		return err
	}
	power, err := rpc.Call[float64](ctx, v2, "power", 2, 10)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "power(2, 10) on %s = %v\n", v2.QualifiedName(), power)

	// Deadlines travel with the call; the method's context ends with it.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = rpc.Call[int](dctx, calc, "slow", 5000)
	cancel()
	fmt.Fprintf(out, "slow(5000) with a 50ms deadline: deadline exceeded = %v\n", errors.Is(err, context.DeadlineExceeded))

	// The same service, called on its own node without the network.
	local, err := node.Service(ctx, "calculator@1.0.0")
	if err != nil {
		return err
	}
	sum, err = rpc.Call[float64](ctx, local, "add", 20, 22)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "local add(20, 22) = %v\n", sum)
	return nil
}
