package netron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/rpc"
)

// Node is one Netron node: a bus, a WebSocket hub of peers, a registry of
// exposed services, the server that answers peers and the client that
// calls them.
type Node struct {
	cfg    Config
	logger *slog.Logger
	bus    *bus.Bus
	hub    *transport.Hub
	reg    *rpccore.Registry
	server *rpccore.Server
	client *rpccore.Client
	obs    *obs.Observer  // nil: observability off
	conns  obs.ConnSource // this node's connections, for Config.Metrics
	// streams runs the node's streams (package stream).
	streams *streamcore.Manager

	ev     *eventHub
	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	// exposeMu orders Expose and Unexpose, so that the service events of
	// one service come in the order of its changes.
	exposeMu sync.Mutex

	disc *nodeDiscovery // nil when discovery is off

	reconnects reconnectSet // the reconnect goroutines of dialled peers

	dialMu sync.Mutex
	dials  map[string]*dialCall // lookups' attempts to reach a node, by node id

	mu      sync.Mutex
	started bool
	stopped bool
	addr    net.Addr
}

// New returns a node configured by cfg. It validates cfg and allocates,
// but does not listen: call Start.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = uuid.NewString()
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)
	n := &Node{cfg: cfg, logger: logger}
	n.bus = bus.New(bus.WithLogger(logger))
	ka := cfg.KeepAliveInterval
	if ka == 0 {
		ka = transport.DefaultKeepAliveInterval
	}
	wt := cfg.WriteTimeout
	if wt == 0 {
		wt = transport.DefaultWriteTimeout
	}
	hubOpts := []transport.Option{
		transport.WithLogger(logger),
		transport.WithMetrics(cfg.Metrics.inner()),
		transport.WithReadLimit(cfg.MaxPacketSize),
		transport.WithHandshakeTimeout(cfg.HandshakeTimeout),
		transport.WithKeepAlive(ka, cfg.KeepAliveTimeout),
		transport.WithWriteTimeout(wt),
		transport.WithMaxPeers(cfg.MaxPeers),
		transport.WithMaxPending(cfg.MaxPendingConnections),
		transport.WithIdleTimeout(cfg.IdleTimeout),
		transport.WithInboundMemory(cfg.MaxInboundMemory),
		transport.WithMaxDecodeMemory(cfg.MaxDecodeMemory),
		transport.WithReadHeaderTimeout(cfg.ReadHeaderTimeout),
		transport.WithTLS(cfg.TLS),
		transport.WithDialTLS(cfg.DialTLS),
	}
	hubOpts = append(hubOpts, cfg.Auth.options()...)
	if cfg.Authenticator != nil {
		hubOpts = append(hubOpts, transport.WithAuthenticator(cfg.Authenticator))
	}
	n.hub = transport.NewHub(n.bus, cfg.ID, hubOpts...)
	n.reg = rpccore.NewRegistry(cfg.ID)
	var err error
	n.streams, err = streamcore.NewManager(n.bus,
		streamcore.WithLogger(logger),
		streamcore.WithMetrics(cfg.Metrics.inner()),
		streamcore.WithWindow(cfg.StreamWindow),
		streamcore.WithMaxWindow(cfg.StreamMaxWindow),
		streamcore.WithInactivityTimeout(cfg.StreamTimeout),
		streamcore.WithMaxStreams(cfg.MaxStreamsPerPeer),
		streamcore.WithMaxChunkSize(cfg.MaxStreamChunkSize),
	)
	if err != nil {
		n.bus.Close()
		return nil, err
	}
	n.obs = obs.New(cfg.Metrics.inner(), obs.NewTracer(cfg.TracerProvider, cfg.ID))
	n.server, err = rpccore.NewServer(n.bus, n.reg,
		rpccore.WithServerObserver(n.obs),
		rpccore.WithServerLogger(logger),
		rpccore.WithConcurrency(cfg.MaxConcurrentRequests),
		rpccore.WithStackTraces(cfg.SendStackTraces),
		rpccore.WithStreams(n.streams),
		rpccore.WithPeerConcurrency(cfg.MaxConcurrentRequestsPerPeer),
		rpccore.WithAuthorizer(cfg.Authorizer),
	)
	if err != nil {
		n.streams.Close()
		n.bus.Close()
		return nil, err
	}
	n.client, err = rpccore.NewClient(n.bus, rpccore.WithRequestTimeout(cfg.RequestTimeout), rpccore.WithClientLogger(logger), rpccore.WithClientStreams(n.streams), rpccore.WithClientObserver(n.obs))
	if err != nil {
		n.server.Close()
		n.streams.Close()
		n.bus.Close()
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.ev, err = newEventHub(n)
	if err != nil {
		n.cancel()
		n.client.Close()
		n.server.Close()
		n.streams.Close()
		n.bus.Close()
		return nil, err
	}
	n.conns = n.connsNow
	cfg.Metrics.inner().AddConns(&n.conns)
	return n, nil
}

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.ID }

// Bus returns the node's bus: every packet, connection and event of the
// node travels on it as a typed message (see package peer for the topics).
func (n *Node) Bus() *bus.Bus { return n.bus }

// Handler returns the http.Handler that accepts peers, for mounting in a
// mux of your own (with or without Config.Server).
func (n *Node) Handler() http.Handler { return n.hub }

// reservedTasks are the tasks the node answers itself.
var reservedTasks = []string{"query_interface", "abilities", "subscribe", "unsubscribe", "emit"}

// HandleTask registers fn as the task name, which peers run with
// Peer.RunTask (Netron's TASK request); a second registration of the same
// name replaces the first. The task's context carries the caller's
// identity (peer.IdentityFrom) and is cancelled when its connection closes.
// An empty name, or one of the tasks the node answers itself
// (query_interface, abilities, subscribe, unsubscribe, emit), fails with
// an error matching rpc.ErrInvalidTask.
func (n *Node) HandleTask(name string, fn rpc.TaskFunc) error {
	if name == "" || fn == nil || slices.Contains(reservedTasks, name) {
		return fmt.Errorf("%w: %q", rpc.ErrInvalidTask, name)
	}
	n.server.HandleTask(name, func(ctx context.Context, _ *transport.Conn, a *rpc.Args) (any, error) { return fn(ctx, a) })
	return nil
}

// Start starts the WebSocket server when the configuration asks for one.
// It fails when it cannot bind.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.stopped:
		return ErrStopped
	case n.started:
		return ErrAlreadyStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.cfg.serverEnabled() {
		addr, err := n.hub.Listen(net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.Port)))
		if err != nil {
			return fmt.Errorf("netron: start: %w", err)
		}
		n.addr = addr
		n.logger.Info("netron: listening", "addr", addr.String())
	}
	if err := n.startDiscovery(ctx); err != nil {
		if n.addr != nil {
			_ = n.hub.StopAccepting(context.Background())
		}
		return err
	}
	n.started = true
	return nil
}

// Addr returns the address the server is bound to, or nil.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// URL returns the ws:// URL peers can dial, or "" without a server. A
// wildcard bind address is reported as 127.0.0.1.
func (n *Node) URL() string { return urlOf(n.Addr()) }

func urlOf(addr net.Addr) string {
	a, ok := addr.(*net.TCPAddr)
	if !ok {
		return ""
	}
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "ws://" + net.JoinHostPort(ip.String(), strconv.Itoa(a.Port)) + "/"
}

// Stop shuts the node down gracefully: it deregisters from discovery (so
// that others stop sending it work), stops accepting connections, tells its
// Go peers it is leaving (goaway: their new calls fail fast with
// peer.ErrGoingAway and go elsewhere), answers new requests with 503, and
// lets the calls and streams already running finish until ctx ends. Then it
// closes every connection (calls still pending fail with
// ErrPeerDisconnected) and waits for every goroutine of the node. Work cut
// short by ctx is logged, not returned. Stop is idempotent; Close is Stop
// without the wait.
func (n *Node) Stop(ctx context.Context) error {
	n.reconnects.stop() // dialled peers stop reconnecting; open connections stay
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	n.mu.Unlock()
	var err error
	if n.disc != nil {
		dctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			dctx, cancel = context.WithTimeout(context.Background(), time.Second)
			defer cancel()
		}
		err = n.disc.close(dctx) // deregister first: others stop calling us
	}
	if serr := n.hub.StopAccepting(ctx); serr != nil && ctx.Err() == nil {
		err = errors.Join(err, serr)
	}
	if ctx.Err() == nil {
		n.drain(ctx)
	}
	n.cancel()
	n.cfg.Metrics.inner().RemoveConns(&n.conns)
	err = errors.Join(err, n.hub.Close(), n.server.Close(), n.streams.Close(), n.client.Close(), n.ev.close(ctx), n.bus.Close())
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("netron: stop: %w", err)
	}
	return nil
}

// Close stops the node at once: like Stop, without waiting for the calls
// and streams in flight.
func (n *Node) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return n.Stop(ctx)
}

// drain says goaway to the peers and waits for the requests and outbound
// streams in flight, until ctx ends.
func (n *Node) drain(ctx context.Context) {
	conns := n.hub.Conns()
	for _, c := range conns {
		if err := c.GoAway(ctx, "node stopping"); err != nil {
			n.logger.Debug("netron: goaway not sent", "peer", c.ID(), "err", err)
		}
	}
	if err := n.server.Drain(ctx); err != nil {
		n.logger.Warn("netron: stop: requests still running when the deadline came", "err", err)
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := 0
		for _, c := range conns {
			_, out := n.streams.Streams(c)
			busy += out
		}
		if busy == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			n.logger.Warn("netron: stop: streams still running when the deadline came", "streams", busy)
			return
		}
	}
}

// Expose makes v callable by peers as the service qualifiedName
// ("calculator@1.0.0"). Every exported method of v with an optional leading
// context.Context and results (), (T), (error) or (T, error) becomes
// callable by its lowerCamel name (Add → "add"). Methods may also produce
// and take streams: a result <-chan T, iter.Seq2[T, error] or
// stream.Source, a last parameter *stream.Writer[T], parameters
// *stream.Reader[T] (see package rpc).
//
// Subscribers of service:expose (EventServiceExpose) learn of it, on this
// node and on peers.
func (n *Node) Expose(qualifiedName string, v any) error {
	n.exposeMu.Lock()
	defer n.exposeMu.Unlock()
	_, err := n.reg.Expose(qualifiedName, v)
	return err
}

// Unexpose removes a service; subscribers of service:unexpose learn of it.
func (n *Node) Unexpose(qualifiedName string) error {
	n.exposeMu.Lock()
	defer n.exposeMu.Unlock()
	return n.reg.Unexpose(qualifiedName)
}

// Service returns a service of this node by "name", "name@1.2.3" or a
// range such as "name@^1". Calls run without the network.
//
// With discovery on, a service this node does not offer is looked up in
// discovery: the node offering the highest matching version is called,
// over the connection to it if there is one, else a new one (concurrent
// lookups of one node share it). A connection made this way follows
// discovery: once its node has left, it stops reconnecting at its first
// failed attempt, and its service handles fail with ErrPeerDisconnected.
func (n *Node) Service(ctx context.Context, spec string) (*rpc.Service, error) {
	svc, err := n.reg.Local(spec, n.logger)
	if err == nil || !errors.Is(err, rpc.ErrServiceNotFound) {
		return svc, err
	}
	if n.disc == nil {
		return nil, withAvailable(err, spec, slices.Collect(maps.Keys(n.reg.Definitions())))
	}
	return n.findService(ctx, spec)
}

// Connect dials a node at a ws:// URL, runs the handshake and exchanges
// abilities (a Titan node has none: no extensions), and follows the peer's
// catalogue when it offers service events. ctx bounds the connect only.
//
// The Peer is a stable handle. Unless Config.Reconnect.Disabled, when its
// connection drops it dials url again, with exponential backoff and
// jitter (Config.Reconnect), runs the same steps on the new connection,
// and renews the event subscriptions made with Peer.On; the service
// handles from Peer.Service keep working. Meanwhile calls through it fail
// at once with ErrReconnecting (which matches ErrPeerDisconnected). Peer.Close
// and Stop end the reconnecting. The first connection is not retried: a
// failed Connect returns its error.
func (n *Node) Connect(ctx context.Context, url string) (*Peer, error) {
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	if stopped {
		return nil, ErrStopped
	}
	p := newPeer(n, nil)
	if !n.cfg.Reconnect.Disabled {
		// Before the dial: a loss during the setup must not end the
		// subscriptions of a peer that will reconnect.
		p.rc = newRedialer(p, url, n.cfg.Reconnect.policy())
	}
	conn, err := n.hub.Dial(ctx, url, transport.BeforeStart(p.attach))
	if err != nil {
		if p.rc != nil {
			p.rc.close()
		}
		return nil, fmt.Errorf("netron: connect: %w", err)
	}
	if err := p.setup(ctx, conn); err != nil {
		if p.rc != nil {
			p.rc.close()
		}
		conn.Close()
		return nil, fmt.Errorf("netron: connect %s: %w", url, err)
	}
	if p.rc != nil && !n.reconnects.start(p.rc) {
		p.rc.close()
		conn.Close()
		return nil, ErrStopped
	}
	return p, nil
}

// offer is what this node says of itself in the abilities task.
func (n *Node) offer() rpccore.Abilities {
	return rpccore.Abilities{
		AllowServiceEvents: true,
		NetronGo:           &rpccore.GoAbilities{Version: rpccore.ProtocolVersion, Extensions: rpccore.SupportedExtensions()},
	}
}

type peerKey struct{}

func (n *Node) peerOf(conn *transport.Conn) *Peer {
	if v, ok := conn.Value(peerKey{}); ok {
		return v.(*Peer)
	}
	v, _ := conn.LoadOrStoreValue(peerKey{}, newPeer(n, conn))
	return v.(*Peer)
}

// Peers returns the connected peers, dialled and accepted.
func (n *Node) Peers() []*Peer {
	conns := n.hub.Conns()
	out := make([]*Peer, 0, len(conns))
	for _, c := range conns {
		if c.Err() != nil {
			continue // closing; a reconnecting peer's old connection
		}
		if p := n.peerOf(c); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
