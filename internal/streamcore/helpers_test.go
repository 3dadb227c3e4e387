package streamcore_test

import (
	"context"
	"reflect"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/stream"
)

// Package stream's typed ends, built as the engines build them (through
// what stream registered with streamcore.RegisterTyped).

func newReader[T any](ctx context.Context, in *streamcore.Inbound) *stream.Reader[T] {
	return streamcore.T().NewReader(ctx, reflect.TypeFor[*stream.Reader[T]](), in).Interface().(*stream.Reader[T])
}

func newWriter[T any](o *streamcore.Outbound) *stream.Writer[T] {
	return streamcore.T().NewWriter(reflect.TypeFor[*stream.Writer[T]](), o).Interface().(*stream.Writer[T])
}

// pipe returns the two ends of an in-process stream with flow control.
func pipe[T any](m *streamcore.Manager, live bool) (*stream.Writer[T], *stream.Reader[T], error) {
	o, err := m.NewOutbound(nil, live)
	if err != nil {
		return nil, nil, err
	}
	in, err := m.Accept(nil, o.Reference())
	if err != nil {
		o.Abort(err)
		return nil, nil, err
	}
	return newWriter[T](o), newReader[T](context.Background(), in), nil
}

// producer returns how src (a stream.Source, a channel, an iterator, or a
// streamcore.Producer already) is streamed; it panics on anything else.
func producer(src any) streamcore.Producer {
	if p, ok := src.(streamcore.Producer); ok {
		return p
	}
	p, err := streamcore.T().Producer(reflect.ValueOf(src))
	if err != nil {
		panic(err)
	}
	return p
}

// run pumps src into o in a goroutine the Manager owns.
func run(o *streamcore.Outbound, src stream.Source) bool { return streamcore.Start(o, producer(src)) }

func isLive(src any) bool { return producer(src).Live }
