package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"sync"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
)

// Reader is the typed consumer end of a stream: a range over C, a range
// over All, or a loop over Recv, then Err for the final error.
//
//	r, err := rpc.OpenStream[Chunk](ctx, svc, "download", name)
//	defer r.Close()
//	for c := range r.C() { … }
//	if err := r.Err(); err != nil { … }  // nil only after a complete stream
//
// Stopping early (breaking out of All, Close, or cancelling the context
// the stream was opened with) cancels the producer. Chunks are decoded
// into T with the rules of rpc arguments (integers accept exact floats,
// and so on); a []byte reader takes msgpack bin chunks without a copy.
type Reader[T any] struct {
	in       *streamcore.Inbound
	ctx      context.Context // cancels the stream; nil: none
	stopCtx  func() bool
	alias    func([]byte) (T, bool) // the zero-copy decoder when T is []byte
	once     sync.Once
	ch       chan T
	pumpDone chan struct{}
}

func (r *Reader[T]) bindReader(ctx context.Context, in *streamcore.Inbound) {
	r.in = in
	r.alias, _ = any(binPayload).(func([]byte) (T, bool))
	if ctx != nil && ctx.Done() != nil {
		r.ctx = ctx
		r.stopCtx = context.AfterFunc(ctx, func() { in.CloseWith(context.Cause(ctx)) })
	}
}

// ID returns the stream id.
func (r *Reader[T]) ID() uint32 { return r.in.ID() }

// Live reports whether the producer declared the stream live.
func (r *Reader[T]) Live() bool { return r.in.Live() }

// Recv returns the next value, io.EOF after a complete stream, or the
// error the stream ended with (after every value that came before it). It
// waits until ctx ends, which does not end the stream. One goroutine at a
// time may call Recv, and not while C is in use.
func (r *Reader[T]) Recv(ctx context.Context) (T, error) {
	var zero T
	data, err := r.in.Next(ctx)
	if err != nil {
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			r.release()
		}
		return zero, err
	}
	if r.alias != nil {
		if v, ok := r.alias(data); ok {
			// No copy: v aliases the WebSocket message the chunk
			// arrived in (or, for a chunk that shares its message with
			// others, the copy the stream made so as not to keep the
			// whole message alive: Inbound.own). That is safe: transport.Conn
			// gives every message a buffer of its own and never reuses
			// it (transport.Inbound), nothing else writes to a chunk's bytes
			// (a batched message holds other packets too, each read in
			// place), and v's capacity ends with the chunk
			// (binPayload), so appending to it copies instead of
			// overwriting what follows. The consumer owns v; the
			// message is freed when nothing refers to it any more.
			return v, nil
		}
	}
	var v T
	if max := r.in.DecodeMax(); max != streamcore.Trusted {
		err = wire.UnmarshalMax(data, &v, max)
	} else {
		err = wire.UnmarshalTrusted(data, &v) // an in-process pipe: our own bytes
	}
	if p, ok := any(&v).(*any); ok && err == nil {
		*p = streamcore.PublicValue(*p)
	}
	if err != nil {
		err = fmt.Errorf("%w into %T: %w", ErrDecode, zero, err)
		r.in.CloseWith(err)
		r.release()
		return zero, err
	}
	return v, nil
}

// release stops watching the opening context once the stream has ended.
func (r *Reader[T]) release() {
	if r.stopCtx != nil {
		r.stopCtx()
	}
}

// All returns an iterator over the stream's values. A broken stream ends
// the iteration with one last pair carrying the error and a zero value; a
// complete stream ends without one. Breaking out of the loop cancels the
// stream.
func (r *Reader[T]) All() iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			v, err := r.Recv(context.Background())
			if err == io.EOF {
				r.Close()
				return
			}
			if err != nil {
				r.Close()
				yield(v, err)
				return
			}
			if !yield(v, nil) {
				r.Close()
				return
			}
		}
	}
}

// C returns a channel that delivers the stream's values and is closed at
// the end of the stream, broken or not: read Err afterwards. A goroutine
// of the Reader feeds it; a consumer that stops reading before the end
// must Close the Reader (or cancel its context) to stop the producer and
// that goroutine.
func (r *Reader[T]) C() <-chan T {
	r.once.Do(func() {
		r.ch = make(chan T)
		r.pumpDone = make(chan struct{})
		go r.pump()
	})
	return r.ch
}

func (r *Reader[T]) pump() {
	defer close(r.pumpDone)
	defer close(r.ch)
	for {
		v, err := r.Recv(context.Background())
		if err != nil {
			return
		}
		select {
		case r.ch <- v:
		case <-r.in.Stopped():
			return
		}
	}
}

// Err returns nil while the stream runs and after a complete stream;
// otherwise why it ended: a *RemoteError (ErrRemote) from a failing
// producer, an error matching peer.ErrDisconnected when the connection
// closed, ErrClosed after Close, the context's error, or a protocol error
// (ErrIndexGap, ErrCreditOverflow, …).
func (r *Reader[T]) Err() error { return r.in.Err() }

// Close stops reading: an unfinished stream is cancelled (the producer's
// context is cancelled) and Err reports ErrClosed. It waits for the
// goroutine of C. Close is idempotent.
func (r *Reader[T]) Close() error {
	var cause error
	if r.ctx != nil && r.ctx.Err() != nil {
		cause = context.Cause(r.ctx) // cancelled: say so, not ErrClosed
	}
	r.in.CloseWith(cause)
	r.release()
	if r.pumpDone != nil {
		<-r.pumpDone
	}
	return nil
}

// binPayload returns the bytes of a msgpack bin value that is all of data.
func binPayload(data []byte) ([]byte, bool) {
	if len(data) < 2 {
		return nil, false
	}
	var n, h int
	switch data[0] {
	case 0xc4:
		n, h = int(data[1]), 2
	case 0xc5:
		if len(data) < 3 {
			return nil, false
		}
		n, h = int(binary.BigEndian.Uint16(data[1:])), 3
	case 0xc6:
		if len(data) < 5 {
			return nil, false
		}
		n, h = int(binary.BigEndian.Uint32(data[1:])), 5
	default:
		return nil, false
	}
	if h+n != len(data) {
		return nil, false
	}
	return data[h:len(data):len(data)], true
}

// Writer is the typed producer end of a stream. A service method that
// takes a *Writer[T] as its last parameter streams what it sends; its
// returned error ends the stream (nil: the end of stream).
//
//	func (s *Svc) Ticks(ctx context.Context, n int, w *stream.Writer[int]) error {
//		for i := range n {
//			if err := w.Send(ctx, i); err != nil {
//				return err // the consumer stopped or disconnected
//			}
//		}
//		return nil
//	}
type Writer[T any] struct {
	o    *streamcore.Outbound
	send func(context.Context, T) error // senderOf(o)
}

func (w *Writer[T]) bindWriter(o *streamcore.Outbound) { w.o, w.send = o, senderOf[T](o) }

// Send sends v as the next chunk. It waits while the consumer has granted
// no credit, until ctx or the stream ends, and returns ErrCancelled (the
// consumer stopped), the disconnect error, or ctx's error. A value that
// cannot be encoded or exceeds the chunk limit is refused without ending
// the stream. v is encoded before Send returns, so its memory may be
// reused for the next chunk. Send and Close may be called from several
// goroutines; chunks go out in the order their Sends got credit.
func (w *Writer[T]) Send(ctx context.Context, v T) error { return w.send(ctx, v) }

// Close ends the stream: nil sends the end of stream, an error is
// delivered to the consumer after the chunks sent. It returns why the
// stream had already ended, if it had. Idempotent.
func (w *Writer[T]) Close(err error) error { return w.o.Close(err) }

// Context is cancelled when the consumer stops, the connection closes, or
// the stream is closed.
func (w *Writer[T]) Context() context.Context { return w.o.Context() }

// ID returns the stream id.
func (w *Writer[T]) ID() uint32 { return w.o.ID() }

// reflection, for package rpc: Writer and Reader parameters.

type writerBinder interface{ bindWriter(*streamcore.Outbound) }

type readerBinder interface {
	bindReader(context.Context, *streamcore.Inbound)
}

var (
	writerBinderType = reflect.TypeFor[writerBinder]()
	readerBinderType = reflect.TypeFor[readerBinder]()
)

// isWriterType reports whether t is *Writer[T] for some T.
func isWriterType(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer && t.Implements(writerBinderType) && t.Elem().Kind() == reflect.Struct
}

// isReaderType reports whether t is *Reader[T] for some T.
func isReaderType(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer && t.Implements(readerBinderType) && t.Elem().Kind() == reflect.Struct
}

// writerValue returns a *Writer[T] of type t (isWriterType) writing to o.
func writerValue(t reflect.Type, o *streamcore.Outbound) reflect.Value {
	v := reflect.New(t.Elem())
	v.Interface().(writerBinder).bindWriter(o)
	return v
}

// readerValue returns a *Reader[T] of type t (isReaderType) reading in.
func readerValue(ctx context.Context, t reflect.Type, in *streamcore.Inbound) reflect.Value {
	v := reflect.New(t.Elem())
	v.Interface().(readerBinder).bindReader(ctx, in)
	return v
}
