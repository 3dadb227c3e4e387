package bus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
)

// topic is the shared state of one topic name: its subscribers and the
// lock that orders its publishes.
type topic struct {
	bus  *Bus
	name string

	// pubMu is held for the whole of one publish, so every subscriber sees
	// the publishes of a topic in one and the same order.
	pubMu sync.Mutex

	// subs is the current subscriber list, replaced (copy on write) under
	// bus.mu, read without a lock by publishers.
	subs atomic.Pointer[[]sink]

	// dead is set, under bus.mu, when the topic lost its last subscriber
	// or the Bus closed; Topic handles then look the name up again.
	dead atomic.Bool

	// env is the envelope of the publish in progress, reused under pubMu
	// and cleared after each publish.
	env envelope
}

func newTopic(b *Bus, name string) *topic {
	return &topic{bus: b, name: name}
}

func (tp *topic) sinks() []sink {
	if p := tp.subs.Load(); p != nil {
		return *p
	}
	return nil
}

// kill marks tp as removed from the Bus. Called under bus.mu.
func (tp *topic) kill() {
	tp.dead.Store(true)
	tp.subs.Store(nil)
}

// sink is one subscriber of a topic.
type sink interface {
	// deliver hands the published value in e to the subscriber, converting
	// it if needed. It runs under the topic's publish lock. A non-nil
	// error stops the publish: the publisher's context ended, or the Bus
	// closed, while the subscriber was full.
	deliver(e *envelope) error
	// close ends the subscription's delivery without removing it from its
	// topic. Idempotent.
	close()
}

// envelope is one published value on its way to subscribers of a
// different kind than the publisher's: the typed value, its Watermill
// form, or both, converted at most once per publish.
type envelope struct {
	tp     *topic
	ctx    context.Context
	val    any // the typed value, if hasVal
	hasVal bool
	msg    *message.Message // the Watermill form, once known
	err    error            // the marshaling error, once known
}

// message returns the Watermill form of e, marshaling the typed value on
// first use.
func (e *envelope) message() (*message.Message, error) {
	if e.msg != nil || e.err != nil {
		return e.msg, e.err
	}
	if m, ok := e.val.(*message.Message); ok && m != nil {
		e.msg = m
		return m, nil
	}
	b := e.tp.bus
	m, err := b.cfg.marshaler.Marshal(e.tp.name, e.val)
	if err == nil && m == nil {
		err = ErrNilMarshal
	}
	if err != nil {
		e.err = err
		return nil, err
	}
	if m.UUID == "" {
		m.UUID = b.newID()
	}
	e.msg = m
	return m, nil
}

// convert returns the value in e as a T: the published value itself when
// it is a T, the Watermill message itself when T is *message.Message (or an
// interface it implements), and otherwise the Watermill form decoded by the
// Marshaler.
func convert[T any](e *envelope) (T, error) {
	if e.hasVal {
		if v, ok := e.val.(T); ok {
			return v, nil
		}
	}
	var v T
	m, err := e.message()
	if err != nil {
		return v, err
	}
	if mv, ok := any(m).(T); ok {
		return mv, nil
	}
	if err := e.tp.bus.cfg.marshaler.Unmarshal(m, &v); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// publishMessages publishes Watermill messages on tp, in order.
func (tp *topic) publishMessages(msgs []*message.Message) error {
	if len(tp.sinks()) == 0 {
		return nil
	}
	tp.pubMu.Lock()
	defer tp.pubMu.Unlock()
	e := &tp.env
	defer func() { *e = envelope{} }()
	for _, m := range msgs {
		*e = envelope{tp: tp, ctx: m.Context(), msg: m}
		for _, s := range tp.sinks() {
			if err := s.deliver(e); err != nil {
				return publishError(tp.name, err)
			}
		}
	}
	return nil
}

// publishTyped publishes v on tp. Subscribers of type T get v directly;
// the others go through an envelope, built on first need.
func publishTyped[T any](ctx context.Context, tp *topic, v T) error {
	if len(tp.sinks()) == 0 {
		return nil
	}
	tp.pubMu.Lock()
	defer tp.pubMu.Unlock()
	var e *envelope
	var err error
	for _, s := range tp.sinks() {
		switch s := s.(type) {
		case *Subscription[T]:
			err = s.send(ctx, v)
		case *funcSink[T]:
			s.call(ctx, v)
		default:
			if ms, ok := s.(*msgSink); ok && ms.dropIfFull() {
				continue // not even boxed for a full DropNewest tap
			}
			if e == nil {
				e = &tp.env
				*e = envelope{tp: tp, ctx: ctx, val: v, hasVal: true}
			}
			err = s.deliver(e)
		}
		if err != nil {
			break
		}
	}
	if e != nil {
		*e = envelope{}
	}
	if err != nil {
		return publishError(tp.name, err)
	}
	return nil
}

// Topic is a typed handle on one topic of a Bus. Handles are cheap; all
// handles with the same name, whatever their T, share the same
// subscribers. A Topic caches the topic's state, so its Publish does no
// map lookup while the topic has subscribers. A Topic may be used
// concurrently.
type Topic[T any] struct {
	bus  *Bus
	name string
	tp   atomic.Pointer[topic]
	// miss is the Bus's topic generation plus one when the last lookup
	// found no subscribers (0: no such lookup): until a topic is created
	// a publish needs no lookup.
	miss atomic.Uint64
}

// NewTopic returns a handle on the topic called name of b, carrying
// values of type T.
func NewTopic[T any](b *Bus, name string) *Topic[T] {
	t := &Topic[T]{bus: b, name: name}
	if tp := b.lookup(name); tp != nil {
		t.tp.Store(tp)
	}
	return t
}

// Name returns the topic's name.
func (t *Topic[T]) Name() string { return t.name }

// resolve returns the live topic state, or nil if the topic has no
// subscribers.
func (t *Topic[T]) resolve() *topic {
	tp := t.tp.Load()
	if tp != nil && !tp.dead.Load() {
		return tp
	}
	g := t.bus.gen.Load()
	if t.miss.Load() == g+1 {
		return nil
	}
	tp = t.bus.lookup(t.name)
	if tp != nil {
		t.tp.Store(tp)
	} else {
		t.miss.Store(g + 1)
	}
	return tp
}

// Publish delivers v to every current subscriber of the topic, in the
// order of the topic's publishes: channel subscriptions of type T get v
// itself, SubscribeFunc callbacks run in this goroutine, Watermill
// subscribers get v marshaled once by the Bus's Marshaler, and typed
// subscribers of another type get it converted (see Subscribe).
//
// Publish waits while a Block subscriber's buffer is full; ctx bounds that
// wait and is otherwise not consulted. It returns nil once v is delivered
// or dropped by every subscriber's policy; ErrClosed if the Bus is closed,
// before or during the wait; the context's error, wrapped, if ctx ended
// the wait, in which case v has reached the subscribers before the full one
// and not those after it. Publishing to a topic with no subscribers does
// nothing and does not allocate.
func (t *Topic[T]) Publish(ctx context.Context, v T) error {
	if t.bus.closed.Load() {
		return ErrClosed
	}
	tp := t.resolve()
	if tp == nil {
		return nil
	}
	return publishTyped(ctx, tp, v)
}

// Subscribe returns a subscription to the topic whose channel receives,
// as T, every value published on it from now on, in publish order.
//
// A value published as a T arrives as it is. A value of another type
// arrives when it is assignable to T (for example when T is an interface
// it implements); otherwise it is converted through the Bus's Marshaler,
// as is a Watermill message published with Bus.Publish, unless T is
// *message.Message, which receives the published message itself, shared
// with every other such subscriber and to be treated as read-only. A value
// that cannot be converted is logged and dropped, and counted by
// Subscription.Dropped.
//
// The channel has the Bus's buffer size (WithBufferSize) unless WithBuffer
// says otherwise, and the Block policy unless WithPolicy says otherwise.
// It needs no goroutine: publishers send into it directly.
func (t *Topic[T]) Subscribe(opts ...SubOption) (*Subscription[T], error) {
	return t.subscribe(opts, callerName(1))
}

func (t *Topic[T]) subscribe(opts []SubOption, name string) (*Subscription[T], error) {
	sc, err := t.bus.subConfig(opts, name)
	if err != nil {
		return nil, err
	}
	tp, s, err := t.bus.addSink(t.name, func(tp *topic) sink {
		return newSubscription[T](tp, sc)
	}, nil)
	if err != nil {
		return nil, err
	}
	t.tp.Store(tp)
	return s.(*Subscription[T]), nil
}

// SubscribeFunc registers fn to be called with every value published on
// the topic from now on, converted as for Subscribe.
//
// fn runs synchronously in the publisher's goroutine, under the topic's
// publish lock, in publish order, with the publisher's context (for a
// Watermill message, its Context()). It must not block and must not
// publish to the same topic (that deadlocks); hand anything slow to
// another goroutine. A panic in fn is recovered and logged; the publisher
// carries on. Unsubscribe is idempotent; a publish running concurrently
// with it may still call fn once.
func (t *Topic[T]) SubscribeFunc(fn func(ctx context.Context, v T)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil func", ErrInvalidOption)
	}
	name := callerName(1)
	tp, s, err := t.bus.addSink(t.name, func(tp *topic) sink {
		return &funcSink[T]{tp: tp, name: name, fn: fn}
	}, nil)
	if err != nil {
		return nil, err
	}
	t.tp.Store(tp)
	fs := s.(*funcSink[T])
	return func() {
		fs.close()
		t.bus.removeSink(tp, fs)
	}, nil
}

// Publish publishes v on topic of b; it is NewTopic[T](b, topic).Publish(ctx, v)
// without the handle. Prefer a Topic for repeated publishes.
func Publish[T any](ctx context.Context, b *Bus, topic string, v T) error {
	if b.closed.Load() {
		return ErrClosed
	}
	tp := b.lookup(topic)
	if tp == nil {
		return nil
	}
	return publishTyped(ctx, tp, v)
}

// Subscribe subscribes to topic of b; it is NewTopic[T](b, topic).Subscribe(opts...).
func Subscribe[T any](b *Bus, topic string, opts ...SubOption) (*Subscription[T], error) {
	t := Topic[T]{bus: b, name: topic}
	return t.subscribe(opts, callerName(1))
}
