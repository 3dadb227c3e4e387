package rpccore

import (
	"context"
	"errors"
	"fmt"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/wire"
)

// propSvc has a writable, a read-only and a computed property, and
// methods that use them.
type propSvc struct {
	Counter rpc.Property[int]    `netron:"counter,notify"`
	Label   rpc.Property[string] `netron:"label,readonly"`
	Temp    rpc.PropertyFunc[float64]
	Hidden  rpc.Property[int] `netron:"-"`
}

func (s *propSvc) Bump(n int) int { return s.Counter.Update(func(v int) int { return v + n }) }

func newPropSvc() *propSvc {
	s := &propSvc{}
	s.Label.Set("fixed")
	s.Temp.Get = func() float64 { return 21.5 }
	return s
}

func TestPropertiesDefinition(t *testing.T) {
	reg := NewRegistry("n")
	def, err := reg.Expose("props@1.0.0", newPropSvc())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]wire.PropertyMeta{
		"counter": {Type: "Number", Readonly: false},
		"label":   {Type: "String", Readonly: true},
		"temp":    {Type: "Number", Readonly: true}, // no Set: read-only
	}
	if len(def.Meta.Properties) != len(want) {
		t.Fatalf("properties %v, want %v", def.Meta.Properties, want)
	}
	for k, v := range want {
		if def.Meta.Properties[k] != v {
			t.Errorf("property %s = %+v, want %+v", k, def.Meta.Properties[k], v)
		}
	}
	for _, bad := range []any{
		&struct {
			X int `netron:"x"`
		}{},
		&struct {
			X rpc.Property[int] `netron:"x,bogus"`
		}{},
		&struct {
			X rpc.Property[int] `netron:"bad-name"`
		}{},
		&struct {
			X rpc.Property[func()] `netron:"x"`
		}{},
		struct {
			X rpc.Property[int]
		}{},
	} {
		if _, err := NewRegistry("n").Expose("bad@1.0.0", bad); !errors.Is(err, rpc.ErrInvalidService) {
			t.Errorf("Expose(%T) = %v, want rpc.ErrInvalidService", bad, err)
		}
	}
	if _, err := NewRegistry("n").Expose("clash@1.0.0", &clashSvc{}); !errors.Is(err, rpc.ErrInvalidService) {
		t.Errorf("a property named like a method: %v", err)
	}
}

type clashSvc struct {
	X rpc.Property[int] `netron:"bump"`
}

func (*clashSvc) Bump() {}

// TestPropertiesRemoteAndLocal reads and writes properties over a
// loopback connection and locally, with the same answers.
func TestPropertiesRemoteAndLocal(t *testing.T) {
	ctx := context.Background()
	impl := newPropSvc()
	remote, reg := servePairReg(t, "props@1.0.0", impl)
	var changes []PropertyChange
	var mu sync.Mutex
	reg.OnPropertyChange(func(c PropertyChange) { mu.Lock(); changes = append(changes, c); mu.Unlock() })
	local, err := reg.Local("props", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, svc := range map[string]*rpc.Service{"remote": remote, "local": local} {
		t.Run(name, func(t *testing.T) {
			if err := svc.Set(ctx, "counter", 41); err != nil {
				t.Fatal(err)
			}
			if n, err := rpc.Call[int](ctx, svc, "bump", 1); err != nil || n != 42 {
				t.Fatalf("bump = %v, %v", n, err)
			}
			if n, err := rpc.Get[int](ctx, svc, "counter"); err != nil || n != 42 {
				t.Fatalf("counter = %v, %v", n, err)
			}
			if s, err := rpc.Get[string](ctx, svc, "label"); err != nil || s != "fixed" {
				t.Fatalf("label = %q, %v", s, err)
			}
			if f, err := rpc.Get[float64](ctx, svc, "temp"); err != nil || f != 21.5 {
				t.Fatalf("temp = %v, %v", f, err)
			}
			if err := svc.Set(ctx, "label", "x"); !errors.Is(err, rpc.ErrPropertyReadOnly) {
				t.Fatalf("set readonly: %v", err)
			}
			if _, err := svc.Get(ctx, "hidden"); !errors.Is(err, rpc.ErrPropertyNotFound) {
				t.Fatalf("get hidden: %v", err)
			}
			if err := svc.Set(ctx, "counter", "nan"); !errors.Is(err, rpc.ErrArgumentType) {
				t.Fatalf("set wrong type: %v", err)
			}
			if impl.Counter.Get() != 42 || impl.Label.Get() != "fixed" {
				t.Fatalf("values changed: %d %q", impl.Counter.Get(), impl.Label.Get())
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	// Two SETs of 41 and two bumps to 42, one per run.
	if len(changes) != 4 || changes[0].Property != "counter" || changes[0].Value != 41 || changes[1].Value != 42 || changes[0].Service != "props@1.0.0" {
		t.Fatalf("changes %+v", changes)
	}
}

// servePairReg is servePair returning the server's registry too.
func servePairReg(t *testing.T, spec string, impl any) (*rpc.Service, *Registry) {
	t.Helper()
	n := newTestNode(t)
	if _, err := n.reg.Expose(spec, impl); err != nil {
		t.Fatal(err)
	}
	c := n.dial(t)
	svc, err := c.client.QueryInterface(context.Background(), c.conn, spec)
	if err != nil {
		t.Fatal(err)
	}
	return svc, n.reg
}

// testNode is a server node on loopback that test clients dial, each
// with a bus, hub and client of its own.
type testNode struct {
	reg  *Registry
	srv  *Server
	addr string
	sb   *bus.Bus
	hub  *transport.Hub
}

type testClient struct {
	conn   *transport.Conn
	client *Client
	hub    *transport.Hub
}

func newTestNode(t testing.TB) *testNode {
	t.Helper()
	sb := bus.New()
	reg := NewRegistry("server")
	srv, err := NewServer(sb, reg)
	if err != nil {
		t.Fatal(err)
	}
	hub := transport.NewHub(sb, "server", transport.WithKeepAlive(-1, 0))
	addr, err := hub.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
		sb.Close()
	})
	return &testNode{reg: reg, srv: srv, addr: "ws://" + addr.String() + "/", sb: sb, hub: hub}
}

var clientSeq atomic.Int64

func (n *testNode) dial(t testing.TB) *testClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cb := bus.New()
	c, err := NewClient(cb)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("client-%d", clientSeq.Add(1))
	hub := transport.NewHub(cb, id, transport.WithKeepAlive(-1, 0))
	conn, err := hub.Dial(ctx, n.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hub.Close()
		c.Close()
		cb.Close()
	})
	return &testClient{conn: conn, client: c, hub: hub}
}

// shop hands out carts: one per user (the same value each time) and new
// ones on request.
type shop struct {
	mu    sync.Mutex
	carts map[string]*cart
}

type cart struct {
	User  string
	Items rpc.Property[int] `netron:"items"`
}

func (c *cart) Add(n int) int { return c.Items.Update(func(v int) int { return v + n }) }

type other struct{}

func (other) Ping() string { return "pong" }

func (s *shop) Cart(user string) rpc.Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.carts[user]
	if c == nil {
		c = &cart{User: user}
		s.carts[user] = c
	}
	return rpc.Child("cart@1.0.0", c)
}

func (s *shop) NewCart() (rpc.Ref, error) { return rpc.Child("cart@1.0.0", &cart{User: "anon"}), nil }

func (s *shop) Other() rpc.Ref { return rpc.Child("other@1.0.0", &other{}) }

// Checkout takes a cart by reference.
func (s *shop) Checkout(c *cart) string { return fmt.Sprintf("%s:%d", c.User, c.Items.Get()) }

// Describe takes any service by reference, as a handle.
func (s *shop) Describe(ctx context.Context, svc *rpc.Service) (string, error) {
	n, err := rpc.Get[int](ctx, svc, "items")
	return fmt.Sprintf("%s %d", svc.QualifiedName(), n), err
}

func newShop() *shop { return &shop{carts: make(map[string]*cart)} }

func TestChildServices(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	parent, err := n.reg.Expose("shop@1.0.0", newShop())
	if err != nil {
		t.Fatal(err)
	}
	c := n.dial(t)
	svc, err := c.client.QueryInterface(ctx, c.conn, "shop")
	if err != nil {
		t.Fatal(err)
	}
	local, err := n.reg.Local("shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, svc := range map[string]*rpc.Service{"remote": svc, "local": local} {
		t.Run(name, func(t *testing.T) {
			a, err := rpc.Call[*rpc.Service](ctx, svc, "cart", name)
			if err != nil {
				t.Fatal(err)
			}
			d := serviceDef(a)
			if d.ParentID != parent.ID || d.Meta.Name != "cart" || d.PeerID != "server" || d.Meta.Properties["items"].Type != "Number" {
				t.Fatalf("child definition %+v", d)
			}
			a2, err := rpc.Call[*rpc.Service](ctx, svc, "cart", name)
			if err != nil || serviceDef(a2).ID != d.ID {
				t.Fatalf("the same cart again: %v %v", a2, err)
			}
			if n, err := rpc.Call[int](ctx, a, "add", 2); err != nil || n != 2 {
				t.Fatalf("add = %v, %v", n, err)
			}
			if err := a.Set(ctx, "items", 5); err != nil {
				t.Fatal(err)
			}
			if s, err := rpc.Call[string](ctx, svc, "checkout", a); err != nil || s != name+":5" {
				t.Fatalf("checkout = %q, %v", s, err)
			}
			if s, err := rpc.Call[string](ctx, svc, "describe", a); err != nil || s != "cart@1.0.0 5" {
				t.Fatalf("describe = %q, %v", s, err)
			}
			o, err := rpc.Call[*rpc.Service](ctx, svc, "other")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rpc.Call[string](ctx, svc, "checkout", o); !errors.Is(err, rpc.ErrArgumentType) {
				t.Fatalf("checkout of another type: %v", err)
			}
			if _, err := rpc.Call[string](ctx, svc, "checkout", wire.Reference{DefID: "01a21b02-7d17-7a1e-b886-6ca282306fc1"}); !errors.Is(err, rpc.ErrNotFound) || rpc.Code(err) != 404 {
				t.Fatalf("checkout of an unknown id: %v", err)
			}
			if _, err := rpc.Call[string](ctx, svc, "checkout", wire.Reference{}); !errors.Is(err, rpc.ErrBadRequest) {
				t.Fatalf("checkout of an empty reference: %v", err)
			}
			// Two handles on ann's cart: the first release keeps it.
			if err := a.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := rpc.Call[int](ctx, a2, "add", 1); err != nil {
				t.Fatalf("after one release: %v", err)
			}
			before := n.reg.Children()
			if err := a2.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := o.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if got := n.reg.Children(); got != before-2 {
				t.Fatalf("children %d after releasing two, want %d", got, before-2)
			}
			if _, err := rpc.Call[int](ctx, a2, "add", 1); !errors.Is(err, rpc.ErrServiceNotFound) {
				t.Fatalf("a released child: %v", err)
			}
			nc, err := rpc.Call[*rpc.Service](ctx, svc, "newCart")
			if err != nil {
				t.Fatal(err)
			}
			nc2, err := rpc.Call[*rpc.Service](ctx, svc, "newCart")
			if err != nil || serviceDef(nc2).ID == serviceDef(nc).ID {
				t.Fatalf("two new carts share an id: %v", err)
			}
			_ = nc.Release(ctx)
			_ = nc2.Release(ctx)
		})
	}
	if got := n.reg.Children(); got != 0 {
		t.Fatalf("%d children left", got)
	}
}

// TestChildOfAnotherConnection: a child is callable only over the
// connections it was handed to.
func TestChildOfAnotherConnection(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	if _, err := n.reg.Expose("shop@1.0.0", newShop()); err != nil {
		t.Fatal(err)
	}
	a, b := n.dial(t), n.dial(t)
	sa, err := a.client.QueryInterface(ctx, a.conn, "shop")
	if err != nil {
		t.Fatal(err)
	}
	child, err := rpc.Call[*rpc.Service](ctx, sa, "cart", "ann")
	if err != nil {
		t.Fatal(err)
	}
	stolen := b.client.Remote(b.conn, serviceDef(child))
	if _, err := rpc.Call[int](ctx, stolen, "add", 1); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("a child over another connection: %v", err)
	}
	if _, err := b.client.RunTask(ctx, b.conn, "unref_service", serviceDef(child).ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.Call[int](ctx, child, "add", 1); err != nil {
		t.Fatalf("another connection's unref released it: %v", err)
	}
}

// TestChildrenReleasedOnDisconnect: 10,000 children handed to several
// connections are all forgotten once the connections close.
func TestChildrenReleasedOnDisconnect(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	if _, err := n.reg.Expose("shop@1.0.0", newShop()); err != nil {
		t.Fatal(err)
	}
	const conns, each = 10, 1000
	var wg sync.WaitGroup
	clients := make([]*testClient, conns)
	for i := range clients {
		clients[i] = n.dial(t)
	}
	errs := make(chan error, conns)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc, err := c.client.QueryInterface(ctx, c.conn, "shop")
			if err != nil {
				errs <- err
				return
			}
			for range each {
				if _, err := rpc.Call[*rpc.Service](ctx, svc, "newCart"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := n.reg.Children(); got != conns*each {
		t.Fatalf("%d children, want %d", got, conns*each)
	}
	for _, c := range clients {
		c.conn.Close()
	}
	// The server releases them as it sees each connection close; 30 s is
	// an upper bound, not a guess.
	deadline := time.Now().Add(30 * time.Second)
	for n.reg.Children() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d children left after the connections closed", n.reg.Children())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPropertiesConcurrent: many peers GET, SET and CALL one service at
// once (run with -race).
func TestPropertiesConcurrent(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	impl := newPropSvc()
	if _, err := n.reg.Expose("props@1.0.0", impl); err != nil {
		t.Fatal(err)
	}
	const peers, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, peers)
	for range peers {
		c := n.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc, err := c.client.QueryInterface(ctx, c.conn, "props")
			if err != nil {
				errs <- err
				return
			}
			for i := range rounds {
				if err := svc.Set(ctx, "counter", i); err != nil {
					errs <- err
					return
				}
				if _, err := rpc.Get[int](ctx, svc, "counter"); err != nil {
					errs <- err
					return
				}
				if _, err := rpc.Call[int](ctx, svc, "bump", 1); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// titanQueryInterface is query_interface as a Titan node answers it: an
// exact "name@version", or a bare name for the highest version; a range
// is 404 (H1 19-34).
func titanQueryInterface(reg *Registry) ConnTaskFunc {
	return func(_ context.Context, _ *transport.Conn, args *rpc.Args) (any, error) {
		var name string
		if err := args.Next(&name); err != nil {
			return nil, err
		}
		if def, ok := reg.Definitions()[name]; ok {
			return def, nil
		}
		if sp, err := parseSpec(name); err == nil && sp.exact == nil && sp.rng == nil {
			if def, err := reg.Lookup(name); err == nil {
				return def, nil
			}
		}
		return nil, serviceNotFound(name)
	}
}

type v1 struct{}

func (v1) V() string { return "1" }

func TestRangeAgainstTitanRules(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	n.srv.HandleTask("query_interface", titanQueryInterface(n.reg))
	for _, qn := range []string{"calc@1.2.0", "calc@1.5.0"} {
		if _, err := n.reg.Expose(qn, v1{}); err != nil {
			t.Fatal(err)
		}
	}
	c := n.dial(t)
	for spec, want := range map[string]string{"calc@^1": "1.5.0", "calc@~1.5": "1.5.0", "calc@>=1.0 <2": "1.5.0", "calc@1.2.0": "1.2.0", "calc": "1.5.0"} {
		svc, err := c.client.QueryInterface(ctx, c.conn, spec)
		if err != nil || svc.Version() != want {
			t.Errorf("%s: %v %v, want %s", spec, svc, err, want)
		}
	}
	// ~1.2 matches 1.2.0, but the peer reports only 1.5.0.
	_, err := c.client.QueryInterface(ctx, c.conn, "calc@~1.2")
	var re *rpc.Error
	if !errors.Is(err, rpc.ErrServiceNotFound) || !errors.As(err, &re) || len(re.Available) != 1 || re.Available[0] != "1.5.0" || !strings.Contains(err.Error(), "available: 1.5.0") || !strings.Contains(re.Message, "highest version") {
		t.Fatalf("~1.2: %v", err)
	}
	if _, err := c.client.QueryInterface(ctx, c.conn, "nosuch@^1"); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("nosuch: %v", err)
	}
}
