package stream_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// Letters writes three letters, then fails; Forever counts until its
// consumer stops, and reports why it stopped on Stopped.
type Letters struct{ Stopped chan error }

func (Letters) Letters(ctx context.Context, w *stream.Writer[string]) error {
	for _, s := range []string{"alpha", "beta", "gamma"} {
		if err := w.Send(ctx, s); err != nil {
			return err // the consumer stopped
		}
	}
	return errors.New("out of letters")
}

func (l Letters) Forever(ctx context.Context, w *stream.Writer[int]) error {
	for i := 0; ; i++ { // would run forever
		if err := w.Send(ctx, i); err != nil {
			l.Stopped <- err
			return err
		}
	}
}

// A stream from a method of a service: the producer is held back by flow
// control, the consumer ranges over a channel and then reads the final
// error. (The service is the node's own, so the stream stays in the
// process; a peer's works the same over the network.)
func Example() {
	ctx := context.Background()
	n, _ := netron.New(netron.Config{ID: "letters-node"})
	defer n.Close()
	_ = n.Expose("letters@1.0.0", Letters{})
	svc, err := n.Service(ctx, "letters")
	if err != nil {
		panic(err)
	}

	r, err := rpc.OpenStream[string](ctx, svc, "letters")
	if err != nil {
		panic(err)
	}
	defer r.Close()
	for s := range r.C() {
		fmt.Println(s)
	}
	fmt.Println("error:", r.Err())
	fmt.Println("from the producer:", errors.Is(r.Err(), stream.ErrRemote))
	// Output:
	// alpha
	// beta
	// gamma
	// error: stream: producer failed: out of letters
	// from the producer: true
}

// A consumer that breaks out of All cancels its producer: the producer's
// Send returns ErrCancelled.
func ExampleReader_All() {
	ctx := context.Background()
	n, _ := netron.New(netron.Config{ID: "count-node"})
	defer n.Close()
	stopped := make(chan error, 1)
	_ = n.Expose("count@1.0.0", Letters{Stopped: stopped})
	svc, _ := n.Service(ctx, "count")

	r, err := rpc.OpenStream[int](ctx, svc, "forever")
	if err != nil {
		panic(err)
	}
	for v, err := range r.All() {
		if err != nil {
			panic(err)
		}
		if v == 3 {
			break
		}
	}
	fmt.Println(errors.Is(<-stopped, stream.ErrCancelled))
	// Output: true
}
