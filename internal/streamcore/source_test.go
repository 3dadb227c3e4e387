package streamcore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"testing"

	"github.com/netron-go/netron/internal/streamcore"
)

type (
	namedSeq  func(func(string, error) bool)
	namedChan chan int64
	blob      []byte // an element type without a typed source: reflection
)

// The channels and iterators a method returns (reflect.Values) stream the
// same values whether SourceOf converts them to a typed source or reflects
// on every value.
func TestSourceOfTypes(t *testing.T) {
	_, m := newLocal(t)
	run := func(t *testing.T, v any) []any {
		t.Helper()
		src, err := streamcore.T().Producer(reflect.ValueOf(v))
		if err != nil {
			t.Fatal(err)
		}
		got, err := runLocal[any](t, m, src)
		if err != io.EOF {
			t.Fatalf("end: %v", err)
		}
		return got
	}
	bytesChan := make(chan []byte, 3)
	bytesChan <- []byte("a")
	bytesChan <- nil
	bytesChan <- []byte{}
	close(bytesChan)
	int64Chan := make(namedChan, 2)
	int64Chan <- 1
	int64Chan <- -2
	close(int64Chan)
	anyChan := make(chan any, 2)
	anyChan <- "x"
	anyChan <- map[string]any{"k": int64(1)}
	close(anyChan)
	blobChan := make(chan blob, 1)
	blobChan <- blob("z")
	close(blobChan)
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"seq of []byte", iter.Seq2[[]byte, error](func(yield func([]byte, error) bool) {
			_ = yield([]byte("a"), nil) && yield(nil, nil) && yield([]byte{}, nil)
		}), "[[97] <nil> []]"},
		{"named seq of string", namedSeq(func(yield func(string, error) bool) {
			_ = yield("a", nil) && yield("b", nil)
		}), "[a b]"},
		{"seq of float64", func(yield func(float64, error) bool) { yield(1.5, nil) }, "[1.5]"},
		{"seq of blob", func(yield func(blob, error) bool) { yield(blob("z"), nil) }, "[[122]]"},
		{"chan of []byte", bytesChan, "[[97] <nil> []]"},
		{"named chan of int64", (<-chan int64)(int64Chan), "[1 -2]"},
		{"chan of any", anyChan, "[x map[k:1]]"},
		{"chan of blob", blobChan, "[[122]]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := fmt.Sprint(run(t, c.v)); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// An iterator returned by a method that calls yield again after yield
// returned false does not break the producer (reflection tolerated it; a
// range over the iterator would panic).
func TestSourceOfIgnoredFalseYield(t *testing.T) {
	for _, v := range []any{
		iter.Seq2[int, error](func(yield func(int, error) bool) {
			for i := range 10 {
				yield(i, nil)
			}
		}),
		iter.Seq2[blob, error](func(yield func(blob, error) bool) {
			for range 10 {
				yield(blob("x"), nil)
			}
		}),
	} {
		_, m := newLocal(t)
		src, err := streamcore.T().Producer(reflect.ValueOf(v))
		if err != nil {
			t.Fatal(err)
		}
		o, err := m.NewOutbound(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		in, err := m.Accept(nil, o.Reference())
		if err != nil {
			t.Fatal(err)
		}
		in.Close() // the consumer stops: Send fails, yield returns false
		if err := src.Run(context.Background(), o); !errors.Is(err, streamcore.ErrCancelled) {
			t.Fatalf("%T: Pump: %v", v, err)
		}
		o.Close(nil)
	}
}

// Chunks of several flow-controlled streams queued on one connection
// (transport.Conn.Queue, batched between Go peers) arrive whole and in order.
func TestChunksQueuedInOrder(t *testing.T) {
	for _, window := range []int{64 << 10, 256 << 10} {
		t.Run(fmt.Sprint(window), func(t *testing.T) {
			server, client := pair(t, true, streamcore.WithWindow(window))
			const streams, n = 3, 300
			type result struct {
				i   int
				err error
			}
			done := make(chan result, streams)
			for i := range streams {
				w, r := open[[]byte](t, server, client, false)
				go func() {
					buf := make([]byte, 40<<10)
					for j := range n {
						b := buf[:(j*977)%len(buf)]
						for k := range b {
							b[k] = byte(i + j + k)
						}
						if err := w.Send(context.Background(), b); err != nil {
							t.Error(err)
							return
						}
					}
					w.Close(nil)
				}()
				go func() {
					j := 0
					for got, err := range r.All() {
						if err != nil {
							done <- result{i, err}
							return
						}
						want := make([]byte, (j*977)%(40<<10))
						for k := range want {
							want[k] = byte(i + j + k)
						}
						if !bytes.Equal(got, want) {
							done <- result{i, fmt.Errorf("chunk %d: %d bytes, not the ones sent", j, len(got))}
							return
						}
						j++
					}
					if j != n {
						done <- result{i, fmt.Errorf("%d chunks", j)}
						return
					}
					done <- result{i, nil}
				}()
			}
			for range streams {
				if r := <-done; r.err != nil {
					t.Fatalf("stream %d: %v", r.i, r.err)
				}
			}
		})
	}
}
