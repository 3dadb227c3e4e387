package redisdisc

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/netron-go/netron/discovery"
)

// Defaults.
const (
	DefaultPrefix    = "netron:discovery"
	DefaultHeartbeat = discovery.DefaultHeartbeat // 5 s
	DefaultTTL       = discovery.DefaultTTL       // 15 s
	DefaultMaxLen    = 1000
	DefaultMaxAge    = 10 * time.Minute
)

// Option configures New.
type Option interface{ apply(*config) error }

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	prefix    string
	heartbeat time.Duration
	ttl       time.Duration
	maxLen    int64
	maxAge    time.Duration
	logger    *slog.Logger
	blockTime time.Duration
	// opTimeout bounds one Redis round trip of the instance (the
	// heartbeat, from 2 s to 5 s): a Redis slower than that is taken as
	// unreachable. The floor is generous, so that a loaded machine (a
	// short heartbeat, TLS handshakes, the race detector) is not.
	opTimeout time.Duration
	// pause: a pause of every heartbeat of the prefix longer than this
	// suspends expiry (1.5 heartbeats).
	pause time.Duration
	// margin: while Redis fails, a retry comes at the latest this long
	// before the deadline of this instance's nodes.
	margin time.Duration
	// retryMin is the first retry's backoff, and the retry interval in
	// the last margin before that deadline.
	retryMin time.Duration
	// stuckAfter: a reader that has not moved for this long while
	// changes wait is stuck (two heartbeats, at least 2 s: well past
	// watermill's pause of 500 ms after a failed read, so that a reader
	// resuming after an outage is not taken for a stuck one).
	stuckAfter time.Duration
	ttlWasSet  bool
}

func defaultConfig() config {
	return config{
		prefix:    DefaultPrefix,
		heartbeat: DefaultHeartbeat,
		ttl:       DefaultTTL,
		maxLen:    DefaultMaxLen,
		maxAge:    DefaultMaxAge,
		logger:    slog.New(slog.DiscardHandler),
	}
}

// WithPrefix sets the prefix of every Redis key the backend uses (default
// "netron:discovery"). The keys are the prefix in braces, a Redis Cluster
// hash tag, and a suffix: {netron:discovery}:events (the stream), …:nodes
// (hash id -> entry), …:alive (sorted set id -> deadline, ms) and …:meta
// (counters), so that all of them, and the scripts that use them, live in
// one hash slot. A prefix that has a hash tag of its own ("app:{disc}") is
// used as it is. Instances see each other only when they share the prefix.
func WithPrefix(p string) Option {
	return optionFunc(func(c *config) error {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("%w: empty prefix", ErrInvalidOption)
		}
		c.prefix = p
		return nil
	})
}

// WithHeartbeat sets how often the instance refreshes its nodes and polls
// the others' liveness (default 5 s).
func WithHeartbeat(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: heartbeat %v", ErrInvalidOption, d)
		}
		c.heartbeat = d
		return nil
	})
}

// WithTTL sets how long a node of this instance stays active without a
// heartbeat (default 15 s, or three heartbeats when only WithHeartbeat is
// given). It must be longer than the heartbeat; 2.5 heartbeats or more
// (the default is 3) keeps every live node through any Redis outage: an
// instance that cannot reach Redis retries before its nodes' deadline, so
// an outage of less than TTL minus one heartbeat never costs it its nodes,
// and once nobody has reached Redis for 1.5 heartbeats expiry is suspended
// until the prefix's largest TTL has passed (see the package
// documentation).
func WithTTL(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 || d > maxEntryTTL {
			return fmt.Errorf("%w: ttl %v", ErrInvalidOption, d)
		}
		c.ttl, c.ttlWasSet = d, true
		return nil
	})
}

// WithLogger sets the logger (default: discard). Outages and recoveries are
// logged at Warn and Info, malformed entries at Warn, the rest at Debug.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	})
}

// WithMaxLen caps the stream at about n entries (XADD MAXLEN ~ n; default
// 1000). 0 turns the length cap off; then WithMaxAge must be on.
func WithMaxLen(n int64) Option {
	return optionFunc(func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: max length %d", ErrInvalidOption, n)
		}
		c.maxLen = n
		return nil
	})
}

// WithMaxAge trims stream entries older than d (XTRIM MINID ~, issued after
// each announcement of this instance; default 10 min). 0 turns trimming by
// age off; then WithMaxLen must be on.
func WithMaxAge(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: max age %v", ErrInvalidOption, d)
		}
		c.maxAge = d
		return nil
	})
}

// WithReadBlock sets how long one blocking stream read (XREAD BLOCK) waits
// when nothing happens (default: the heartbeat, at most 2 s). It sets the
// idle read rate (one XREAD per block time per instance) and bounds how long
// watermill's reader goroutine may outlive Close (see Discovery.Close).
func WithReadBlock(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: read block %v", ErrInvalidOption, d)
		}
		c.blockTime = d
		return nil
	})
}

func (c *config) finish() error {
	if !c.ttlWasSet && c.ttl <= c.heartbeat {
		c.ttl = 3 * c.heartbeat
	}
	if c.ttl <= c.heartbeat {
		return fmt.Errorf("%w: ttl %v not longer than heartbeat %v", ErrInvalidOption, c.ttl, c.heartbeat)
	}
	if c.maxLen == 0 && c.maxAge == 0 {
		return fmt.Errorf("%w: stream trimming off (max length and max age both 0)", ErrInvalidOption)
	}
	if c.blockTime == 0 {
		c.blockTime = min(c.heartbeat, 2*time.Second)
	}
	c.opTimeout = min(max(c.heartbeat, 2*time.Second), 5*time.Second)
	c.pause = c.heartbeat * 3 / 2
	c.margin = min(c.heartbeat/2, time.Second)
	c.retryMin = min(50*time.Millisecond, c.heartbeat/2)
	c.stuckAfter = max(2*c.heartbeat, 2*time.Second)
	return nil
}
