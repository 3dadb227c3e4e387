package stream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"

	"github.com/netron-go/netron/internal/streamcore"
)

// Source is a stream of values a producer hands over whole: a service
// method returns one, or a caller passes one as an argument (an upload).
// Make one with FromChan, FromSeq or FromFunc; package rpc also accepts a
// plain <-chan T or iter.Seq2[T, error] where a Source goes. Sources are
// live unless wrapped by Finite.
type Source interface {
	// run sends the values to o until the source ends or o's consumer
	// stops; it returns the producer's error.
	run(ctx context.Context, o *streamcore.Outbound) error
	isLive() bool
}

// FromChan makes a Source of a channel: every value received is a chunk,
// and the channel's close is the end of the stream. The stream takes a
// value only when it has credit, so the producer's channel send waits
// while the consumer is behind: producers should select on their context
// too, which is cancelled when the consumer stops. A channel cannot carry
// an error; use FromSeq or FromFunc for producers that can fail.
func FromChan[T any](ch <-chan T) Source { return chanSource[T]{ch} }

type chanSource[T any] struct{ ch <-chan T }

func (chanSource[T]) isLive() bool { return true }

func (s chanSource[T]) run(ctx context.Context, o *streamcore.Outbound) error {
	if s.ch == nil {
		return errors.New("stream: nil channel")
	}
	send := senderOf[T](o)
	for {
		if err := o.Ready(ctx); err != nil {
			return err
		}
		select {
		case v, ok := <-s.ch:
			if !ok {
				return nil
			}
			if err := send(ctx, v); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// FromSeq makes a Source of an iterator: each value is a chunk, a non-nil
// error ends the stream with that error after the chunks before it, and
// the iterator's end is the end of the stream. When the consumer stops,
// yield returns false.
func FromSeq[T any](seq iter.Seq2[T, error]) Source { return seqSource[T]{seq} }

type seqSource[T any] struct{ seq iter.Seq2[T, error] }

func (seqSource[T]) isLive() bool { return true }

func (s seqSource[T]) run(ctx context.Context, o *streamcore.Outbound) error {
	if s.seq == nil {
		return errors.New("stream: nil iterator")
	}
	send := senderOf[T](o)
	for v, err := range s.seq {
		if err != nil {
			return err
		}
		if err := send(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// senderOf returns how values of type T are sent to o: Outbound.Send, or
// for []byte sendBytes, which spares the interface (an allocation per
// chunk). Chosen once per stream: a test on every value would box it.
func senderOf[T any](o *streamcore.Outbound) func(context.Context, T) error {
	if f, ok := any(o.SendBytes).(func(context.Context, T) error); ok {
		return f
	}
	return func(ctx context.Context, v T) error { return o.Send(ctx, v) }
}

// FromFunc makes a Source of a function that writes to a Writer; its
// error ends the stream.
func FromFunc[T any](f func(ctx context.Context, w *Writer[T]) error) Source {
	return funcSource[T]{f}
}

type funcSource[T any] struct {
	f func(context.Context, *Writer[T]) error
}

func (funcSource[T]) isLive() bool { return true }

func (s funcSource[T]) run(ctx context.Context, o *streamcore.Outbound) error {
	if s.f == nil {
		return errors.New("stream: nil function")
	}
	w := &Writer[T]{}
	w.bindWriter(o)
	return s.f(ctx, w)
}

// Finite marks a Source finite: its consumer ends it with ErrInactive when
// no chunk comes for the inactivity timeout (a live stream waits forever).
func Finite(src Source) Source { return finite{src} }

type finite struct{ Source }

func (finite) isLive() bool { return false }

// reflection, for package rpc: plain channels and iterators as sources.

var (
	sourceType = reflect.TypeFor[Source]()
	errorType  = reflect.TypeFor[error]()
	boolType   = reflect.TypeFor[bool]()
)

// isSourceType reports whether a value of type t can be streamed: a
// Source, a receivable channel, or an iter.Seq2[T, error] (any function
// type of that shape).
func isSourceType(t reflect.Type) bool {
	switch {
	case t.Implements(sourceType):
		return true
	case t.Kind() == reflect.Chan:
		return t.ChanDir()&reflect.RecvDir != 0 && carriable(t.Elem())
	case t.Kind() == reflect.Func:
		if t.NumIn() != 1 || t.NumOut() != 0 || t.IsVariadic() {
			return false
		}
		y := t.In(0)
		return y.Kind() == reflect.Func && y.NumIn() == 2 && y.NumOut() == 1 && !y.IsVariadic() &&
			y.In(1) == errorType && y.Out(0) == boolType && carriable(y.In(0))
	}
	return false
}

func carriable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}

// sourceOf returns the Source a value of a type isSourceType accepts
// stands for.
func sourceOf(v reflect.Value) (Source, error) {
	if !v.IsValid() {
		return nil, fmt.Errorf("%w: no value", ErrNotStream)
	}
	if s, ok := v.Interface().(Source); ok && s != nil {
		return s, nil
	}
	switch v.Kind() {
	case reflect.Chan:
		if v.IsNil() {
			return nil, fmt.Errorf("%w: nil channel", ErrNotStream)
		}
		if isSourceType(v.Type()) {
			if s, ok := typedSource(v); ok {
				return s, nil
			}
		}
		return reflChan{v}, nil
	case reflect.Func:
		if v.IsNil() {
			return nil, fmt.Errorf("%w: nil iterator", ErrNotStream)
		}
		if isSourceType(v.Type()) {
			if s, ok := typedSource(v); ok {
				return s, nil
			}
			return reflSeq{v}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNotStream, v.Type())
}

type reflChan struct{ ch reflect.Value }

func (reflChan) isLive() bool { return true }

func (s reflChan) run(ctx context.Context, o *streamcore.Outbound) error {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: s.ch},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
	}
	for {
		if err := o.Ready(ctx); err != nil {
			return err
		}
		chosen, v, ok := reflect.Select(cases)
		if chosen == 1 {
			return context.Cause(ctx)
		}
		if !ok {
			return nil
		}
		if err := o.Send(ctx, v.Interface()); err != nil {
			return err
		}
	}
}

type reflSeq struct{ seq reflect.Value }

func (reflSeq) isLive() bool { return true }

var (
	reflTrue  = []reflect.Value{reflect.ValueOf(true)}
	reflFalse = []reflect.Value{reflect.ValueOf(false)}
)

func (s reflSeq) run(ctx context.Context, o *streamcore.Outbound) error {
	var err error
	yield := reflect.MakeFunc(s.seq.Type().In(0), func(args []reflect.Value) []reflect.Value {
		if err != nil {
			return reflFalse // an iterator that ignores a false yield
		}
		if e := args[1]; !e.IsNil() {
			err = e.Interface().(error)
			return reflFalse
		}
		if err = o.Send(ctx, args[0].Interface()); err != nil {
			return reflFalse
		}
		return reflTrue
	})
	s.seq.Call([]reflect.Value{yield})
	return err
}

// typedSources make the Source of a channel or iterator of a common
// element type without reflection on every value (reflect.Select, or
// reflect.MakeFunc's yield and an interface per value): the value is
// converted once to <-chan T or iter.Seq2[T, error].
var typedSources = []func(reflect.Value) (Source, bool){
	typedSourceOf[[]byte],
	typedSourceOf[string],
	typedSourceOf[any],
	typedSourceOf[map[string]any],
	typedSourceOf[int],
	typedSourceOf[int64],
	typedSourceOf[float64],
}

// typedSource returns a Source of v (a non-nil channel or iterator that
// isSourceType accepts) that does not reflect per value, when its element
// type is one of typedSources'.
func typedSource(v reflect.Value) (Source, bool) {
	for _, f := range typedSources {
		if s, ok := f(v); ok {
			return s, true
		}
	}
	return nil, false
}

func typedSourceOf[T any](v reflect.Value) (Source, bool) {
	t := v.Type()
	switch t.Kind() {
	case reflect.Chan:
		ct := reflect.TypeFor[<-chan T]()
		if t.Elem() != ct.Elem() || !t.ConvertibleTo(ct) {
			return nil, false
		}
		return chanSource[T]{v.Convert(ct).Interface().(<-chan T)}, true
	case reflect.Func:
		st := reflect.TypeFor[func(func(T, error) bool)]()
		if !t.ConvertibleTo(st) {
			return nil, false
		}
		return yieldSource[T]{v.Convert(st).Interface().(func(func(T, error) bool))}, true
	}
	return nil, false
}

// yieldSource is the Source of an iterator a method returned: reflSeq
// without reflection. Like reflSeq (and unlike FromSeq, whose range over
// the iterator panics then), it tolerates an iterator that calls yield
// again after yield returned false.
type yieldSource[T any] struct{ seq func(func(T, error) bool) }

func (yieldSource[T]) isLive() bool { return true }

func (s yieldSource[T]) run(ctx context.Context, o *streamcore.Outbound) error {
	send := senderOf[T](o)
	var err error
	s.seq(func(v T, e error) bool {
		if err != nil {
			return false // an iterator that ignores a false yield
		}
		if e != nil {
			err = e
			return false
		}
		if err = send(ctx, v); err != nil {
			return false
		}
		return true
	})
	return err
}
