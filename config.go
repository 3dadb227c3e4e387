package netron

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Config configures a Node. It has the shape of the `netron` key of a
// Titan application's configuration; the JSON and YAML field names are
// Titan's. The zero value is a client-only node with a generated id.
type Config struct {
	// ID is the node id peers know this node by. Empty: a random UUID.
	ID string `json:"id,omitempty" yaml:"id,omitempty"`
	// Host is the address the server binds; empty binds every interface.
	Host string `json:"host,omitempty" yaml:"host,omitempty"`
	// Advertise is where other nodes reach this one, as announced in
	// discovery and returned by Node.URL: "host", "host:port" (the port
	// peers dial, when a proxy or NAT maps another to the bound one) or a
	// ws:// or wss:// URL. Empty: the bound address, except that a node
	// bound to every interface announces an address of this host: that of
	// the interface of the default route (on Linux), else of an interface
	// that is up, not loopback and not a container or VM bridge (docker0,
	// br-…, virbr0, cni0, …), IPv4 before IPv6; 127.0.0.1 when there is
	// none. The candidates and the choice are logged at Info. With TLS,
	// set it to the name the certificate is for: peers check the
	// certificate against the advertised host.
	Advertise string `json:"advertise,omitempty" yaml:"advertise,omitempty"`
	// Port is the WebSocket server port. The server runs when Server is
	// true or Port is not zero; with Server true and Port 0 it picks a
	// free port (read it back with Node.Addr).
	Port int `json:"port,omitempty" yaml:"port,omitempty"`
	// Server turns the WebSocket server on.
	Server bool `json:"server,omitempty" yaml:"server,omitempty"`
	// RequestTimeout applies to calls whose context has no deadline.
	// Default 5 s.
	RequestTimeout time.Duration `json:"requestTimeout,omitempty" yaml:"requestTimeout,omitempty"`
	// HandshakeTimeout bounds the Netron handshake. Default 10 s.
	HandshakeTimeout time.Duration `json:"handshakeTimeout,omitempty" yaml:"handshakeTimeout,omitempty"`
	// MaxPacketSize bounds one packet from a peer; a larger one closes
	// that connection. Default 16 MiB.
	MaxPacketSize int64 `json:"maxPacketSize,omitempty" yaml:"maxPacketSize,omitempty"`
	// KeepAliveInterval is how often an idle connection is pinged; a peer
	// that does not answer within KeepAliveTimeout is disconnected.
	// Defaults 30 s and 10 s; a negative interval turns keep-alive off.
	KeepAliveInterval time.Duration `json:"keepAliveInterval,omitempty" yaml:"keepAliveInterval,omitempty"`
	KeepAliveTimeout  time.Duration `json:"keepAliveTimeout,omitempty" yaml:"keepAliveTimeout,omitempty"`
	// WriteTimeout is how long a write to a peer may make no progress
	// (the peer stopped reading) before the connection is closed with
	// peer.ErrWriteTimeout; a message of n bytes gets n / (64 KiB/s) on
	// top. Default 10 s; a negative value turns the watchdog off.
	WriteTimeout time.Duration `json:"writeTimeout,omitempty" yaml:"writeTimeout,omitempty"`
	// MaxPeers bounds the number of open connections, counting upgrades
	// whose handshake has not completed. Default 10,000.
	MaxPeers int `json:"maxPeers,omitempty" yaml:"maxPeers,omitempty"`
	// MaxPendingConnections bounds the connections that are not peers
	// yet: HTTP connections of the node's server before their upgrade (one
	// beyond it is closed at once) and upgrades in their handshake (one
	// beyond it gets HTTP 503). Default 1024.
	MaxPendingConnections int `json:"maxPendingConnections,omitempty" yaml:"maxPendingConnections,omitempty"`
	// IdleTimeout closes an HTTP connection of the node's server that
	// waits this long for its next request (one whose request was refused
	// is closed at once). Default 10 s.
	IdleTimeout time.Duration `json:"idleTimeout,omitempty" yaml:"idleTimeout,omitempty"`
	// MaxInboundMemory bounds the memory the node holds for what its
	// peers send, all connections together (see docs/reliability.md): every
	// message as it is read (replies to the node's own calls aside), a
	// request's message until its reply and what decoding its arguments
	// takes (charged as decoding goes on, up to its decode budget), the
	// arguments of events from peers until delivered, the chunks buffered
	// for streams of peers without flow control, PING answers until
	// written. One connection holds at most a quarter of it. What does not
	// fit is refused at once (a request gets 503, reason InboundMemory);
	// the connection stays open. It is raised to what one request of
	// MaxPacketSize needs alone when lower.
	// Default 256 MiB.
	MaxInboundMemory int64 `json:"maxInboundMemory,omitempty" yaml:"maxInboundMemory,omitempty"`
	// MaxDecodeMemory caps the decode budget of one request, event or
	// result from a peer: decoding n bytes may allocate min(32 × n + 64
	// KiB, MaxDecodeMemory); a request that would take more is refused
	// with 400 (reason DecodeBudget). Default 64 MiB, at least 64 KiB.
	MaxDecodeMemory int64 `json:"maxDecodeMemory,omitempty" yaml:"maxDecodeMemory,omitempty"`
	// ReadHeaderTimeout bounds the wait for the headers of an HTTP request
	// on the node's server (TLS handshake included): a connection that
	// sends them slowly holds one of the MaxPendingConnections places at
	// most this long. Default 5 s.
	ReadHeaderTimeout time.Duration `json:"readHeaderTimeout,omitempty" yaml:"readHeaderTimeout,omitempty"`
	// MaxConcurrentRequests bounds the requests served at once; as many
	// more wait for a slot, without holding up their connection, and past
	// that a request gets a 429 error. Default 4096.
	MaxConcurrentRequests int `json:"maxConcurrentRequests,omitempty" yaml:"maxConcurrentRequests,omitempty"`
	// SendStackTraces lets error replies carry stack traces. Off by default.
	SendStackTraces bool `json:"sendStackTraces,omitempty" yaml:"sendStackTraces,omitempty"`
	// MaxSubscriptionsPerPeer bounds the event names one peer may
	// subscribe to; the next subscribe task fails with a TitanError 429.
	// Default 1000, as in Titan.
	MaxSubscriptionsPerPeer int `json:"maxSubscriptionsPerPeer,omitempty" yaml:"maxSubscriptionsPerPeer,omitempty"`
	// EventQueueSize is the queue, in events, of each peer subscribed to
	// this node's events. When a peer falls behind and its queue is full,
	// its oldest queued event is dropped (and a warning logged): emitters
	// never wait for peers. Default 256.
	EventQueueSize int `json:"eventQueueSize,omitempty" yaml:"eventQueueSize,omitempty"`
	// Discovery configures discovery and presence.
	Discovery DiscoveryConfig `json:"discovery,omitempty" yaml:"discovery,omitempty"`
	// OutlierDetection configures the ejection of instances whose calls
	// keep failing, in the handles Service balances over discovery.
	OutlierDetection OutlierDetection `json:"outlierDetection,omitempty" yaml:"outlierDetection,omitempty"`
	// StreamWindow is the flow-control window of one stream, in bytes,
	// between Go peers: how far a producer may run ahead of its consumer,
	// and so the memory one stream holds. Default 1 MiB.
	StreamWindow int `json:"streamWindow,omitempty" yaml:"streamWindow,omitempty"`
	// StreamMaxWindow bounds the growth of a stream's window: it doubles
	// while the consumer keeps up (nothing buffered when it grants
	// credit), so that a fast consumer is not held back by the round trip
	// of its credit. Default 8 × StreamWindow; at or below StreamWindow
	// the window does not grow.
	StreamMaxWindow int `json:"streamMaxWindow,omitempty" yaml:"streamMaxWindow,omitempty"`
	// StreamTimeout ends a finite (non-live) stream that receives nothing
	// for this long while its consumer waits (Titan's streamTimeout).
	// Default 60 s; negative turns it off. Live streams have none.
	StreamTimeout time.Duration `json:"streamTimeout,omitempty" yaml:"streamTimeout,omitempty"`
	// MaxStreamsPerPeer bounds the concurrent streams per peer in each
	// direction. Default 1000, as in Titan.
	MaxStreamsPerPeer int `json:"maxStreamsPerPeer,omitempty" yaml:"maxStreamsPerPeer,omitempty"`
	// MaxStreamChunkSize bounds the encoded size of one stream chunk; a
	// larger chunk from a peer fails its stream. Default 4 MiB.
	MaxStreamChunkSize int `json:"maxStreamChunkSize,omitempty" yaml:"maxStreamChunkSize,omitempty"`
	// DiscoveryBackend, when set, is used instead of the backend that
	// Discovery describes (which then needs no Enabled); the node does not
	// close it.
	DiscoveryBackend discovery.Discovery `json:"-" yaml:"-"`
	// MaxConcurrentRequestsPerPeer bounds the requests one peer may have
	// running or waiting for a slot; beyond it a request gets a 429 error.
	// Default 1024.
	MaxConcurrentRequestsPerPeer int `json:"maxConcurrentRequestsPerPeer,omitempty" yaml:"maxConcurrentRequestsPerPeer,omitempty"`
	// Auth configures authentication at the handshake.
	Auth AuthConfig `json:"auth,omitempty" yaml:"auth,omitempty"`
	// Authenticator, when set, decides which peers may connect (instead of
	// Auth's token checks).
	Authenticator peer.Authenticator `json:"-" yaml:"-"`
	// Authorizer, when set, decides per service and method what each peer
	// may call (see rpc.ACL); refused calls look like unknown ones.
	Authorizer rpc.Authorizer `json:"-" yaml:"-"`
	// AllowRemoteExposure lets connected peers publish their services on
	// this node (Titan's expose_service and unexpose_service tasks, its
	// option allowRemoteServiceExposure), for third peers to call through
	// it; the Authorizer, if set, is asked with the method
	// "expose_service" or "unexpose_service". Off by default: the tasks
	// answer 403. See docs/titan.md.
	AllowRemoteExposure bool `json:"allowRemoteExposure,omitempty" yaml:"allowRemoteExposure,omitempty"`
	// TLS makes the server serve wss://; set ClientAuth and ClientCAs for
	// mutual TLS (a verified client certificate is the peer's identity).
	TLS *tls.Config `json:"-" yaml:"-"`
	// DialTLS is the TLS configuration for dialling wss:// peers.
	DialTLS *tls.Config `json:"-" yaml:"-"`
	// ClusterEvents carries events between the nodes of a cluster through
	// a Watermill backend (Redis Streams on Discovery.Redis, built in).
	ClusterEvents ClusterEventsConfig `json:"clusterEvents,omitempty" yaml:"clusterEvents,omitempty"`
	// BusJSON makes the payloads of the Watermill messages the node
	// publishes on its bus JSON instead of msgpack (MetaEncoding says
	// which); for handlers that do not read msgpack.
	BusJSON bool `json:"busJson,omitempty" yaml:"busJson,omitempty"`
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger `json:"-" yaml:"-"`
	// Reconnect configures how peers this node dialled (Connect) reconnect
	// when their connection drops. On by default.
	Reconnect ReconnectConfig `json:"reconnect,omitempty" yaml:"reconnect,omitempty"`
	// Metrics, when set, receives the node's metrics (see NewMetrics and
	// docs/observability.md). Nil, the default, costs nothing.
	Metrics *Metrics `json:"-" yaml:"-"`
	// TracerProvider, when set, makes an OpenTelemetry span per call this
	// node makes and per call it handles, and carries the trace context to
	// Go peers (see docs/observability.md). Nil, the default, costs nothing.
	TracerProvider trace.TracerProvider `json:"-" yaml:"-"`
	// Compression turns WebSocket permessage-deflate on. Off by default.
	Compression CompressionConfig `json:"compression,omitempty" yaml:"compression,omitempty"`
}

// CompressionConfig configures WebSocket permessage-deflate (RFC 7692).
// With Enabled, the node offers it when it dials and accepts it from
// peers that offer it (Titan's ws with perMessageDeflate, browsers, Go
// nodes with it enabled); a peer that does not offer it, or a node without
// it, connects uncompressed, so it is decided per connection
// (Peer.Compressed). Each message is deflated on its own (no context
// takeover: a pooled compressor, no per-connection state), and only
// messages of at least Threshold bytes. The limits (MaxPacketSize,
// MaxInboundMemory, the decode budget) apply to the inflated bytes.
//
// It pays where bandwidth is scarce and messages are large and
// compressible: JSON-like records, text. On a fast link it costs more CPU
// than it saves, and data that is already compressed or random does not
// shrink at all (docs/benchmarks.md, "Compression": a call returning 100
// records puts 5.7× fewer bytes on the wire for ~20 % more CPU, about 9 µs
// per KiB saved, which is worth it below ~1 Gbit/s; a 64 KiB random chunk
// costs 10 % more CPU for nothing). Leave it off between nodes on one LAN
// and for streams of compressed media.
type CompressionConfig struct {
	Enabled bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Threshold is the least size, in bytes, of a message that is
	// compressed; smaller ones are sent as they are. Default 512.
	Threshold int `json:"threshold,omitempty" yaml:"threshold,omitempty"`
}

// ReconnectConfig configures the reconnection of dialled peers (see
// Node.Connect). The zero value reconnects with the defaults: the delay
// before attempt n (from 0) is min(BaseDelay·2ⁿ, MaxDelay), less a random
// part of up to Jitter of it, with no limit on the attempts.
type ReconnectConfig struct {
	// Disabled turns reconnection off: a dialled peer is gone when its
	// connection closes, as an accepted one always is.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// BaseDelay is the delay before the first attempt. Default 1 s.
	BaseDelay time.Duration `json:"baseDelay,omitempty" yaml:"baseDelay,omitempty"`
	// MaxDelay caps the delay between attempts. Default 30 s (or
	// BaseDelay, when that is longer).
	MaxDelay time.Duration `json:"maxDelay,omitempty" yaml:"maxDelay,omitempty"`
	// MaxAttempts bounds the attempts after one loss of the connection;
	// then the peer gives up (Peer.Done closes). 0: unlimited.
	MaxAttempts int `json:"maxAttempts,omitempty" yaml:"maxAttempts,omitempty"`
	// Jitter is the fraction (0 to 1) of each delay that is random, so
	// that the clients of a restarted server do not all come back at the
	// same instant. Default 0.2; negative turns jitter off.
	Jitter float64 `json:"jitter,omitempty" yaml:"jitter,omitempty"`
}

// DiscoveryConfig is the seed's discovery block. With Enabled and no Redis
// (no host, addrs or URL), the node uses the in-process registry (the
// embedded default) shared by every node of the process.
type DiscoveryConfig struct {
	Enabled bool        `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	Redis   RedisConfig `json:"redis,omitempty" yaml:"redis,omitempty"`
	// Interval is the heartbeat interval. Default 5 s.
	Interval time.Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	// TTL is how long a silent node stays listed. Default 15 s.
	TTL time.Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	// Prefix is the Redis key prefix. Default "netron:discovery".
	Prefix string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	// AutoConnect connects to every node discovery reports, and to a node
	// again at its new address when it moves; a failed dial is tried again
	// with the Reconnect backoff while the node stays where it was
	// announced (not at all when Reconnect is disabled). A peer it
	// dialled gives up reconnecting once its node has left discovery and
	// an attempt fails; peers from Node.Connect are never stopped by
	// discovery.
	AutoConnect bool `json:"autoConnect,omitempty" yaml:"autoConnect,omitempty"`
}

// RedisConfig locates the Redis of discovery, in one of three ways:
//
//   - Host (and Port, default 6379): a single server;
//   - Addrs: several comma-separated addresses ("10.0.0.1:7000,10.0.0.2:7000"),
//     which are the seeds of a Redis Cluster, or, with MasterName set, the
//     addresses of the Sentinels watching the master of that name; Cluster
//     makes a single address a cluster seed;
//   - URL: the same as a redis:// or rediss:// URL (see redisdisc.ParseURL):
//     redis://:pw@host:6379/0, redis://h1:7000?addr=h2:7000 (Cluster),
//     redis://s1:26379?addr=s2:26379&master_name=mymaster (Sentinel).
//
// Password (and Username) authenticate with Redis, or with the master under
// Sentinel; SentinelPassword with the Sentinels. TLS (or a rediss:// URL)
// encrypts every connection; see redisdisc.Endpoint for how certificates are
// checked. Every key of one discovery prefix shares a hash slot, so a
// Cluster serves it from one slot.
type RedisConfig struct {
	Host     string `json:"host,omitempty" yaml:"host,omitempty"`
	Port     int    `json:"port,omitempty" yaml:"port,omitempty"`
	Password string `json:"password,omitempty" yaml:"password,omitempty"`
	// DB is the database of a single server or a Sentinel master; a Redis
	// Cluster has only database 0, and Validate refuses another with one.
	DB int `json:"db,omitempty" yaml:"db,omitempty"`
	// URL is a redis:// or rediss:// URL, instead of the fields above.
	URL string `json:"url,omitempty" yaml:"url,omitempty"`
	// Addrs are the Cluster seeds, or the Sentinels' addresses, separated
	// by commas.
	Addrs string `json:"addrs,omitempty" yaml:"addrs,omitempty"`
	// MasterName is the master's name under Sentinel.
	MasterName string `json:"masterName,omitempty" yaml:"masterName,omitempty"`
	// Cluster says that Addrs, even a single one, are Redis Cluster seeds.
	Cluster bool `json:"cluster,omitempty" yaml:"cluster,omitempty"`
	// Username is the ACL user (Redis 6+); default "default".
	Username string `json:"username,omitempty" yaml:"username,omitempty"`
	// SentinelPassword authenticates with the Sentinels.
	SentinelPassword string `json:"sentinelPassword,omitempty" yaml:"sentinelPassword,omitempty"`
	// TLS turns TLS on for every connection to Redis (a rediss:// URL does
	// too).
	TLS bool `json:"tls,omitempty" yaml:"tls,omitempty"`
	// TLSCAFile holds the PEM certificates of the CAs that sign Redis's
	// certificates (default: the system's).
	TLSCAFile string `json:"tlsCAFile,omitempty" yaml:"tlsCAFile,omitempty"`
	// TLSCertFile and TLSKeyFile are a client certificate and its key
	// (PEM), for a Redis that requires them (tls-auth-clients).
	TLSCertFile string `json:"tlsCertFile,omitempty" yaml:"tlsCertFile,omitempty"`
	TLSKeyFile  string `json:"tlsKeyFile,omitempty" yaml:"tlsKeyFile,omitempty"`
	// TLSServerName is the name Redis's certificates are checked against;
	// default: the host of each address dialled.
	TLSServerName string `json:"tlsServerName,omitempty" yaml:"tlsServerName,omitempty"`
}

// configured reports whether r names a Redis at all.
func (r RedisConfig) configured() bool { return r.Host != "" || r.URL != "" || r.Addrs != "" }

// addrs returns the addresses of Addrs.
func (r RedisConfig) addrs() []string {
	var out []string
	for _, a := range strings.Split(r.Addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Endpoint returns the Redis r describes, for package redisdisc (for
// example to open a discovery instance of one's own on the cluster's
// Redis: redisdisc.ConnectEndpoint).
func (r RedisConfig) Endpoint() redisdisc.Endpoint {
	e := redisdisc.Endpoint{
		URL:              r.URL,
		Addrs:            r.addrs(),
		MasterName:       r.MasterName,
		Cluster:          r.Cluster,
		DB:               r.DB,
		Username:         r.Username,
		Password:         r.Password,
		SentinelPassword: r.SentinelPassword,
		TLS:              r.TLS,
		CAFile:           r.TLSCAFile,
		CertFile:         r.TLSCertFile,
		KeyFile:          r.TLSKeyFile,
		ServerName:       r.TLSServerName,
	}
	if r.Host != "" {
		port := r.Port
		if port == 0 {
			port = 6379
		}
		e.Addrs = []string{net.JoinHostPort(r.Host, strconv.Itoa(port))}
	}
	return e
}

// AuthConfig configures authentication. With Token set, peers must
// present it to connect (and this node presents it when it dials); with
// HMACKey set, peers must present a token signed with it (peer.NewHMACToken)
// and this node presents DialToken. Handlers read the caller with
// peer.IdentityFrom(ctx).
type AuthConfig struct {
	Token     string `json:"token,omitempty" yaml:"token,omitempty"`
	HMACKey   string `json:"hmacKey,omitempty" yaml:"hmacKey,omitempty"`
	DialToken string `json:"dialToken,omitempty" yaml:"dialToken,omitempty"`
	// AllowAnonymous admits peers whose upgrade carries no credentials
	// (a wrong token is still refused with 401), for Titan clients that
	// authenticate with the authenticate task instead: until it succeeds
	// they may run only that task, abilities and unref_service, look up
	// AnonymousQuery and AnonymousCall, and call AnonymousCall; anything
	// else answers 401 "Authentication required". Needs Token, HMACKey or
	// Config.Authenticator. Off by default. See docs/titan.md.
	AllowAnonymous bool `json:"allowAnonymous,omitempty" yaml:"allowAnonymous,omitempty"`
	// AnonymousQuery lists, separated by commas, the services an
	// anonymous peer may look up (query_interface): names, name@version,
	// or "*" for all. (A string, not a slice: Config stays comparable.)
	AnonymousQuery string `json:"anonymousQuery,omitempty" yaml:"anonymousQuery,omitempty"`
	// AnonymousCall lists, in the same form, the services whose methods
	// and properties an anonymous peer may use.
	AnonymousCall string `json:"anonymousCall,omitempty" yaml:"anonymousCall,omitempty"`
	// MaxFailures is how many failed authenticate tasks a connection may
	// run before it is closed (after the reply to the last). Default 5.
	MaxFailures int `json:"maxFailures,omitempty" yaml:"maxFailures,omitempty"`
}

// anonymousPolicy is the rpc policy of AnonymousQuery and AnonymousCall.
func (a AuthConfig) anonymousPolicy() rpc.AnonymousPolicy {
	list := func(s string) []string {
		var out []string
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	return rpc.AnonymousPolicy{Query: list(a.AnonymousQuery), Call: list(a.AnonymousCall)}
}

func (a AuthConfig) options() []transport.Option {
	var opts []transport.Option
	switch {
	case a.HMACKey != "":
		opts = append(opts, transport.WithAuthenticator(peer.HMACToken([]byte(a.HMACKey))))
	case a.Token != "":
		opts = append(opts, transport.WithAuthenticator(peer.SharedToken(a.Token)))
	}
	if a.AllowAnonymous {
		opts = append(opts, transport.WithAnonymous(true))
	}
	switch {
	case a.DialToken != "":
		opts = append(opts, transport.WithToken(a.DialToken))
	case a.Token != "":
		opts = append(opts, transport.WithToken(a.Token))
	}
	return opts
}

// ErrInvalidConfig is wrapped by every configuration error; the message
// names the field.
var ErrInvalidConfig = errors.New("netron: invalid config")

// serverEnabled reports whether the node listens.
func (c *Config) serverEnabled() bool { return c.Server || c.Port != 0 }

// Validate checks the configuration and names the first bad field.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		return bad("port", "%d is not a TCP port (0-65535)", c.Port)
	case c.RequestTimeout < 0:
		return bad("requestTimeout", "must not be negative")
	case c.HandshakeTimeout < 0:
		return bad("handshakeTimeout", "must not be negative")
	case c.MaxPacketSize < 0:
		return bad("maxPacketSize", "must not be negative")
	case c.KeepAliveTimeout < 0:
		return bad("keepAliveTimeout", "must not be negative")
	case c.MaxPeers < 0:
		return bad("maxPeers", "must not be negative")
	case c.MaxPendingConnections < 0:
		return bad("maxPendingConnections", "must not be negative")
	case c.IdleTimeout < 0:
		return bad("idleTimeout", "must not be negative")
	case c.MaxInboundMemory < 0:
		return bad("maxInboundMemory", "must not be negative")
	case c.MaxDecodeMemory < 0:
		return bad("maxDecodeMemory", "must not be negative")
	case c.ReadHeaderTimeout < 0:
		return bad("readHeaderTimeout", "must not be negative")
	case c.MaxConcurrentRequestsPerPeer < 0:
		return bad("maxConcurrentRequestsPerPeer", "must not be negative")
	case c.Auth.HMACKey != "" && len(c.Auth.HMACKey) < 16:
		return bad("auth.hmacKey", "shorter than 16 bytes")
	case c.Auth.AllowAnonymous && c.Auth.Token == "" && c.Auth.HMACKey == "" && c.Authenticator == nil:
		return bad("auth.allowAnonymous", "needs auth.token, auth.hmacKey or an Authenticator")
	case c.Auth.MaxFailures < 0:
		return bad("auth.maxFailures", "must not be negative")
	case c.MaxConcurrentRequests < 0:
		return bad("maxConcurrentRequests", "must not be negative")
	case c.MaxSubscriptionsPerPeer < 0:
		return bad("maxSubscriptionsPerPeer", "must not be negative")
	case c.EventQueueSize < 0:
		return bad("eventQueueSize", "must not be negative")
	case c.StreamWindow < 0:
		return bad("streamWindow", "must not be negative")
	case c.StreamMaxWindow < 0:
		return bad("streamMaxWindow", "must not be negative")
	case c.MaxStreamsPerPeer < 0:
		return bad("maxStreamsPerPeer", "must not be negative")
	case c.MaxStreamChunkSize < 0:
		return bad("maxStreamChunkSize", "must not be negative")
	case len(c.ID) > 256:
		return bad("id", "longer than 256 bytes")
	case c.Discovery.Interval < 0:
		return bad("discovery.interval", "must not be negative")
	case c.Discovery.TTL < 0:
		return bad("discovery.ttl", "must not be negative")
	case c.Discovery.Interval > 0 && c.Discovery.TTL > 0 && c.Discovery.TTL <= c.Discovery.Interval:
		return bad("discovery.ttl", "%s must be longer than discovery.interval %s", c.Discovery.TTL, c.Discovery.Interval)
	case c.Discovery.Redis.Port < 0 || c.Discovery.Redis.Port > 65535:
		return bad("discovery.redis.port", "%d is not a TCP port", c.Discovery.Redis.Port)
	case c.Discovery.Redis.URL != "" && (c.Discovery.Redis.Host != "" || c.Discovery.Redis.Addrs != ""):
		return bad("discovery.redis.url", "give either a URL or host/addrs, not both")
	case c.Discovery.Redis.Host != "" && c.Discovery.Redis.Addrs != "":
		return bad("discovery.redis.addrs", "give either host or addrs, not both")
	case c.Discovery.Redis.MasterName != "" && c.Discovery.Redis.Addrs == "":
		return bad("discovery.redis.masterName", "needs the Sentinels' addresses in discovery.redis.addrs")
	case c.Discovery.Redis.MasterName != "" && c.Discovery.Redis.Cluster:
		return bad("discovery.redis.cluster", "a Sentinel master (masterName) is not a Cluster")
	case c.OutlierDetection.ConsecutiveFailures < 0:
		return bad("outlierDetection.consecutiveFailures", "must not be negative")
	case c.OutlierDetection.BaseEjectionTime < 0:
		return bad("outlierDetection.baseEjectionTime", "must not be negative")
	case c.OutlierDetection.MaxEjectionTime < 0:
		return bad("outlierDetection.maxEjectionTime", "must not be negative")
	case c.OutlierDetection.MaxEjectionPercent < 0 || c.OutlierDetection.MaxEjectionPercent > 100:
		return bad("outlierDetection.maxEjectionPercent", "%d is not a percentage", c.OutlierDetection.MaxEjectionPercent)
	case c.ClusterEvents.Enabled && (c.ClusterEvents.Publisher == nil) != (c.ClusterEvents.Subscriber == nil):
		return bad("clusterEvents", "give both a Publisher and a Subscriber, or neither")
	case c.ClusterEvents.Enabled && c.ClusterEvents.Publisher == nil && !c.Discovery.Redis.configured():
		return bad("clusterEvents", "the built-in backend needs discovery.redis (or give a Publisher and a Subscriber)")
	case c.ClusterEvents.MaxLen < 0:
		return bad("clusterEvents.maxLen", "must not be negative")
	case c.Reconnect.BaseDelay < 0:
		return bad("reconnect.baseDelay", "must not be negative")
	case c.Reconnect.MaxDelay < 0:
		return bad("reconnect.maxDelay", "must not be negative")
	case c.Reconnect.BaseDelay > 0 && c.Reconnect.MaxDelay > 0 && c.Reconnect.MaxDelay < c.Reconnect.BaseDelay:
		return bad("reconnect.maxDelay", "%s is shorter than reconnect.baseDelay %s", c.Reconnect.MaxDelay, c.Reconnect.BaseDelay)
	case c.Compression.Threshold < 0:
		return bad("compression.threshold", "must not be negative")
	case c.Reconnect.MaxAttempts < 0:
		return bad("reconnect.maxAttempts", "must not be negative")
	case c.Reconnect.Jitter > 1 || math.IsNaN(c.Reconnect.Jitter):
		return bad("reconnect.jitter", "%v is not a fraction (0-1, negative for none)", c.Reconnect.Jitter)
	}
	if r := c.Discovery.Redis; r.configured() {
		if _, err := r.Endpoint().Options(); err != nil {
			field := "discovery.redis"
			switch {
			case r.URL != "":
				field += ".url"
			case r.Addrs != "":
				field += ".addrs"
			}
			return bad(field, "%s", strings.TrimPrefix(err.Error(), discovery.ErrInvalidOption.Error()+": "))
		}
	}
	if c.Advertise != "" {
		if _, err := advertised(c.Advertise, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, false, slog.New(slog.DiscardHandler)); err != nil {
			return bad("advertise", "%v", err)
		}
	}
	return nil
}
