package rpc_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

type Calculator struct{}

func (Calculator) Add(a, b int) int { return a + b }

func (Calculator) Div(a, b int) (int, error) {
	if b == 0 {
		return 0, rpc.NewError(400, "division by zero", nil)
	}
	return a / b, nil
}

// Services are looked up by exact version, latest, or semver range; the
// same handle type calls local and remote services.
func Example() {
	ctx := context.Background()
	n, err := netron.New(netron.Config{ID: "node-1"})
	if err != nil {
		panic(err)
	}
	defer n.Close()
	if err := n.Expose("calculator@1.2.0", Calculator{}); err != nil {
		panic(err)
	}
	calc, err := n.Service(ctx, "calculator@^1") // this node's own service: no network
	if err != nil {
		panic(err)
	}
	sum, err := rpc.Call[int](ctx, calc, "add", 2, 3)
	fmt.Println(calc.QualifiedName(), calc.Methods(), sum, err)

	_, err = calc.Call(ctx, "div", 1, 0)
	fmt.Println(errors.Is(err, rpc.ErrBadRequest), rpc.Code(err))
	_, err = calc.Call(ctx, "sqrt", 4)
	fmt.Println(errors.Is(err, rpc.ErrMethodNotFound))
	// Output:
	// calculator@1.2.0 [add div] 5 <nil>
	// true 400
	// true
}
