// Command titan-interop serves interop@1.2.0, the service of the Titan
// interop harness, written in Go: properties (one read-only, one computed
// with a setter that refuses negative numbers), child services handed out
// by methods, a method that takes a child by reference, and JavaScript
// errors of each class. Run without flags it starts a server node and a
// client node and shows a Go client using all of it; with -serve it only
// serves (point a Titan client at it); with -connect it runs the client
// part against another node (a Titan node serving the same service).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// Interop is interop@1.2.0: counter (writable, 7), label (read-only,
// "titan" on Titan, "go" here), guarded (a setter that refuses negative
// numbers with a RangeError, as the Titan service's does).
type Interop struct {
	Counter rpc.Property[int]    `netron:"counter"`
	Label   rpc.Property[string] `netron:"label,readonly"`
	Guarded rpc.PropertyFunc[float64]

	mu      sync.Mutex
	guarded float64
	child   *Child
}

// NewInterop returns the service with Titan's initial values.
func NewInterop() *Interop {
	s := &Interop{guarded: 1, child: &Child{tag: "kid"}}
	s.Counter.Set(7)
	s.Label.Set("go")
	s.child.Level.Set(1)
	s.Guarded.Get = func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return s.guarded }
	s.Guarded.Set = func(v float64) error {
		if v < 0 {
			return rpc.NewJSError(rpc.KindRangeError, "", fmt.Sprintf("guarded must be a non-negative number, got %v", v), nil)
		}
		s.mu.Lock()
		s.guarded = v
		s.mu.Unlock()
		return nil
	}
	return s
}

// Version returns the service's version.
func (s *Interop) Version() string { return "1.2.0" }

// Add returns a + b.
func (s *Interop) Add(a, b float64) float64 { return a + b }

// Echo returns its argument.
func (s *Interop) Echo(v any) any { return v }

// GetChild hands out the same child@1.0.0 every time (one definition id).
func (s *Interop) GetChild() rpc.Ref { return rpc.Child("child@1.0.0", s.child) }

// NewChild hands out a new child@1.0.0 each call.
func (s *Interop) NewChild(tag string) rpc.Ref {
	c := &Child{tag: tag}
	c.Level.Set(1)
	return rpc.Child("child@1.0.0", c)
}

// UseChild takes a child by reference (ext 108) and calls it.
func (s *Interop) UseChild(c *Child) string { return c.Hello("via-ref") + " [arg was Child]" }

// Fail fails as the Titan service's fail(kind) does, for some kinds.
func (s *Interop) Fail(kind string) error {
	switch kind {
	case "type":
		return rpc.NewJSError(rpc.KindTypeError, "", "type error", nil)
	case "range":
		return rpc.NewJSError(rpc.KindRangeError, "", "range error", nil)
	case "renamed":
		return rpc.NewJSError(rpc.KindRangeError, "OutOfBounds", "renamed range error", nil)
	case "custom":
		return rpc.NewJSError(rpc.KindError, "CustomError", "custom failure", map[string]any{"code": "E_CUSTOM", "meta": map[string]any{"retry": true, "n": 3}})
	case "string":
		return rpc.Throw("just a string")
	case "number":
		return rpc.Throw(42)
	case "titan":
		return rpc.NewError(409, "version conflict", map[string]any{"expected": 3, "actual": 5})
	}
	return errors.New("unknown kind " + kind)
}

// Child is child@1.0.0.
type Child struct {
	Level rpc.Property[int] `netron:"level"`
	tag   string
}

// Hello greets who.
func (c *Child) Hello(who string) string { return "hello " + who + " from " + c.tag }

func main() {
	serve := flag.String("serve", "", "only serve interop@1.2.0 on this address (host:port) until interrupted")
	connect := flag.String("connect", "", "run the client part against the node at this ws:// URL")
	allowExpose := flag.Bool("allow-expose", false, "with -serve: let peers publish their services on the node (expose_service)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch {
	case *serve != "":
		err = serveOnly(ctx, *serve, *allowExpose, os.Stdout)
	case *connect != "":
		err = client(ctx, *connect, os.Stdout)
	default:
		err = run(ctx, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func newServer(ctx context.Context, host string, port int, allowExpose bool) (*netron.Node, error) {
	n, err := netron.New(netron.Config{ID: "go-interop", Host: host, Port: port, Server: true, AllowRemoteExposure: allowExpose})
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	if err := n.Expose("interop@1.2.0", NewInterop()); err != nil {
		n.Stop(context.Background())
		return nil, err
	}
	return n, nil
}

func serveOnly(ctx context.Context, addr string, allowExpose bool, out io.Writer) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-serve %s: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("-serve %s: %w", addr, err)
	}
	n, err := newServer(ctx, host, port, allowExpose)
	if err != nil {
		return err
	}
	defer n.Stop(context.Background())
	fmt.Fprintf(out, "serving interop@1.2.0 at %s\n", n.URL())
	<-ctx.Done()
	return nil
}

// run serves and calls over loopback.
func run(ctx context.Context, out io.Writer) error {
	n, err := newServer(ctx, "127.0.0.1", 0, false)
	if err != nil {
		return err
	}
	defer n.Stop(context.Background())
	return client(ctx, n.URL(), out)
}

// client uses interop@1.2.0 on the node at url.
func client(ctx context.Context, url string, out io.Writer) error {
	n, err := netron.New(netron.Config{ID: "go-client"})
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Stop(context.Background())
	p, err := n.Connect(ctx, url)
	if err != nil {
		return err
	}
	svc, err := p.Service(ctx, "interop@^1")
	if err != nil {
		return err
	}
	def := svc.Description()
	fmt.Fprintf(out, "%s: properties counter %+v, label %+v\n", svc.QualifiedName(), def.Properties["counter"], def.Properties["label"])

	counter, err := rpc.Get[int](ctx, svc, "counter")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "counter = %d\n", counter)
	if err := svc.Set(ctx, "counter", counter+35); err != nil {
		return err
	}
	counter, err = rpc.Get[int](ctx, svc, "counter")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "after set: counter = %d\n", counter)
	err = svc.Set(ctx, "label", "hacked")
	fmt.Fprintf(out, "set label: read-only = %v\n", errors.Is(err, rpc.ErrPropertyReadOnly))
	err = svc.Set(ctx, "guarded", -1)
	fmt.Fprintf(out, "set guarded -1: RangeError = %v\n", errors.Is(err, rpc.ErrRangeError))

	kid, err := rpc.Call[*rpc.Service](ctx, svc, "getChild")
	if err != nil {
		return err
	}
	again, err := rpc.Call[*rpc.Service](ctx, svc, "getChild")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "getChild: %s, parent is interop = %v, same id twice = %v\n", kid.QualifiedName(),
		kid.Description().ParentID == def.ID, again.Description().ID == kid.Description().ID)
	hello, err := rpc.Call[string](ctx, kid, "hello", "go")
	if err != nil {
		return err
	}
	level, err := rpc.Get[int](ctx, kid, "level")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "child: hello(go) = %q, level = %d\n", hello, level)
	via, err := rpc.Call[string](ctx, svc, "useChild", kid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "useChild(child) = %q\n", via)
	for _, h := range []*rpc.Service{kid, again} {
		if err := h.Release(ctx); err != nil {
			return err
		}
	}

	_, err = svc.Call(ctx, "fail", "renamed")
	var re *rpc.Error
	if errors.As(err, &re) {
		fmt.Fprintf(out, "fail(renamed): a %v named %q: %q\n", re.Kind, re.Name, re.Message)
	}
	_, err = svc.Call(ctx, "fail", "string")
	if errors.As(err, &re) {
		fmt.Fprintf(out, "fail(string): threw %q\n", re.Thrown)
	}
	return nil
}
