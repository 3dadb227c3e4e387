package streamcore

import (
	"context"
	"reflect"
)

// Typed is what package stream gives the engines: its typed ends of a
// stream, which the engines find among a method's parameters and results
// by reflection. Package stream registers it in its init.
type Typed struct {
	// IsReader, IsWriter and IsSource report whether t is a
	// *stream.Reader[T], a *stream.Writer[T], or what can be streamed (a
	// stream.Source, a receivable channel, an iter.Seq2[T, error]).
	IsReader, IsWriter, IsSource func(t reflect.Type) bool
	// NewReader returns a *stream.Reader[T] of type t reading in.
	NewReader func(ctx context.Context, t reflect.Type, in *Inbound) reflect.Value
	// NewWriter returns a *stream.Writer[T] of type t writing to o.
	NewWriter func(t reflect.Type, o *Outbound) reflect.Value
	// Producer returns how v, of a type IsSource accepts, is streamed.
	Producer func(v reflect.Value) (Producer, error)
	// RemoteError returns a *stream.RemoteError.
	RemoteError func(message string, cause error) error
}

// Producer is a stream.Source as the engines run it.
type Producer struct {
	// Run sends the values to o until the source ends, o's consumer stops
	// or ctx ends, and returns the producer's error. It does not close o.
	Run func(ctx context.Context, o *Outbound) error
	// Live reports whether the stream is live.
	Live bool
}

// Start runs p into o with o's context in a goroutine the Manager owns and
// closes o with p's result (see Outbound.Start).
func Start(o *Outbound, p Producer) bool {
	return o.Start(func(ctx context.Context) error { return p.Run(ctx, o) })
}

// PublicValue replaces the wire values inside a chunk decoded into an
// empty interface (a stream.Reader[any]) by what a user can name; package
// rpc's engine sets it at init (rpc.Result.Decode says what they are).
var PublicValue = func(v any) any { return v }

var typed *Typed

// RegisterTyped is called once, by package stream's init.
func RegisterTyped(t Typed) {
	if typed != nil {
		panic("streamcore: RegisterTyped called twice")
	}
	typed = &t
}

// T returns what package stream registered.
func T() *Typed {
	if typed == nil {
		panic("streamcore: package stream is not linked (import it)")
	}
	return typed
}

// RemoteError returns the error a producer ended its stream with
// (*stream.RemoteError once package stream is linked; streamcore's own
// tests, which cannot import it, get a plain error that matches the same
// sentinels).
func RemoteError(message string, cause error) error {
	if typed != nil {
		return typed.RemoteError(message, cause)
	}
	return &remoteErr{message: message, cause: cause}
}

type remoteErr struct {
	message string
	cause   error
}

func (e *remoteErr) Error() string        { return "stream: producer failed: " + e.message }
func (e *remoteErr) Is(target error) bool { return target == ErrRemote }
func (e *remoteErr) Unwrap() error        { return e.cause }
