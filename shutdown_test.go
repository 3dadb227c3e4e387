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

// Stop lets a call in flight finish, while new calls to the leaving node
// fail fast; Close cuts calls short.
func TestGracefulStop(t *testing.T) {
	server, _, svc := pair(t)
	ctx := context.Background()
	result := make(chan error, 1)
	go func() {
		got, err := rpc.Call[int](ctx, svc, "sleep", 300)
		if err == nil && got != 300 {
			err = errors.New("wrong result")
		}
		result <- err
	}()
	time.Sleep(50 * time.Millisecond) // the call is running on the server
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		stopped <- server.Stop(sctx)
	}()
	// The goaway reaches the client: a new call fails fast without being
	// sent, the running one is not disturbed.
	waitFor(t, "goaway", func() bool {
		_, err := svc.Call(ctx, "int", 1)
		return errors.Is(err, peer.ErrGoingAway)
	})
	if err := <-result; err != nil {
		t.Fatalf("call in flight during Stop: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestCloseCutsCalls(t *testing.T) {
	server, _, svc := pair(t)
	result := make(chan error, 1)
	go func() {
		_, err := svc.Call(context.Background(), "sleep", 10_000)
		result <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := <-result; !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("call cut by Close: %v", err)
	}
}

// A Stop whose deadline passes closes anyway and returns.
func TestStopDeadline(t *testing.T) {
	server, _, svc := pair(t)
	go svc.Call(context.Background(), "sleep", 10_000)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := server.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stop with a 100 ms deadline took %v", d)
	}
}
