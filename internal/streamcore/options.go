package streamcore

import (
	"log/slog"
	"time"

	"github.com/netron-go/netron/internal/obs"
)

// Defaults of a Manager.
const (
	// DefaultWindow is the flow-control window of one stream: the bytes
	// (of STREAM packets, header and trailer included) a producer may have
	// in flight before its consumer has taken them.
	DefaultWindow = 1 << 20
	// MaxWindow bounds the window and the credit a producer may hold.
	MaxWindow = 1<<31 - 1
	// DefaultWindowGrowth is how far a stream's window may grow, as a
	// multiple of its initial window, while its consumer keeps up (see
	// WithMaxWindow).
	DefaultWindowGrowth = 8
	// DefaultInactivityTimeout ends a finite stream that receives nothing
	// for this long while its consumer waits (Titan's streamTimeout).
	DefaultInactivityTimeout = 60 * time.Second
	// DefaultMaxStreams bounds the concurrent streams per peer and
	// direction (Titan's MAX_STREAMS_PER_DIRECTION).
	DefaultMaxStreams = 1000
	// DefaultMaxChunkSize bounds the msgpack data of one chunk.
	DefaultMaxChunkSize = 4 << 20
	// DefaultMaxBuffered and DefaultMaxBufferedBytes bound what a consumer
	// buffers for a peer without flow control (Titan's MAX_BUFFER_SIZE is
	// 10,000 chunks).
	DefaultMaxBuffered      = 10000
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultClaimTimeout: a stream announced in a reply that nobody opens
	// within this time is cancelled.
	DefaultClaimTimeout = 10 * time.Second
)

type config struct {
	logger           *slog.Logger
	obs              *obs.Metrics // nil: not counted
	window           int64
	maxWindow        int64 // 0: DefaultWindowGrowth × window
	inactivity       time.Duration
	maxStreams       int
	maxChunk         int
	maxBuffered      int
	maxBufferedBytes int64
	claimTimeout     time.Duration
}

func defaultConfig() config {
	return config{
		logger:           slog.New(slog.DiscardHandler),
		window:           DefaultWindow,
		inactivity:       DefaultInactivityTimeout,
		maxStreams:       DefaultMaxStreams,
		maxChunk:         DefaultMaxChunkSize,
		maxBuffered:      DefaultMaxBuffered,
		maxBufferedBytes: DefaultMaxBufferedBytes,
		claimTimeout:     DefaultClaimTimeout,
	}
}

// Option configures a Manager.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMetrics makes the manager count its streams, their chunks and
// credit stalls in m (nil: off).
func WithMetrics(m *obs.Metrics) Option {
	return optionFunc(func(c *config) { c.obs = m })
}

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithWindow sets the flow-control window of each stream in bytes
// (default 1 MiB, at most MaxWindow), where it starts (see WithMaxWindow
// for its growth). The memory one stream holds on either side is bounded
// by its window plus one chunk, however slow its consumer. Zero or less
// keeps the default.
func WithWindow(bytes int) Option {
	return optionFunc(func(c *config) {
		if bytes > 0 {
			c.window = min(int64(bytes), MaxWindow)
		}
	})
}

// WithMaxWindow sets how far a stream's window may grow (default 8 ×
// the window of WithWindow, at most MaxWindow). A stream starts with the
// window; each time its consumer grants credit with nothing buffered
// (it keeps up, so the round trip of the credit, not the consumer, limits
// the stream) the window doubles, up to this bound, as gRPC's window
// grows with its bandwidth-delay estimate. A consumer that falls behind
// stops the growth, and then holds at most the grown window. A value at
// or below the window turns growth off; zero or less keeps the default.
func WithMaxWindow(bytes int) Option {
	return optionFunc(func(c *config) {
		if bytes > 0 {
			c.maxWindow = min(int64(bytes), MaxWindow)
		}
	})
}

// maxWindowOf returns the bound of a stream's window growth.
func (c *config) maxWindowOf() int64 {
	if c.maxWindow > 0 {
		return max(c.maxWindow, c.window)
	}
	return min(c.window*DefaultWindowGrowth, MaxWindow)
}

// WithInactivityTimeout sets how long a finite (non-live) stream may go
// without a chunk while its consumer waits (default 60 s). A negative
// duration turns the timeout off; zero keeps the default.
func WithInactivityTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d != 0 {
			c.inactivity = d
		}
	})
}

// WithMaxStreams bounds the concurrent streams per peer in each direction
// (default 1000).
func WithMaxStreams(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxStreams = n
		}
	})
}

// WithMaxChunkSize bounds the encoded size of one chunk (default 4 MiB).
// A larger chunk from a peer fails its stream; a larger value given to
// Send is refused.
func WithMaxChunkSize(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxChunk = n
		}
	})
}

// WithMaxBuffered bounds what a consumer buffers for a peer without flow
// control, in chunks and in bytes (defaults 10,000 and 64 MiB). A stream
// that overflows fails with ErrBufferOverflow.
func WithMaxBuffered(chunks int, bytes int64) Option {
	return optionFunc(func(c *config) {
		if chunks > 0 {
			c.maxBuffered = chunks
		}
		if bytes > 0 {
			c.maxBufferedBytes = bytes
		}
	})
}

// WithClaimTimeout sets how long a stream announced in a reply waits to be
// opened before it is cancelled (default 10 s).
func WithClaimTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.claimTimeout = d
		}
	})
}
