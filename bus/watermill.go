package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// msgSink is a Watermill subscription: publishers put messages in buf, and
// one goroutine (run) hands them out one at a time, waiting for each Ack.
type msgSink struct {
	tp     *topic
	name   string
	policy Policy
	scope  *Scope // nil unless made through a Scope

	buf chan *message.Message
	out chan *message.Message

	ctx    context.Context // ends the subscription; carried by every delivered message
	cancel context.CancelFunc

	dropped atomic.Uint64
	warn    warner
}

func (s *msgSink) close() { s.cancel() }

// dropIfFull drops the message being published, and reports true, when
// the subscriber is DropNewest and its buffer is full: then the message is
// neither marshaled nor even boxed for this subscriber (publishTyped asks
// before it builds the envelope), so a stuck tap costs its publishers a
// length check. Only the consumer empties the buffer meanwhile, so the
// worst case is a message dropped that would just have fit.
func (s *msgSink) dropIfFull() bool {
	if s.policy != DropNewest || len(s.buf) < cap(s.buf) || s.ctx.Err() != nil {
		return false
	}
	n := s.dropped.Add(1)
	s.tp.bus.warnDropped(&s.warn, s.tp.name, s.name, s.policy, n)
	s.countDrop()
	return true
}

func (s *msgSink) deliver(e *envelope) error {
	if s.dropIfFull() {
		return nil
	}
	m, err := e.message()
	if err != nil {
		n := s.dropped.Add(1)
		s.tp.bus.warnUndeliverable(&s.warn, s.tp.name, s.name, err, n)
		s.countDrop()
		return nil
	}
	if s.policy == Block {
		return offerBlock(e.ctx, s.buf, m, s.ctx.Done(), s.tp.bus)
	}
	if s.ctx.Err() != nil {
		return nil
	}
	if !offerDrop(s.buf, m, s.policy) {
		n := s.dropped.Add(1)
		s.tp.bus.warnDropped(&s.warn, s.tp.name, s.name, s.policy, n)
		s.countDrop()
	}
	return nil
}

// countDrop adds a dropped message to the Scope's count.
func (s *msgSink) countDrop() {
	if s.scope != nil {
		s.scope.dropped.Add(1)
	}
}

// subscribeMessages creates a Watermill subscription to topic name.
func (b *Bus) subscribeMessages(ctx context.Context, name string, sc *Scope, cfg subConfig) (*msgSink, error) {
	sctx, cancel := context.WithCancel(ctx)
	ms := &msgSink{
		name:   cfg.name,
		policy: cfg.policy,
		scope:  sc,
		buf:    make(chan *message.Message, cfg.buffer),
		out:    make(chan *message.Message),
		ctx:    sctx,
		cancel: cancel,
	}
	_, _, err := b.addSink(name, func(tp *topic) sink {
		ms.tp = tp
		return ms
	}, func() {
		b.wg.Add(1)
		if sc != nil {
			sc.wg.Add(1)
		}
	})
	if err != nil {
		cancel()
		return nil, err
	}
	go ms.run()
	return ms, nil
}

func (s *msgSink) run() {
	b := s.tp.bus
	defer func() {
		s.cancel()
		b.removeSink(s.tp, s)
		if s.scope != nil {
			s.scope.forget(s)
		}
		close(s.out)
		if s.scope != nil {
			s.scope.wg.Done()
		}
		b.wg.Done()
	}()
	for {
		var m *message.Message
		select {
		case m = <-s.buf:
		case <-s.ctx.Done():
			return
		}
		if !s.handOut(m) {
			return
		}
	}
}

// handOut delivers copies of m until one is Acked. It reports false when
// the subscription ended first.
func (s *msgSink) handOut(m *message.Message) bool {
	delay := s.tp.bus.cfg.redeliveryDelay
	for {
		c := message.NewMessage(m.UUID, m.Payload)
		for k, v := range m.Metadata {
			c.Metadata[k] = v
		}
		c.SetContext(s.ctx)
		select {
		case s.out <- c:
		case <-s.ctx.Done():
			return false
		}
		select {
		case <-c.Acked():
			return true
		case <-c.Nacked():
		case <-s.ctx.Done():
			return false
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return false
			}
		}
	}
}

// Scope is a view of a Bus for one owner, typically a Watermill Router.
// It implements message.Publisher and message.Subscriber like the Bus,
// but its Close ends only the subscriptions made through it, and leaves
// the Bus open. Use it wherever a component will Close the publisher or
// subscriber it is given: a Router closes both when it stops, which would
// otherwise close the whole Bus.
type Scope struct {
	bus *Bus
	cfg subConfig // of its subscriptions; name empty unless WithName

	dropped atomic.Uint64

	mu     sync.Mutex
	subs   map[*msgSink]struct{}
	closed bool
	wg     sync.WaitGroup
}

var (
	_ message.Publisher  = (*Scope)(nil)
	_ message.Subscriber = (*Scope)(nil)
)

// Scope returns a new Scope of b. Its subscriptions have the Bus's buffer
// size and subscriber policy (WithBufferSize, WithSubscriberPolicy)
// unless opts say otherwise: WithBuffer, WithPolicy and WithName apply to
// every subscription made through it. An option the Bus cannot accept (a
// negative buffer) makes Subscribe fail with ErrInvalidOption.
//
// On a node's bus, whose subscriber policy drops, WithPolicy(Block) asks
// for every message: that subscriber then slows the node down to its
// pace.
func (b *Bus) Scope(opts ...SubOption) *Scope {
	sc := subConfig{buffer: b.cfg.bufferSize, policy: b.cfg.subPolicy}
	for _, o := range opts {
		if o != nil {
			o.applySub(&sc)
		}
	}
	return &Scope{bus: b, cfg: sc, subs: make(map[*msgSink]struct{})}
}

// Dropped returns how many messages the Scope's subscriptions have
// discarded: by a drop policy while full, or because a typed value could
// not be marshaled.
func (sc *Scope) Dropped() uint64 { return sc.dropped.Load() }

// Publish is Bus.Publish. It keeps working after the Scope's Close, until
// the Bus closes.
func (sc *Scope) Publish(topic string, msgs ...*message.Message) error {
	return sc.bus.Publish(topic, msgs...)
}

// Subscribe is Bus.Subscribe, except that the Scope's Close also ends the
// subscription. It returns ErrClosed once the Scope or the Bus is closed.
func (sc *Scope) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed {
		return nil, ErrClosed
	}
	cfg := sc.cfg
	if cfg.name == "" {
		cfg.name = callerName(1)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ms, err := sc.bus.subscribeMessages(ctx, topic, sc, cfg)
	if err != nil {
		return nil, err
	}
	// The subscription's goroutine cannot forget itself before this,
	// because forget needs sc.mu.
	sc.subs[ms] = struct{}{}
	return ms.out, nil
}

// Close ends every subscription made through the Scope, closing their
// channels, and waits for their goroutines. The Bus stays open. Close is
// idempotent and always returns nil.
func (sc *Scope) Close() error {
	sc.mu.Lock()
	sc.closed = true
	for s := range sc.subs {
		s.cancel()
	}
	sc.mu.Unlock()
	sc.wg.Wait()
	return nil
}

func (sc *Scope) forget(s *msgSink) {
	sc.mu.Lock()
	delete(sc.subs, s)
	sc.mu.Unlock()
}
