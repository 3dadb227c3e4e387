package transport

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// Defaults of a Hub.
const (
	DefaultReadLimit         = 16 << 20 // Titan's DEFAULT_MAX_PACKET_SIZE
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultKeepAliveInterval = 30 * time.Second
	DefaultKeepAliveTimeout  = 10 * time.Second
	DefaultOutboundQueue     = 128
	DefaultWriteTimeout      = 10 * time.Second
	DefaultMaxPeers          = 10000
	// DefaultInboundMemory bounds the memory the node holds for what its
	// peers send (see WithInboundMemory).
	DefaultInboundMemory = 256 << 20
	// DefaultReadHeaderTimeout bounds the wait for the headers of an HTTP
	// request on the hub's own server (see WithReadHeaderTimeout).
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultIdleTimeout closes an HTTP connection of the hub's server
	// that waits this long for its next request (see WithIdleTimeout).
	DefaultIdleTimeout = 10 * time.Second
	// DefaultMaxPending bounds the connections that are not peers yet
	// (see WithMaxPending).
	DefaultMaxPending = 1024
)

type config struct {
	logger            *slog.Logger
	obs               *obs.Metrics // nil: not counted
	auth              peer.Authenticator
	anonymous         bool // anonymous.go
	token             string
	tlsServer         *tls.Config
	tlsClient         *tls.Config
	readLimit         int64
	handshakeTimeout  time.Duration
	keepAliveInterval time.Duration
	keepAliveTimeout  time.Duration
	outboundQueue     int
	writeTimeout      time.Duration
	maxPeers          int
	inboundMemory     int64
	maxDecodeMemory   int64
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxPending        int
	compression       websocket.CompressionMode // WithCompression
	compressThreshold int
}

func defaultConfig() config {
	return config{
		logger:            slog.New(slog.DiscardHandler),
		readLimit:         DefaultReadLimit,
		handshakeTimeout:  DefaultHandshakeTimeout,
		keepAliveInterval: DefaultKeepAliveInterval,
		keepAliveTimeout:  DefaultKeepAliveTimeout,
		outboundQueue:     DefaultOutboundQueue,
		writeTimeout:      DefaultWriteTimeout,
		maxPeers:          DefaultMaxPeers,
		inboundMemory:     DefaultInboundMemory,
		maxDecodeMemory:   wire.DefaultMaxDecodeMemory,
		readHeaderTimeout: DefaultReadHeaderTimeout,
		idleTimeout:       DefaultIdleTimeout,
		maxPending:        DefaultMaxPending,
	}
}

// Option configures a Hub.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMetrics makes the hub count refused and failed handshakes in m
// (nil: off).
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

// WithReadLimit bounds the size of one WebSocket message (one packet) a peer
// may send; a larger one closes that connection with status 1009.
// Default 16 MiB.
func WithReadLimit(n int64) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.readLimit = n
		}
	})
}

// WithHandshakeTimeout bounds the Netron handshake. Default 10 s.
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.handshakeTimeout = d
		}
	})
}

// WithKeepAlive sets how often an idle connection is pinged and how long a
// ping may wait for its pong before the connection is closed as dead.
// An interval <= 0 disables keep-alive. Defaults 30 s and 10 s.
func WithKeepAlive(interval, timeout time.Duration) Option {
	return optionFunc(func(c *config) {
		c.keepAliveInterval = interval
		if timeout > 0 {
			c.keepAliveTimeout = timeout
		}
	})
}

// WithOutboundQueue sets how many packets may wait to be written on a
// connection before senders block. Default 128.
func WithOutboundQueue(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.outboundQueue = n
		}
	})
}

// WithWriteTimeout bounds how long one write to a peer may make no
// progress: a peer that stops reading fills the socket buffers and blocks
// the write, and once it has been blocked this long the connection is
// closed with peer.ErrWriteTimeout (every pending call and waiting sender then
// fails with it), like a slow consumer on a NATS server. A message of n
// bytes gets n / (64 KiB/s) on top, so that a large message to a slow
// reader is not taken for a stall. Keep-alive does not catch such a peer
// when it goes on sending. A duration <= 0 disables the watchdog. Default
// 10 s.
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.writeTimeout = d })
}

// WithMaxPeers bounds the number of open connections, counting the
// upgraded connections whose handshake has not completed yet: a burst of
// silent upgrades cannot go past it. Default 10,000.
func WithMaxPeers(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxPeers = n
		}
	})
}

// WithAuthenticator makes the hub's server side admit only peers that a
// authenticates. A rejected peer gets HTTP 401 before the upgrade: no
// handshake, no packet. Default: every peer is admitted.
func WithAuthenticator(a peer.Authenticator) Option {
	return optionFunc(func(c *config) { c.auth = a })
}

// WithToken makes Dial present token ("Authorization: Bearer <token>"),
// for servers with peer.SharedToken or peer.HMACToken.
func WithToken(token string) Option {
	return optionFunc(func(c *config) { c.token = token })
}

// WithTLS makes Listen serve wss:// with cfg. For mutual TLS set
// cfg.ClientAuth (tls.RequireAndVerifyClientCert) and cfg.ClientCAs; a
// verified client certificate becomes the peer's identity (method "tls",
// subject the certificate's common name) unless a peer.Authenticator is set.
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(c *config) { c.tlsServer = cfg })
}

// WithDialTLS sets the TLS configuration Dial uses for wss:// (root CAs,
// and a client certificate for mutual TLS).
func WithDialTLS(cfg *tls.Config) Option {
	return optionFunc(func(c *config) { c.tlsClient = cfg })
}

// WithInboundMemory bounds the memory the node holds, all connections
// together, for what its peers send (Memory):
//
//   - every message as it is read, replies to the node's own calls aside
//     (those are bounded by the calls it makes);
//   - a request's message from its arrival until its reply is sent, and
//     what decoding its arguments takes, charged as decoding goes on (in
//     steps of wire.AccountStep) up to its decode budget (wire.Budget,
//     WithMaxDecodeMemory) and, once decoded, what its arguments took,
//     until the reply is sent or, for a method that streams, its stream
//     ends;
//   - the arguments of an event from a peer this node subscribed to,
//     until every handler has taken it or it was dropped;
//   - the chunks buffered for streams of peers without flow control
//     (Titan), until read;
//   - answers to PINGs until written.
//
// One connection holds at most a quarter of it (or MinInboundMemory, if
// that is more), so that one peer alone cannot take it all. Nothing waits
// for memory — a reader that waits could wait for a handler that waits
// for that reader — what does not fit is refused at once: a message is
// read to its end and dropped, a request gets a 503 error (reason
// InboundMemory), a stream fails, a PING is not answered, an event is
// lost; the connection stays open. The bound is raised to
// MinInboundMemory (one request of the largest packet, alone on an idle
// node) when it is lower. Default 256 MiB.
func WithInboundMemory(bytes int64) Option {
	return optionFunc(func(c *config) {
		if bytes > 0 {
			c.inboundMemory = bytes
		}
	})
}

// WithMaxDecodeMemory caps the decode budget of one request, event or
// result from a peer (wire.Budget: 32 × its bytes + 64 KiB, at most this):
// a request whose arguments would take more is refused with 400
// DecodeBudget before anything is allocated for them. Default 64 MiB (a 16
// MiB packet may cost 4 × its size, a small one 32 ×); at least 64 KiB.
func WithMaxDecodeMemory(bytes int64) Option {
	return optionFunc(func(c *config) {
		if bytes > 0 {
			c.maxDecodeMemory = max(bytes, wire.BudgetSlack)
		}
	})
}

// WithReadHeaderTimeout bounds the wait for the headers of an HTTP request
// on the hub's own server (Listen), the TLS handshake included: a
// connection that sends nothing, or its headers byte by byte, holds one of
// the WithMaxPending places at most this long. Default 5 s.
func WithReadHeaderTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.readHeaderTimeout = d
		}
	})
}

// WithIdleTimeout sets how long an HTTP connection of the hub's own
// server (Listen) may wait for its next request before it is closed: a
// connection whose request was refused (401, 426, 503) is closed at once,
// others after this time. Default 10 s.
func WithIdleTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.idleTimeout = d
		}
	})
}

// WithMaxPending bounds the connections that are not peers yet: HTTP
// connections of the hub's own server (Listen) that have not been
// upgraded (a connection beyond it is closed as soon as it is accepted),
// and upgrades whose Netron handshake has not completed (one beyond it is
// refused with HTTP 503 before the upgrade). Default 1024.
func WithMaxPending(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxPending = n
		}
	})
}

// DefaultCompressionThreshold is the size below which a message is sent
// uncompressed on a connection that negotiated compression.
const DefaultCompressionThreshold = 512

// WithCompression offers WebSocket permessage-deflate (RFC 7692) on the
// hub's connections: Dial offers it, and an upgrade that offers it gets it.
// A peer that does not offer it (or does not accept the offer) connects
// as without this option, so it is decided per connection; see
// Conn.Compressed. Messages of at least threshold bytes are compressed (0:
// DefaultCompressionThreshold; smaller ones cost more to deflate than
// they save). Compression runs without context takeover: each message is
// deflated on its own with a pooled compressor, so an idle connection holds
// no compression state (with takeover coder/websocket keeps a 1.2 MB
// compressor per connection). What a peer sends is bounded by the read
// limit and inbound memory after inflating, as without compression.
func WithCompression(threshold int) Option {
	return optionFunc(func(c *config) {
		c.compression = websocket.CompressionNoContextTakeover
		c.compressThreshold = threshold
		if threshold <= 0 {
			c.compressThreshold = DefaultCompressionThreshold
		}
	})
}
