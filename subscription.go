package netron

import (
	"context"
	"sync"

	"github.com/netron-go/netron/bus"
)

// Subscription is one subscription to events: of this node (Node.On,
// Node.Events, Subscribe) or of a peer (Peer.On, Peer.Events). Events go to
// a handler (On) or to the channel C (Events, Subscribe), in the order
// their source emitted them, through a queue of DefaultEventBuffer events
// whose policy is DefaultEventPolicy unless bus.WithBuffer and
// bus.WithPolicy say otherwise.
//
// A subscription ends when Close or Unsubscribe is called, when the node
// stops, and, for a peer's events, when the peer is gone for good (a peer
// that reconnects keeps its subscriptions, see Peer.On). Done is closed
// then, and C is closed after the events already queued. All methods may
// be called concurrently.
type Subscription[T any] struct {
	q       *bus.Subscription[T] // the queue: C and Dropped
	handler bool                 // events go to a handler: C is nil

	stop    func()                      // stops delivery now (Close, Unsubscribe)
	finish  func()                      // ends delivery after what is queued (ended by itself)
	unsub   func(context.Context) error // a peer's: the unsubscribe task, waited for
	async   func()                      // a peer's: the unsubscribe task, not waited for
	untrack func()                      // forget the subscription where it is tracked

	done chan struct{}
	mu   sync.Mutex
	over bool
	err  error
}

func newSubscription[T any](q *bus.Subscription[T], handler bool) *Subscription[T] {
	return &Subscription[T]{q: q, handler: handler, done: make(chan struct{})}
}

// C returns the channel of events; nil for a subscription with a handler.
func (s *Subscription[T]) C() <-chan T {
	if s.handler {
		return nil
	}
	return s.q.C()
}

// Dropped returns how many events the slow-consumer policy dropped.
func (s *Subscription[T]) Dropped() uint64 { return s.q.Dropped() }

// Done is closed when the subscription has ended, for whatever reason.
func (s *Subscription[T]) Done() <-chan struct{} { return s.done }

// Err returns nil while the subscription runs and after Close or
// Unsubscribe; otherwise why it ended by itself: ErrStopped (the node
// stopped) or the peer's error (it matches ErrPeerDisconnected).
func (s *Subscription[T]) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription: once it returns, the handler is not called
// again (a call in progress finishes) and nothing more is queued. For a
// peer's events the unsubscribe task is sent without waiting for it (the
// node's Stop waits for it); use Unsubscribe to wait for the peer's answer.
// Close is idempotent, never waits on the network, and returns nil.
func (s *Subscription[T]) Close() error {
	if !s.end(nil) {
		return nil
	}
	s.stop()
	if s.async != nil {
		s.async()
	}
	return nil
}

// Unsubscribe is Close that, for a peer's events, waits until the peer has
// answered the unsubscribe task (sent when no other subscription of this
// node needs the name) and returns its error; ctx bounds the wait. For this
// node's events it is Close. After the subscription has ended it returns
// nil.
func (s *Subscription[T]) Unsubscribe(ctx context.Context) error {
	if !s.end(nil) {
		return nil
	}
	s.stop()
	if s.unsub != nil {
		return s.unsub(ctx)
	}
	return nil
}

// end marks the subscription over with err (nil: the user ended it) and
// reports whether this call did.
func (s *Subscription[T]) end(err error) bool {
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		return false
	}
	s.over = true
	s.err = err
	close(s.done)
	s.mu.Unlock()
	if s.untrack != nil {
		s.untrack()
	}
	return true
}

// endBy ends the subscription by itself (the node stopped, the peer is
// gone): what is queued is still delivered.
func (s *Subscription[T]) endBy(err error) {
	if s.end(err) && s.finish != nil {
		s.finish()
	}
}
