// Package bus is the in-process message bus of a Netron node. All traffic
// inside a node (peer packets, RPC requests and replies, stream chunks,
// events) travels as messages on one Bus.
//
// A Bus speaks two languages over the same topics:
//
//   - Watermill's message.Publisher and message.Subscriber (Bus.Publish,
//     Bus.Subscribe), so Watermill's Router, middleware and backends plug in;
//   - a typed layer (Topic, Publish, Subscribe, Subscription) that carries Go
//     values of any type T through a <-chan T, with no encoding.
//
// Both kinds of subscriber see every message of their topic, whichever
// kind of publisher sent it. A typed value reaching a Watermill subscriber
// is marshaled once per publish by the Bus's Marshaler (JSON by default);
// a Watermill message reaching a typed subscriber is unmarshaled into its
// T, unless T is *message.Message, which receives the message itself.
// Payload bytes are shared, never copied.
//
// # Ordering
//
// Every publish on a topic holds that topic's lock from the first
// subscriber to the last, so all subscribers of a topic see its messages
// in the same order, and the messages of any one publisher in the order it
// published them. Topics are independent: there is no order across topics.
// Every subscriber of a topic receives every message published on it after
// its Subscribe returned (fan-out).
//
// # Goroutines
//
// The Bus starts no goroutine per message. A typed Subscription has no
// goroutine at all: the publisher sends into its buffered channel, and a
// SubscribeFunc callback runs in the publisher's goroutine. A Watermill
// subscription (Bus.Subscribe) has exactly one goroutine, which hands out
// one message at a time and waits for its Ack before the next, as
// Watermill's Subscriber contract asks; a Nacked message is redelivered
// after WithRedeliveryDelay (100 ms by default). Close waits for all of
// them.
//
// # Buffers and slow consumers
//
// Every subscription has a bounded buffer: WithBufferSize sets the Bus's
// default (256 messages), WithBuffer overrides it for one typed
// subscription. When a buffer is full, the subscription's Policy decides:
//
//   - Block (the default; for Watermill subscriptions, unless
//     WithSubscriberPolicy or the Scope says otherwise): the publisher
//     waits for room. This is backpressure: because the
//     publisher holds the topic's lock, a slow Block subscriber slows the
//     whole topic down to its pace. The wait ends with the publisher's
//     context (the ctx of Topic.Publish, or each message's Context() for
//     Bus.Publish), with ErrClosed when the Bus closes, and silently when
//     the subscription closes.
//   - DropNewest: the message being published is discarded.
//   - DropOldest: the oldest buffered message is discarded to make room.
//
// Dropped messages are counted (Subscription.Dropped) and reported by a
// warning on the Bus's logger, at most once per second per subscription.
// Watermill subscriptions count their drops per Scope (Scope.Dropped).
// Choose Block for traffic that must not be lost (RPC, streams) and a drop
// policy for traffic where the latest value matters more than every value
// (presence, metrics). A goroutine that drains a Block subscription must
// not publish to that same topic, or it can wait for itself.
//
// # Lifecycle
//
// Close closes every subscription's channel, releases blocked publishers
// with ErrClosed and waits for the Bus's goroutines; Done reports it. A
// Watermill Router closes the publisher and subscriber it was given when
// it stops: give it a Scope (Bus.Scope) to keep that from closing the
// whole Bus.
//
// # Read-only topics
//
// WithReadOnly closes topics to Watermill publishers (ErrReadOnly): a
// topic whose typed values point at live state (a connection) must not be
// fed a message decoded from outside.
//
// All methods of Bus, Topic, Subscription and Scope may be called
// concurrently.
package bus
