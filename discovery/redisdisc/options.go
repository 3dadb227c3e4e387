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
	opTimeout time.Duration
	gap       time.Duration // a pause of every heartbeat this long suspends expiry
	ttlWasSet bool
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
// heartbeat (default 15 s). It must be longer than the heartbeat; three
// heartbeats or more is advisable: when every instance loses Redis at once
// (an outage, a failover), expiry is suspended once Redis answers again
// only if the pause was longer than TTL minus one heartbeat.
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
	c.opTimeout = min(max(c.heartbeat, 500*time.Millisecond), 5*time.Second)
	c.gap = max(c.ttl-c.heartbeat, c.heartbeat*3/2)
	return nil
}
