package netron_test

import (
	"context"
	"fmt"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

type Calculator struct{}

func (Calculator) Add(a, b float64) float64      { return a + b }
func (Calculator) Multiply(a, b float64) float64 { return a * b }

// One node exposes a versioned service, another connects over WebSocket and
// calls it.
func Example() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "calc-node", Host: "127.0.0.1", Server: true})
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)
	_ = server.Expose("calculator@1.0.0", Calculator{})

	client, _ := netron.New(netron.Config{ID: "client"})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}
	calc, _ := p.Service(ctx, "calculator@^1")
	sum, err := rpc.Call[float64](ctx, calc, "add", 2, 3)
	fmt.Println(p.ID(), calc.QualifiedName(), sum, err)
	// Output: calc-node calculator@1.0.0 5 <nil>
}
