package stream_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/stream"
)

// An in-process stream: the producer is held back by flow control, the
// consumer ranges over a channel and then reads the final error.
func Example() {
	b := bus.New()
	defer b.Close()
	m, err := stream.NewManager(b)
	if err != nil {
		panic(err)
	}
	defer m.Close()

	w, r, err := stream.Pipe[string](m, false)
	if err != nil {
		panic(err)
	}
	go func() {
		ctx := context.Background()
		for _, s := range []string{"alpha", "beta", "gamma"} {
			if err := w.Send(ctx, s); err != nil {
				return // the consumer stopped
			}
		}
		w.Close(errors.New("out of letters"))
	}()
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
	b := bus.New()
	defer b.Close()
	m, _ := stream.NewManager(b)
	defer m.Close()

	w, r, _ := stream.Pipe[int](m, true)
	done := make(chan error)
	go func() {
		for i := 0; ; i++ { // would run forever
			if err := w.Send(context.Background(), i); err != nil {
				done <- err
				return
			}
		}
	}()
	for v, err := range r.All() {
		if err != nil {
			panic(err)
		}
		if v == 3 {
			break
		}
	}
	fmt.Println(errors.Is(<-done, stream.ErrCancelled))
	// Output: true
}
