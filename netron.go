package netron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	neturl "net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	obs    *obs.Observer // nil: observability off
	source obs.Source    // what Config.Metrics reads of this node when scraped
	// streams runs the node's streams (package stream).
	streams *streamcore.Manager

	ev     *eventHub
	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	// exposeMu orders Expose and Unexpose, so that the service events of
	// one service come in the order of its changes.
	exposeMu sync.Mutex

	disc  *nodeDiscovery                // nil when discovery is off
	discM atomic.Pointer[nodeDiscovery] // disc, for Config.Metrics (read when scraped)
	pools pools                         // the services found through discovery (balance.go)

	inject  busState                      // Watermill injection: counters, running calls
	cluster atomic.Pointer[clusterBridge] // nil unless Config.ClusterEvents.Enabled

	reconnects reconnectSet // the reconnect goroutines of dialled peers

	dialMu sync.Mutex
	dials  map[string]*dialCall // lookups' attempts to reach a node, by node id

	mu      sync.Mutex
	started bool
	stopped bool
	addr    net.Addr
	url     string // the advertised URL; set by Start
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
	n.bus = nodeBus(n)
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
	if cfg.Compression.Enabled {
		hubOpts = append(hubOpts, transport.WithCompression(cfg.Compression.Threshold))
	}
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
		rpccore.WithAuthenticator(cfg.authenticator()),
		rpccore.WithAnonymous(cfg.Auth.anonymousPolicy()),
		rpccore.WithAuthFailureLimit(cfg.Auth.MaxFailures),
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
	unsubCalls, err := n.watchCalls()
	if err != nil {
		n.ev.close(context.Background())
		n.cancel()
		n.client.Close()
		n.server.Close()
		n.streams.Close()
		n.bus.Close()
		return nil, err
	}
	n.ev.unsubs = append(n.ev.unsubs, unsubCalls)
	n.source = obs.Source{Conns: n.connsNow, BusDrops: n.bus.DroppedByTopic, Discovery: n.discoveryStats}
	cfg.Metrics.inner().AddSource(&n.source)
	n.watchProperties()
	n.allowRemoteExposure()
	return n, nil
}

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.ID }

// Bus returns the node's bus: every packet, connection and event of the
// node travels on it as a typed message, and a Watermill subscriber sees
// each as a self-describing message (see docs/bus.md for the topic map
// and the metadata). Give a Watermill Router a Scope of it (Bus.Scope), so
// that the Router's Close does not close the bus. Watermill subscriptions
// drop their oldest message when they fall behind (bus.DropOldest,
// counted by Scope.Dropped): an observer never slows the node, unless it
// asks for bus.Block through its Scope. The topics of connections and
// internal events are read-only for Watermill publishers
// (bus.ErrReadOnly); TopicEvents and TopicCalls take injected events and
// calls.
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

// Start starts the WebSocket server when the configuration asks for one,
// and registers the node in discovery when that is on. It fails when it
// cannot bind, or when discovery refuses the node's id because a live node
// elsewhere holds it (discovery.ErrDuplicateID). It does not fail when
// discovery cannot be reached: it logs a warning, and the node is
// announced once discovery is back.
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
		url, err := advertised(n.cfg.Advertise, addr, n.cfg.TLS != nil, n.logger)
		if err != nil { // Validate checked it
			_ = n.hub.StopAccepting(context.Background())
			return fmt.Errorf("netron: start: %w", err)
		}
		if n.cfg.TLS != nil {
			if u, perr := neturl.Parse(url); perr == nil && net.ParseIP(u.Hostname()) != nil {
				n.logger.Warn("netron: TLS is on and the advertised address is an IP address; peers check the certificate against it, so it needs that IP address, or set advertise to the name the certificate is for",
					"advertise", url)
			}
		}
		n.addr, n.url = addr, url
		n.logger.Info("netron: listening", "addr", addr.String(), "advertise", url)
	}
	if err := n.startDiscovery(ctx); err != nil {
		if n.addr != nil {
			_ = n.hub.StopAccepting(context.Background())
		}
		return err
	}
	if err := n.startCluster(ctx); err != nil {
		if n.disc != nil {
			_ = n.disc.close(context.Background())
		}
		if n.addr != nil {
			_ = n.hub.StopAccepting(context.Background())
		}
		return err
	}
	n.started = true
	return nil
}

// closeCluster stops the cluster-wide events, if on.
func (n *Node) closeCluster() error {
	if b := n.cluster.Load(); b != nil {
		b.close()
	}
	return nil
}

// Addr returns the address the server is bound to, or nil.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// URL returns the ws:// (wss:// with TLS) URL peers dial to reach this
// node, the one it announces in discovery: Config.Advertise, else the bound
// address, or for a node bound to every interface an address of this host
// that is not loopback (see Config.Advertise). It is "" without a server.
func (n *Node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.url
}

// Stop shuts the node down gracefully: it stops accepting connections,
// tells its Go peers it is leaving (goaway: their new calls fail fast with
// peer.ErrGoingAway and go elsewhere), then deregisters from discovery (so
// that others stop picking it) while it answers new requests with 503 and
// lets the calls and streams already running finish until ctx ends. The
// deregistration gets a quarter of ctx's time, at most a second (and
// closing a discovery backend the node made as much again); when discovery
// cannot be reached within it, that is logged, not returned, and the
// others see the node leave once its TTL has passed.
// Then Stop closes every connection (calls still pending fail with
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
	share := discoveryStopShare(ctx)
	if serr := n.hub.StopAccepting(ctx); serr != nil && ctx.Err() == nil {
		err = errors.Join(err, serr)
	}
	var conns []*transport.Conn
	goaways := closedChan
	if ctx.Err() == nil {
		conns, goaways = n.goAway(ctx)
	}
	var discDone chan error
	if n.disc != nil {
		// The peers hear goaway first: they stop calling this node now.
		// Then the deregistration (others stop picking it) runs beside the
		// drain, bounded by a share of ctx: a Redis that does not answer
		// must not eat the drain. A peer whose outbound queue is full,
		// whose goaway waits for room, holds it back for that share at
		// most.
		discDone = make(chan error, 1)
		go func() {
			t := time.NewTimer(share)
			select {
			case <-goaways:
			case <-t.C:
			}
			t.Stop()
			discDone <- n.disc.close(ctx)
		}()
	}
	if ctx.Err() == nil {
		n.drain(ctx, conns)
	}
	if discDone != nil {
		err = errors.Join(err, <-discDone)
	}
	n.cancel()
	n.cfg.Metrics.inner().RemoveSource(&n.source)
	n.pools.wg.Wait() // the pools' joins end with n.ctx
	err = errors.Join(err, n.hub.Close(), n.server.Close(), n.streams.Close(), n.client.Close(), n.ev.close(ctx), n.closeCluster(), n.bus.Close())
	<-goaways // the connections are closed: every goaway has returned
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

// closedChan is a channel that is closed.
var closedChan = func() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// goAway says goaway to every connected peer, to each in a goroutine of
// its own (a connection whose outbound queue is full waits for room, until
// ctx ends or it closes), and returns the connections and a channel closed
// once every goaway has been handed over.
func (n *Node) goAway(ctx context.Context) ([]*transport.Conn, <-chan struct{}) {
	conns := n.hub.Conns()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			if err := c.GoAway(ctx, "node stopping"); err != nil {
				n.logger.Debug("netron: goaway not sent", "peer", c.ID(), "err", err)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return conns, done
}

// drain waits for the requests and outbound streams in flight on conns,
// until ctx ends.
func (n *Node) drain(ctx context.Context, conns []*transport.Conn) {
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
// opts configure the service: rpc.Idempotent marks methods that callers
// balancing over several instances may run again elsewhere (see
// docs/balancing.md).
//
// Subscribers of service:expose (EventServiceExpose) learn of it, on this
// node and on peers.
func (n *Node) Expose(qualifiedName string, v any, opts ...rpc.ExposeOption) error {
	n.exposeMu.Lock()
	defer n.exposeMu.Unlock()
	_, err := n.reg.Expose(qualifiedName, v, opts...)
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
// discovery, and the handle balances its calls over every node that
// offers a matching version: the instances of the highest matching
// version that can be called, picked by the balancer (WithBalancer;
// power of two choices by default), or one instance for good
// (WithPinned). The handle follows discovery: a node that joins gets
// calls once connected, one that leaves gets none; instances whose calls
// keep failing in transit are ejected for a while (Config.OutlierDetection);
// a call that never reached its instance, or of a method marked
// rpc.Idempotent that failed in transit, runs again on another instance
// within ctx's deadline (else the request timeout). A stream, and a child
// service a result hands out, stay on the instance that made them. See
// docs/balancing.md.
//
// Connections made this way follow discovery: once their node has left
// they stop reconnecting at their first failed attempt. Handles of one
// spec share its instances and their load.
func (n *Node) Service(ctx context.Context, spec string, opts ...ServiceOption) (*rpc.Service, error) {
	svc, err := n.reg.Local(spec, n.logger)
	if err == nil || !errors.Is(err, rpc.ErrServiceNotFound) {
		return svc, err
	}
	if n.disc == nil {
		return nil, withAvailable(err, spec, slices.Collect(maps.Keys(n.reg.Definitions())))
	}
	var o serviceOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return n.balancedService(ctx, spec, o)
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
