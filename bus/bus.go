package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Bus is an in-process publish/subscribe bus. It implements Watermill's
// message.Publisher and message.Subscriber, and carries typed values
// through Topic, Publish and Subscribe without encoding them.
//
// All methods may be called concurrently. The zero value is not usable;
// create a Bus with New and release it with Close.
type Bus struct {
	cfg config
	log *slog.Logger

	mu     sync.RWMutex      // guards topics and every topic's subscriber list
	topics map[string]*topic // topics with at least one subscriber

	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // goroutines of Watermill subscriptions

	idPrefix string
	idSeq    atomic.Uint64

	// gen counts the topics created; a Topic that found no subscribers
	// remembers it and skips the lookup until it changes.
	gen   atomic.Uint64
	drops sync.Map // topic name → *atomic.Uint64: messages dropped, ever
}

var (
	_ message.Publisher  = (*Bus)(nil)
	_ message.Subscriber = (*Bus)(nil)
)

// New returns an open Bus configured by opts.
func New(opts ...Option) *Bus {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	var p [6]byte
	_, _ = rand.Read(p[:]) // never fails (crypto/rand documents it)
	return &Bus{
		cfg:      cfg,
		log:      cfg.logger,
		topics:   make(map[string]*topic),
		done:     make(chan struct{}),
		idPrefix: hex.EncodeToString(p[:]) + "-",
	}
}

// Close closes the Bus: it releases every publisher blocked on a full
// subscriber (they return ErrClosed), closes the channel of every
// subscription, typed and Watermill, and waits until every goroutine the
// Bus started has returned. Later Publish and Subscribe calls return
// ErrClosed. Messages still buffered in a typed subscription stay readable
// until its channel is drained; messages not yet handed to a Watermill
// subscriber are discarded.
//
// Close is idempotent; concurrent calls all return once the first is done.
// It may be called from any goroutine, a SubscribeFunc callback included.
// It always returns nil.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed.Store(true)
		close(b.done)
		var sinks []sink
		for name, tp := range b.topics {
			sinks = append(sinks, tp.sinks()...)
			tp.kill()
			delete(b.topics, name)
		}
		b.mu.Unlock()

		for _, s := range sinks {
			s.close()
		}
		b.wg.Wait()
	})
	return nil
}

// Done returns a channel that is closed when Close starts.
func (b *Bus) Done() <-chan struct{} { return b.done }

// Publish implements message.Publisher. It delivers msgs, in order, to
// every current subscriber of topic: Watermill subscribers get their own
// copy of each message (payload shared, metadata copied), typed
// subscribers get the message converted by the Marshaler (or the message
// itself when their type is *message.Message).
//
// While a Block subscriber is full, Publish waits; each message's
// Context() bounds that wait. Publish returns ErrClosed once the Bus is
// closed, and the context's error, wrapped, when a context ended the wait;
// in that case the message has reached the subscribers before the full one
// and not those after it, and later messages are not published.
// Publishing to a topic with no subscribers does nothing. A topic closed
// to Watermill publishers (WithReadOnly) returns ErrReadOnly.
func (b *Bus) Publish(topic string, msgs ...*message.Message) error {
	if b.closed.Load() {
		return ErrClosed
	}
	for _, m := range msgs {
		if m == nil {
			return ErrNilMessage
		}
	}
	if b.readOnly(topic) {
		return fmt.Errorf("%w: %q", ErrReadOnly, topic)
	}
	tp := b.lookup(topic)
	if tp == nil {
		return nil
	}
	return tp.publishMessages(msgs)
}

// Subscribe implements message.Subscriber. The returned channel delivers
// the messages published on topic from now on, one at a time: the next
// message is sent only after the previous one is Acked. A Nacked message is
// redelivered, as a fresh copy, after the redelivery delay
// (WithRedeliveryDelay). Every delivered message carries a context that is
// cancelled when the subscription ends.
//
// The subscription buffers up to the Bus's buffer size (WithBufferSize)
// messages not yet delivered, with the Bus's subscriber policy
// (WithSubscriberPolicy): with Block, the default, a publisher waits while
// that buffer is full; with a drop policy the subscription loses messages
// instead. A Scope (Bus.Scope) chooses buffer and policy per owner. One
// goroutine per subscription does the delivery. The channel is closed,
// and the subscription removed, when ctx ends or the Bus is closed;
// messages still buffered are then discarded.
func (b *Bus) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ms, err := b.subscribeMessages(ctx, topic, nil, subConfig{buffer: b.cfg.bufferSize, policy: b.cfg.subPolicy, name: callerName(1)})
	if err != nil {
		return nil, err
	}
	return ms.out, nil
}

// readOnly reports whether topic is closed to Watermill publishers.
func (b *Bus) readOnly(topic string) bool {
	for _, p := range b.cfg.readOnly {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}

// lookup returns the live topic called name, or nil if it has no
// subscribers.
func (b *Bus) lookup(name string) *topic {
	b.mu.RLock()
	tp := b.topics[name]
	b.mu.RUnlock()
	return tp
}

// addSink adds the sink made by mk to topic name, creating the topic if
// needed. start, if not nil, runs under the Bus lock once the sink is in
// place (used to account for goroutines before Close can wait for them).
func (b *Bus) addSink(name string, mk func(*topic) sink, start func()) (*topic, sink, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, nil, ErrClosed
	}
	tp := b.topics[name]
	if tp == nil {
		tp = newTopic(b, name)
		b.topics[name] = tp
		b.gen.Add(1)
	}
	s := mk(tp)
	old := tp.sinks()
	list := make([]sink, len(old), len(old)+1)
	copy(list, old)
	list = append(list, s)
	tp.subs.Store(&list)
	if start != nil {
		start()
	}
	return tp, s, nil
}

// removeSink removes s from tp. When tp loses its last subscriber it is
// removed from the Bus, so that topics used once do not accumulate.
func (b *Bus) removeSink(tp *topic, s sink) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tp.dead.Load() {
		return
	}
	old := tp.sinks()
	i := -1
	for j, x := range old {
		if x == s {
			i = j
			break
		}
	}
	if i < 0 {
		return
	}
	if len(old) == 1 {
		tp.kill()
		delete(b.topics, tp.name)
		return
	}
	list := make([]sink, 0, len(old)-1)
	list = append(list, old[:i]...)
	list = append(list, old[i+1:]...)
	tp.subs.Store(&list)
}

// newID returns a message id unique within the process: a random per-Bus
// prefix and a counter.
func (b *Bus) newID() string {
	var buf [32]byte
	p := append(buf[:0], b.idPrefix...)
	p = strconv.AppendUint(p, b.idSeq.Add(1), 10)
	return string(p)
}

// callerName returns "file:line" of the caller skip frames above its
// caller.
func callerName(skip int) string {
	_, file, line, ok := runtime.Caller(skip + 1)
	if !ok {
		return "unknown"
	}
	return filepath.Base(file) + ":" + strconv.Itoa(line)
}

// warner rate-limits the warnings of one subscription.
type warner struct {
	last atomic.Int64 // unix nanoseconds of the last warning
}

// allow reports whether a warning may be logged now.
func (w *warner) allow() bool {
	now := time.Now().UnixNano()
	last := w.last.Load()
	if last != 0 && now-last < int64(dropWarnInterval) {
		return false
	}
	return w.last.CompareAndSwap(last, now)
}

// countDrop counts a message of topic that a subscription dropped.
func (b *Bus) countDrop(topic string) {
	v, ok := b.drops.Load(topic)
	if !ok {
		v, _ = b.drops.LoadOrStore(topic, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// DroppedByTopic returns how many messages the subscriptions of each topic
// have dropped since the Bus was created (by their DropNewest or
// DropOldest policy, or because a message could not be converted), closed
// subscriptions included; topics that never dropped one are absent. The
// counts only grow: they suit a Prometheus counter.
func (b *Bus) DroppedByTopic() map[string]uint64 {
	out := make(map[string]uint64)
	b.drops.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// warnDropped counts, and logs rate-limited, that sub dropped a message.
func (b *Bus) warnDropped(w *warner, topic, sub string, p Policy, total uint64) {
	b.countDrop(topic)
	if !b.log.Enabled(context.Background(), slog.LevelWarn) || !w.allow() {
		return
	}
	b.log.LogAttrs(context.Background(), slog.LevelWarn, "bus: slow consumer, message dropped",
		slog.String("topic", topic),
		slog.String("subscription", sub),
		slog.String("policy", p.String()),
		slog.Uint64("dropped_total", total))
}

// warnUndeliverable counts, and logs rate-limited, that a message could
// not be converted for sub and was dropped.
func (b *Bus) warnUndeliverable(w *warner, topic, sub string, err error, total uint64) {
	b.countDrop(topic)
	if !b.log.Enabled(context.Background(), slog.LevelWarn) || !w.allow() {
		return
	}
	b.log.LogAttrs(context.Background(), slog.LevelWarn, "bus: message dropped, conversion failed",
		slog.String("topic", topic),
		slog.String("subscription", sub),
		slog.Any("error", err),
		slog.Uint64("dropped_total", total))
}

func publishError(topic string, err error) error {
	if err == ErrClosed {
		return ErrClosed
	}
	return fmt.Errorf("bus: publish to %q: %w", topic, err)
}
