package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// DataService is the seed's: streamData yields chunks a little apart.
type DataService struct {
	// stopped receives a line when an endless producer stops.
	stopped chan string
}

// StreamData produces n chunks "Chunk 0" … as an iterator (the seed's
// async generator), a few milliseconds apart.
func (DataService) StreamData(ctx context.Context, n int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for i := range n {
			if i > 0 && !sleep(ctx, 5*time.Millisecond) {
				return
			}
			if !yield(fmt.Appendf(nil, "Chunk %d", i), nil) {
				return
			}
		}
	}
}

// Reading is a typed chunk: structs travel as msgpack maps.
type Reading struct {
	Sensor string  `msgpack:"sensor"`
	Value  float64 `msgpack:"value"`
}

// Readings produces an endless stream on a channel. It stops when the
// consumer does: the context is cancelled and the send gives up.
func (s DataService) Readings(ctx context.Context, sensor string) <-chan Reading {
	ch := make(chan Reading)
	go func() {
		defer close(ch)
		for i := 0; ; i++ {
			select {
			case ch <- Reading{Sensor: sensor, Value: float64(i) / 2}:
			case <-ctx.Done():
				s.stopped <- "readings producer stopped: the consumer went away"
				return
			}
		}
	}()
	return ch
}

// Faulty sends two chunks through a Writer, then fails: its error ends the
// stream and reaches the consumer after the two chunks.
func (DataService) Faulty(ctx context.Context, w *stream.Writer[int]) error {
	for i := range 2 {
		if err := w.Send(ctx, i); err != nil {
			return err
		}
	}
	return errors.New("sensor offline")
}

// Sum consumes a stream the caller passes as an argument (an upload).
func (DataService) Sum(ctx context.Context, r *stream.Reader[int]) (int, error) {
	total := 0
	for v, err := range r.All() {
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "streaming:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	data := DataService{stopped: make(chan string, 1)}
	server, err := app.New(
		app.WithNetronConfig(netron.Config{ID: "data-node", Host: "127.0.0.1", Server: true}),
		app.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return err
	}
	server.Register(app.Expose(server, "data@1.0.0", data))
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer server.Stop(context.Background())
	node, _ := server.Netron()

	client, err := netron.New(netron.Config{ID: "client-node"})
	if err != nil {
		return err
	}
	defer client.Stop(context.Background())
	p, err := client.Connect(ctx, node.URL())
	if err != nil {
		return err
	}
	svc, err := p.Service(ctx, "data@^1")
	if err != nil {
		return err
	}

	// 1. The seed's loop: for await (const chunk of stream).
	fmt.Fprintln(out, "streamData(5):")
	for chunk, err := range rpc.Stream[[]byte](ctx, svc, "streamData", 5) {
		if err != nil {
			return err // a broken stream; a complete one ends without error
		}
		fmt.Fprintf(out, "  Received: %s\n", chunk)
	}

	// 2. Typed chunks from an endless producer; breaking out of the loop
	// cancels the producer on the other node.
	fmt.Fprintln(out, `readings("thermo") until 1.5:`)
	for r, err := range rpc.Stream[Reading](ctx, svc, "readings", "thermo") {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s = %v\n", r.Sensor, r.Value)
		if r.Value >= 1.5 {
			break
		}
	}
	select {
	case line := <-data.stopped:
		fmt.Fprintf(out, "  %s\n", line)
	case <-ctx.Done():
		return ctx.Err()
	}

	// 3. A producer's error arrives after the chunks sent before it.
	fmt.Fprintln(out, "faulty():")
	r, err := rpc.OpenStream[int](ctx, svc, "faulty")
	if err != nil {
		return err
	}
	for v := range r.C() {
		fmt.Fprintf(out, "  chunk %d\n", v)
	}
	err = r.Err()
	var re *stream.RemoteError
	if errors.As(err, &re) {
		fmt.Fprintf(out, "  the stream failed: %q (errors.Is(err, stream.ErrRemote) = %v)\n", re.Message, errors.Is(err, stream.ErrRemote))
	}
	r.Close()

	// 4. An upload: a channel passed as an argument becomes a stream.
	numbers := make(chan int)
	go func() {
		defer close(numbers)
		for i := 1; i <= 100; i++ {
			select {
			case numbers <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	sum, err := rpc.Call[int](ctx, svc, "sum", (<-chan int)(numbers))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sum(1..100 uploaded as a stream) = %d\n", sum)
	return nil
}
