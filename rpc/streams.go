package rpc

import (
	"context"
	"iter"
	"reflect"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/stream"
)

// OpenStream calls a method that produces a stream and returns its typed
// Reader. ctx bounds the call (with the client's request timeout when it
// has no deadline) and the stream: cancelling it cancels the stream.
// Close the Reader when you stop before the end.
//
//	r, err := rpc.OpenStream[[]byte](ctx, files, "download", "big.bin")
//	if err != nil { … }
//	defer r.Close()
//	for chunk := range r.C() { … }
//	err = r.Err() // nil only if the stream was complete
func OpenStream[T any](ctx context.Context, s *Service, method string, args ...any) (*stream.Reader[T], error) {
	in, err := s.h.OpenStream(ctx, s.def.ID, method, args)
	if err != nil {
		return nil, s.callError(method, err)
	}
	return streamcore.T().NewReader(ctx, reflect.TypeFor[*stream.Reader[T]](), in).Interface().(*stream.Reader[T]), nil
}

// Stream calls a method that produces a stream and returns an iterator
// over its values. A failure (of the call, or of the stream after the
// values before it) is the last pair, with a zero value; a complete stream
// ends without an error. Breaking out of the loop cancels the producer.
//
//	for chunk, err := range rpc.Stream[[]byte](ctx, data, "streamData") { … }
func Stream[T any](ctx context.Context, s *Service, method string, args ...any) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		r, err := OpenStream[T](ctx, s, method, args...)
		if err != nil {
			var zero T
			yield(zero, err)
			return
		}
		for v, err := range r.All() {
			if !yield(v, err) {
				return
			}
		}
	}
}
