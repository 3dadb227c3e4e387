package bus

import (
	"fmt"
	"log/slog"
	"time"
)

const (
	// DefaultBufferSize is the per-subscription buffer used when neither
	// WithBufferSize nor WithBuffer says otherwise.
	DefaultBufferSize = 256

	// DefaultRedeliveryDelay is how long a Watermill subscription waits
	// before it redelivers a message that was Nacked.
	DefaultRedeliveryDelay = 100 * time.Millisecond

	// dropWarnInterval is the minimum time between two slow-consumer
	// warnings of one subscription.
	dropWarnInterval = time.Second
)

type config struct {
	logger          *slog.Logger
	bufferSize      int
	marshaler       Marshaler
	redeliveryDelay time.Duration
	subPolicy       Policy   // of Watermill subscriptions
	readOnly        []string // topic prefixes closed to Watermill publishers
}

func defaultConfig() config {
	return config{
		logger:          slog.New(slog.DiscardHandler),
		bufferSize:      DefaultBufferSize,
		marshaler:       JSONMarshaler{},
		redeliveryDelay: DefaultRedeliveryDelay,
	}
}

// Option configures a Bus; pass options to New.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithLogger sets the logger the Bus reports dropped messages, recovered
// panics and conversion failures to. A nil logger is ignored. The default
// discards everything; the Bus never uses slog's global logger.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithBufferSize sets the default buffer of every subscription, in
// messages: DefaultBufferSize (256) unless set. 0 makes subscriptions
// unbuffered; a negative n is ignored. WithBuffer overrides it per
// subscription.
func WithBufferSize(n int) Option {
	return optionFunc(func(c *config) {
		if n >= 0 {
			c.bufferSize = n
		}
	})
}

// WithMarshaler sets the Marshaler that converts typed values to
// Watermill messages and back. The default is JSONMarshaler. A nil
// Marshaler is ignored.
func WithMarshaler(m Marshaler) Option {
	return optionFunc(func(c *config) {
		if m != nil {
			c.marshaler = m
		}
	})
}

// WithRedeliveryDelay sets how long a Watermill subscription (Bus.Subscribe)
// waits before it redelivers a Nacked message: DefaultRedeliveryDelay
// (100 ms) unless set. 0 redelivers at once; a negative d is ignored.
func WithRedeliveryDelay(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d >= 0 {
			c.redeliveryDelay = d
		}
	})
}

// WithSubscriberPolicy sets the policy of every Watermill subscription
// (Bus.Subscribe, and Scope.Subscribe unless the Scope says otherwise):
// Block unless set. With DropNewest or DropOldest a Watermill subscriber
// that falls behind loses messages (counted by Scope.Dropped, logged at
// most once a second) instead of holding up the publisher: what a node's
// bus uses, so that an observer cannot slow the traffic it observes. An
// invalid policy is ignored.
func WithSubscriberPolicy(p Policy) Option {
	return optionFunc(func(c *config) {
		if p >= Block && p <= DropOldest {
			c.subPolicy = p
		}
	})
}

// WithReadOnly closes the topics whose names start with one of prefixes
// to Watermill publishers: Bus.Publish (and Scope.Publish) on them
// returns ErrReadOnly and delivers nothing. Typed publishes (Topic.Publish,
// Publish) are not affected. Use it for topics whose typed values point
// at live state that no message from outside can stand for: a node closes
// its connection and internal event topics this way.
func WithReadOnly(prefixes ...string) Option {
	return optionFunc(func(c *config) {
		for _, p := range prefixes {
			if p != "" {
				c.readOnly = append(c.readOnly, p)
			}
		}
	})
}

// Policy says what a publisher does when a subscription's buffer is full.
type Policy int

const (
	// Block makes the publisher wait until the subscriber has room
	// (backpressure). The wait ends early, with an error, when the
	// publisher's context ends or the Bus closes, and without one when the
	// subscription closes. While it waits the topic's publish lock is held,
	// so one slow Block subscriber holds up the whole topic.
	Block Policy = iota

	// DropNewest discards the message being published when the buffer is
	// full. The publisher never waits.
	DropNewest

	// DropOldest discards the oldest buffered message to make room for the
	// one being published. The publisher never waits.
	DropOldest
)

// String returns the policy's name.
func (p Policy) String() string {
	switch p {
	case Block:
		return "Block"
	case DropNewest:
		return "DropNewest"
	case DropOldest:
		return "DropOldest"
	default:
		return fmt.Sprintf("Policy(%d)", int(p))
	}
}

type subConfig struct {
	buffer int
	policy Policy
	name   string
}

func (b *Bus) subConfig(opts []SubOption, defaultName string) (subConfig, error) {
	sc := subConfig{buffer: b.cfg.bufferSize, policy: Block, name: defaultName}
	for _, o := range opts {
		if o != nil {
			o.applySub(&sc)
		}
	}
	return sc, sc.check()
}

func (sc subConfig) check() error {
	if sc.buffer < 0 {
		return fmt.Errorf("%w: buffer size %d", ErrInvalidOption, sc.buffer)
	}
	if sc.policy < Block || sc.policy > DropOldest {
		return fmt.Errorf("%w: %v", ErrInvalidOption, sc.policy)
	}
	return nil
}

// SubOption configures one subscription; pass it to Subscribe.
type SubOption interface {
	applySub(*subConfig)
}

type subOptionFunc func(*subConfig)

func (f subOptionFunc) applySub(c *subConfig) { f(c) }

// WithBuffer sets the subscription's buffer, in messages, overriding the
// Bus's WithBufferSize. 0 makes the channel unbuffered: a Block publisher
// then hands each message over directly, and a drop policy drops every
// message nobody is waiting for. A negative n makes Subscribe fail with
// ErrInvalidOption.
func WithBuffer(n int) SubOption {
	return subOptionFunc(func(c *subConfig) { c.buffer = n })
}

// WithPolicy sets what happens when the subscription's buffer is full;
// the default is Block.
func WithPolicy(p Policy) SubOption {
	return subOptionFunc(func(c *subConfig) { c.policy = p })
}

// WithName names the subscription in log records (slow-consumer warnings,
// conversion failures, recovered panics). The default is the file:line
// that called Subscribe.
func WithName(name string) SubOption {
	return subOptionFunc(func(c *subConfig) { c.name = name })
}
