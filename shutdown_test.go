package netron_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Held's Hold tells the test that a call runs, then holds it until the
// test lets it go (it returns 1) or its context ends.
type Held struct {
	entered chan struct{}
	open    chan struct{}
}

func newHeld() *Held { return &Held{entered: make(chan struct{}, 16), open: make(chan struct{})} }

func (h *Held) Hold(ctx context.Context) (int, error) {
	h.entered <- struct{}{}
	select {
	case <-h.open:
		return 1, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Ping answers at once.
func (h *Held) Ping() int { return 1 }

// heldPair is pair whose server also exposes a Held as held@1.0.0; it
// returns the client's handle on it.
func heldPair(t *testing.T) (server *netron.Node, svc *rpc.Service, h *Held) {
	t.Helper()
	server, client, _ := pair(t)
	h = newHeld()
	if err := server.Expose("held@1.0.0", h); err != nil {
		t.Fatal(err)
	}
	svc, err := client.Peers()[0].Service(context.Background(), "held@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return server, svc, h
}

// callHeld calls hold on svc in the background and returns once the call
// runs on the server; the call's error arrives on the channel.
func callHeld(t *testing.T, svc *rpc.Service, h *Held) <-chan error {
	t.Helper()
	result := make(chan error, 1)
	go func() {
		got, err := rpc.Call[int](context.Background(), svc, "hold")
		if err == nil && got != 1 {
			err = errors.New("wrong result")
		}
		result <- err
	}()
	select {
	case <-h.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the call never ran on the server")
	}
	return result
}

// within waits up to 30 s for what a channel brings.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing within 30 s", what)
		panic("unreachable")
	}
}

// Stop lets a call in flight finish, while new calls to the leaving node
// fail fast; Close cuts calls short.
func TestGracefulStop(t *testing.T) {
	server, svc, h := heldPair(t)
	ctx := context.Background()
	result := callHeld(t, svc, h)
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		stopped <- server.Stop(sctx)
	}()
	// The goaway reaches the client: a new call fails fast without being
	// sent, the running one is not disturbed.
	waitFor(t, "goaway", func() bool {
		_, err := svc.Call(ctx, "ping")
		return errors.Is(err, peer.ErrGoingAway)
	})
	close(h.open)
	if err := within(t, "the call in flight", result); err != nil {
		t.Fatalf("call in flight during Stop: %v", err)
	}
	if err := within(t, "Stop", stopped); err != nil {
		t.Fatal(err)
	}
}

// Close does not wait for the calls in flight: they fail with the
// disconnect error.
func TestCloseCutsCalls(t *testing.T) {
	server, svc, h := heldPair(t)
	result := callHeld(t, svc, h)
	closed := make(chan error, 1)
	go func() { closed <- server.Close() }()
	if err := within(t, "Close", closed); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the call cut by Close", result); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("call cut by Close: %v", err)
	}
}

// A Stop whose deadline passes closes anyway and returns, failing the
// calls still pending with the disconnect error.
func TestStopDeadline(t *testing.T) {
	server, svc, h := heldPair(t)
	result := callHeld(t, svc, h)
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		stopped <- server.Stop(ctx)
	}()
	if err := within(t, "Stop with a 100 ms deadline", stopped); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the pending call", result); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("got %v, want ErrPeerDisconnected", err)
	}
}
