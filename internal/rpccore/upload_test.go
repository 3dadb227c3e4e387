package rpccore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// uploads is a service whose methods read a stream argument to its end
// and report how it ended.
type uploadSvc struct{ done chan error }

// Relay streams back what it reads.
func (s *uploadSvc) Relay(r *stream.Reader[int], w *stream.Writer[int]) error {
	for v := range r.C() {
		if w.Send(context.Background(), v) != nil {
			break
		}
	}
	s.done <- r.Err()
	return nil
}

// Sum adds up what it reads.
func (s *uploadSvc) Sum(r *stream.Reader[int]) (int, error) {
	n := 0
	for v := range r.C() {
		n += v
	}
	s.done <- r.Err()
	return n, r.Err()
}

// uploadPair serves uploads@1.0.0 on a loopback connection between two
// Go nodes with the stream extension.
func uploadPair(t *testing.T) (*rpc.Service, *uploadSvc) {
	t.Helper()
	impl := &uploadSvc{done: make(chan error, 4)}
	return servePair(t, "uploads@1.0.0", impl), impl
}

// servePair exposes impl as spec on a loopback connection between two Go
// nodes with the stream extension, and returns the client's handle on it.
func servePair(t *testing.T, spec string, impl any) *rpc.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sb, cb := bus.New(), bus.New()
	sm, err := streamcore.NewManager(sb)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := streamcore.NewManager(cb)
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry("server")
	if _, err := reg.Expose(spec, impl); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(sb, reg, WithStreams(sm))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cb, WithClientStreams(cm))
	if err != nil {
		t.Fatal(err)
	}
	shub := transport.NewHub(sb, "server", transport.WithKeepAlive(-1, 0))
	chub := transport.NewHub(cb, "client", transport.WithKeepAlive(-1, 0))
	t.Cleanup(func() {
		chub.Close()
		shub.Close()
		c.Close()
		srv.Close()
		cm.Close()
		sm.Close()
		cb.Close()
		sb.Close()
	})
	connected, err := bus.NewTopic[transport.ConnEvent](sb, transport.TopicConnected).Subscribe(bus.WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	addr, err := shub.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := chub.Dial(ctx, "ws://"+addr.String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	var sconn *transport.Conn
	select {
	case ev := <-connected.C():
		sconn = ev.Conn
	case <-ctx.Done():
		t.Fatal("the server did not see the connection")
	}
	for _, pc := range []*transport.Conn{conn, sconn} {
		pc.SetExtensions(&transport.Extensions{Version: 1, Names: []string{streamcore.Extension}})
	}
	svc, err := c.QueryInterface(ctx, conn, spec)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// methodEnd waits up to 2 s for a method of impl to finish reading.
func methodEnd(t *testing.T, impl *uploadSvc, what string) error {
	t.Helper()
	select {
	case err := <-impl.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the method still waits for its stream argument: %s", what)
		return nil
	}
}

// A method that produces a stream and reads one is released when the
// consumer of its stream stops: the argument is bound to the method's
// context, the stream it produces.
func TestStreamArgumentEndsWithTheMethodsStream(t *testing.T) {
	svc, impl := uploadPair(t)
	never := make(chan int)
	defer close(never)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := rpc.OpenStream[int](ctx, svc, "relay", stream.FromChan((<-chan int)(never)))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := methodEnd(t, impl, "its stream was cancelled"); !errors.Is(err, streamcore.ErrCancelled) {
		t.Fatalf("the argument ended with %v, want ErrCancelled", err)
	}
}

// A call that gives up (its context ends) ends the streams it passed: the
// method reading one gets an error instead of waiting for ever.
func TestCancelledCallEndsItsStreamArguments(t *testing.T) {
	svc, impl := uploadPair(t)
	never := make(chan int)
	defer close(never)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := rpc.Call[int](ctx, svc, "sum", stream.FromChan((<-chan int)(never))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call: %v, want its deadline", err)
	}
	if err := methodEnd(t, impl, "its caller gave up"); !errors.Is(err, streamcore.ErrRemote) {
		t.Fatalf("the argument ended with %v, want the caller's abort (ErrRemote)", err)
	}
}
