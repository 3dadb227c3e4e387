package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// Counter has properties: peers GET and SET count, GET label and temp.
type Counter struct {
	Count rpc.Property[int]         `netron:"count,notify"` // writable; changes emit property:change
	Label rpc.Property[string]      `netron:"label,readonly"`
	Temp  rpc.PropertyFunc[float64] // computed: read-only without Set
}

func (c *Counter) Bump(n int) int { return c.Count.Update(func(v int) int { return v + n }) }

// A service with properties, used through a local handle (a remote one
// works the same).
func ExampleProperty() {
	ctx := context.Background()
	c := &Counter{}
	c.Label.Set("visits")
	c.Temp.Get = func() float64 { return 21.5 }
	n, err := netron.New(netron.Config{ID: "node"})
	if err != nil {
		panic(err)
	}
	defer n.Close()
	if err := n.Expose("counter@1.0.0", c); err != nil {
		panic(err)
	}
	svc, _ := n.Service(ctx, "counter") // this node's own service: no network
	d := svc.Description()
	fmt.Printf("%+v %+v\n", d.Properties["count"], d.Properties["label"])
	_ = svc.Set(ctx, "count", 40)
	v, _ := rpc.Call[int](ctx, svc, "bump", 2)
	label, _ := rpc.Get[string](ctx, svc, "label")
	fmt.Println(v, label)
	err = svc.Set(ctx, "label", "x")
	fmt.Println(errors.Is(err, rpc.ErrPropertyReadOnly))
	// Output:
	// {Type:Number ReadOnly:false} {Type:String ReadOnly:true}
	// 42 visits
	// true
}

// Shop hands out carts: child services.
type Shop struct {
	mu    sync.Mutex
	carts map[string]*Cart
}

// Cart is a child service of Shop.
type Cart struct {
	Items rpc.Property[int] `netron:"items"`
	user  string
}

// Add adds n items.
func (c *Cart) Add(n int) int { return c.Items.Update(func(v int) int { return v + n }) }

// Receipt is what Checkout returns.
type Receipt struct {
	User  string `msgpack:"user"`
	Items int    `msgpack:"items"`
}

func (s *Shop) cartOf(user string) *Cart {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.carts[user] == nil {
		s.carts[user] = &Cart{user: user}
	}
	return s.carts[user]
}

func (s *Shop) Cart(user string) rpc.Ref { return rpc.Child("cart@1.0.0", s.cartOf(user)) }
func (s *Shop) Checkout(c *Cart) (Receipt, error) {
	return Receipt{User: c.user, Items: c.Items.Get()}, nil
}

// A method returns a child service; the caller gets a handle on it and
// passes it back by reference.
func ExampleChild() {
	ctx := context.Background()
	n, err := netron.New(netron.Config{ID: "node"})
	if err != nil {
		panic(err)
	}
	defer n.Close()
	if err := n.Expose("shop@1.0.0", &Shop{carts: map[string]*Cart{}}); err != nil {
		panic(err)
	}
	shop, _ := n.Service(ctx, "shop")
	cart, _ := rpc.Call[*rpc.Service](ctx, shop, "cart", "ann")
	fmt.Println(cart.QualifiedName(), cart.Description().ParentID == shop.Description().ID)
	_, _ = rpc.Call[int](ctx, cart, "add", 3)
	r, _ := rpc.Call[Receipt](ctx, shop, "checkout", cart)
	fmt.Printf("%+v\n", r)
	fmt.Println(cart.Release(ctx))
	// Output:
	// cart@1.0.0 true
	// {User:ann Items:3}
	// <nil>
}
