package bus

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Subscription is a typed subscription to one topic, created by
// Topic.Subscribe or Subscribe. Its channel, C, receives the topic's values
// in publish order. All methods may be called concurrently.
type Subscription[T any] struct {
	tp     *topic
	name   string
	policy Policy
	ch     chan T

	closing   chan struct{} // closed first by close, releases a blocked publisher
	closeOnce sync.Once
	mu        sync.Mutex // serialises sends with the closing of ch
	closed    bool       // guarded by mu

	dropped atomic.Uint64
	warn    warner
}

var _ sink = (*Subscription[int])(nil)

func newSubscription[T any](tp *topic, sc subConfig) *Subscription[T] {
	return &Subscription[T]{
		tp:      tp,
		name:    sc.name,
		policy:  sc.policy,
		ch:      make(chan T, sc.buffer),
		closing: make(chan struct{}),
	}
}

// C returns the channel that delivers the subscription's values. It is
// closed by Close, and by the Bus's Close; values already buffered can
// still be received after that.
func (s *Subscription[T]) C() <-chan T { return s.ch }

// Close unsubscribes and closes the channel. A publisher blocked on this
// subscription's full buffer moves on to the next subscriber. Close is
// idempotent and always returns nil.
func (s *Subscription[T]) Close() error {
	s.tp.bus.removeSink(s.tp, s)
	s.close()
	return nil
}

// Policy returns what the subscription does when its buffer is full (see
// WithPolicy).
func (s *Subscription[T]) Policy() Policy { return s.policy }

// Dropped returns how many values the subscription has discarded: by its
// DropNewest or DropOldest policy, or because a value could not be
// converted to T.
func (s *Subscription[T]) Dropped() uint64 { return s.dropped.Load() }

func (s *Subscription[T]) close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		close(s.ch)
		s.mu.Unlock()
	})
}

func (s *Subscription[T]) deliver(e *envelope) error {
	v, err := convert[T](e)
	if err != nil {
		n := s.dropped.Add(1)
		s.tp.bus.warnUndeliverable(&s.warn, s.tp.name, s.name, err, n)
		return nil
	}
	return s.send(e.ctx, v)
}

// send puts v in the channel according to the policy. It runs under the
// topic's publish lock, so there is one sender at a time.
func (s *Subscription[T]) send(ctx context.Context, v T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.policy == Block {
		return offerBlock(ctx, s.ch, v, s.closing, s.tp.bus)
	}
	if !offerDrop(s.ch, v, s.policy) {
		n := s.dropped.Add(1)
		s.tp.bus.warnDropped(&s.warn, s.tp.name, s.name, s.policy, n)
	}
	return nil
}

// offerBlock sends v on ch, waiting while it is full until ctx ends, the
// subscription closes (closing) or the Bus closes.
func offerBlock[E any](ctx context.Context, ch chan E, v E, closing <-chan struct{}, b *Bus) error {
	select {
	case ch <- v:
		return nil
	default:
	}
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return ErrClosed
	case <-closing:
		if b.closed.Load() {
			return ErrClosed
		}
		return nil
	}
}

// offerDrop puts v in ch without waiting, applying a drop policy when ch
// is full. It reports false when a value was dropped: v for DropNewest,
// the oldest buffered value for DropOldest (or v, when ch is unbuffered).
// The caller must be ch's only sender.
func offerDrop[E any](ch chan E, v E, p Policy) bool {
	select {
	case ch <- v:
		return true
	default:
	}
	if p == DropNewest || cap(ch) == 0 {
		return false
	}
	dropped := false
	select {
	case <-ch:
		dropped = true
	default: // the consumer emptied the buffer meanwhile
	}
	// There is room now: only consumers run concurrently, and they only
	// make more.
	ch <- v
	return !dropped
}

// funcSink is a SubscribeFunc callback.
type funcSink[T any] struct {
	tp      *topic
	name    string
	fn      func(context.Context, T)
	closed  atomic.Bool
	dropped atomic.Uint64
	warn    warner
}

func (s *funcSink[T]) close() { s.closed.Store(true) }

func (s *funcSink[T]) deliver(e *envelope) error {
	if s.closed.Load() {
		return nil
	}
	v, err := convert[T](e)
	if err != nil {
		n := s.dropped.Add(1)
		s.tp.bus.warnUndeliverable(&s.warn, s.tp.name, s.name, err, n)
		return nil
	}
	s.call(e.ctx, v)
	return nil
}

func (s *funcSink[T]) call(ctx context.Context, v T) {
	if s.closed.Load() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.tp.bus.log.LogAttrs(ctx, slog.LevelError, "bus: panic in SubscribeFunc callback recovered",
				slog.String("topic", s.tp.name),
				slog.String("subscription", s.name),
				slog.String("panic", fmt.Sprint(r)),
				slog.String("stack", string(debug.Stack())))
		}
	}()
	s.fn(ctx, v)
}
