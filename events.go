package netron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// Names of the lifecycle events. Each lifecycle event answers to two
// names: the original Netron's (peer:connect, service:expose, …), which is
// what travels on the wire and what a pattern subscription reports, and the
// name of the Titan integration document (peer:connected, …). Subscribing
// to either reaches the same events.
const (
	EventPeerConnect       = "peer:connect"       // PeerEvent: a connection opened
	EventPeerConnected     = "peer:connected"     // alias of EventPeerConnect
	EventPeerDisconnect    = "peer:disconnect"    // PeerEvent: a connection closed
	EventPeerDisconnected  = "peer:disconnected"  // alias of EventPeerDisconnect
	EventServiceExpose     = "service:expose"     // ServiceEvent: this node exposed a service
	EventServiceExposed    = "service:exposed"    // alias of EventServiceExpose
	EventServiceUnexpose   = "service:unexpose"   // ServiceEvent: this node unexposed a service
	EventServiceUnexposed  = "service:unexposed"  // alias of EventServiceUnexpose
	EventServiceDiscovered = "service:discovered" // ServiceDiscovered: discovery found a service
	EventNodeJoined        = "node:joined"        // NodeEvent: a node joined the cluster
	EventNodeLeft          = "node:left"          // NodeEvent: a node left the cluster
)

// aliases maps the second name of a lifecycle event to its wire name.
var aliases = map[string]string{
	EventPeerConnected:    EventPeerConnect,
	EventPeerDisconnected: EventPeerDisconnect,
	EventServiceExposed:   EventServiceExpose,
	EventServiceUnexposed: EventServiceUnexpose,
}

// aliasOf maps a wire name to its second name.
var aliasOf = map[string]string{
	EventPeerConnect:     EventPeerConnected,
	EventPeerDisconnect:  EventPeerDisconnected,
	EventServiceExpose:   EventServiceExposed,
	EventServiceUnexpose: EventServiceUnexposed,
}

// canonical returns the wire name of an event name.
func canonical(name string) string {
	if c, ok := aliases[name]; ok {
		return c
	}
	return name
}

// Bus topics of events. Every event of a node travels on its bus: the
// generic form on TopicEvents, lifecycle events also in their typed form
// on the topic of their type, and events received from peers on
// TopicRemoteEvents.
const (
	// TopicEvents carries an Event for every event of this node: those
	// emitted with Node.Emit and the lifecycle events (whose Args[0] is
	// the typed event).
	TopicEvents = "netron.events"
	// TopicRemoteEvents carries the Events that peers sent to this node's
	// subscriptions (Peer.On), with Event.Peer set.
	TopicRemoteEvents = "netron.events.remote"
	// TopicPeerEvents carries a PeerEvent per connection opened or closed.
	TopicPeerEvents = "netron.events.peer"
	// TopicServiceEvents carries a ServiceEvent per service exposed or
	// unexposed by this node.
	TopicServiceEvents = "netron.events.service"
	// TopicNodeEvents carries a NodeEvent per node that joined or left
	// the cluster, as discovery reports them.
	TopicNodeEvents = "netron.events.node"
	// TopicServiceDiscovered carries a ServiceDiscovered per service that
	// discovery found on another node.
	TopicServiceDiscovered = "netron.events.discovered"
)

// Event is an event in its generic form: a name and its arguments, as
// Node.Emit and Netron's emit task carry them.
//
// For an event of this node, Source is this node's id and Peer is nil; a
// lifecycle event has one argument, the typed event (PeerEvent,
// ServiceEvent, NodeEvent or ServiceDiscovered). For an event received
// from a peer, Source is the peer's id, Peer the peer, and the arguments
// are decoded generically (numbers as int64 or float64, maps as
// map[string]any, Netron's extension types as the wire types): use Decode
// for a typed view.
//
// Name is the name the subscription asked for (so a handler subscribed to
// "peer:connected" sees "peer:connected"), and for a pattern subscription
// the event's wire name ("peer:connect").
type Event struct {
	Name   string
	Args   []any
	Source string
	Peer   *Peer `json:"-"`

	enc    *encodedArgs     // the msgpack form of Args, made once for all peers
	charge *eventCharge     // the inbound memory Args hold (events from peers)
	series *obs.EventSeries // the metrics of the peer's subscription it is forwarded for
}

// Decode stores argument i of the event (e.Args[i]; error messages count
// arguments from 1, like every message of the project) in v, a non-nil
// pointer: the argument itself when it is assignable to *v, else the argument converted
// through its msgpack form (so a remote {"peerId": "a"} decodes into a
// PeerEvent, and a float64 holding an integer into an int).
func (e Event) Decode(i int, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: Decode needs a non-nil pointer, got %T", ErrInvalidEvent, v)
	}
	if i < 0 || i >= len(e.Args) {
		return fmt.Errorf("%w: %s has no argument %d (it has %d)", ErrInvalidEvent, e.Name, i+1, len(e.Args))
	}
	a := e.Args[i]
	dst := rv.Elem()
	if a == nil {
		dst.SetZero()
		return nil
	}
	if av := reflect.ValueOf(a); av.Type().AssignableTo(dst.Type()) {
		dst.Set(av)
		return nil
	}
	b, err := wire.Marshal(a)
	if err != nil {
		return fmt.Errorf("netron: event %s argument %d: %w", e.Name, i+1, err)
	}
	if err := wire.UnmarshalArg(b, dst); err != nil {
		return fmt.Errorf("netron: event %s argument %d: %w", e.Name, i+1, err)
	}
	return nil
}

// PeerEvent reports a connection to a peer that opened (peer:connect) or
// closed (peer:disconnect). For every connection, its peer:connect comes
// before its peer:disconnect. On the wire it is Netron's {peerId}.
type PeerEvent struct {
	PeerID string `msgpack:"peerId" json:"peerId"`
	// Connected is true for peer:connect, false for peer:disconnect.
	Connected bool `msgpack:"-" json:"connected"`
	// Err is why the connection closed (it matches ErrPeerDisconnected).
	Err error `msgpack:"-" json:"-"`
	// Peer is the peer; after a disconnect it can no longer be used.
	Peer *Peer `msgpack:"-" json:"-"`
}

// ServiceEvent reports a service this node exposed (service:expose) or
// unexposed (service:unexpose). On the wire it is Netron's {name, version,
// qualifiedName, peerId, definition} and {name, version, qualifiedName,
// peerId, defId}.
type ServiceEvent struct {
	Name          string `msgpack:"name" json:"name"`
	Version       string `msgpack:"version" json:"version"`
	QualifiedName string `msgpack:"qualifiedName" json:"qualifiedName"`
	PeerID        string `msgpack:"peerId" json:"peerId"`
	// Definition describes the service; set for service:expose.
	Definition *rpc.ServiceDescription `msgpack:"definition,omitempty" json:"definition,omitempty"`
	// DefID is set for service:unexpose.
	DefID string `msgpack:"defId,omitempty" json:"defId,omitempty"`
	// Exposed is true for service:expose, false for service:unexpose.
	Exposed bool `msgpack:"-" json:"exposed"`

	def *wire.Definition // what peers get as Definition (ext 109)
}

// serviceEventWire is a ServiceEvent as it travels to peers: Netron's
// payload, whose definition is a service definition (ext 109).
type serviceEventWire struct {
	Name          string           `msgpack:"name"`
	Version       string           `msgpack:"version"`
	QualifiedName string           `msgpack:"qualifiedName"`
	PeerID        string           `msgpack:"peerId"`
	Definition    *wire.Definition `msgpack:"definition,omitempty"`
	DefID         string           `msgpack:"defId,omitempty"`
}

// NodeEvent reports a node that joined (node:joined) or left (node:left)
// the cluster, as discovery sees it. Every join and leave is reported, in
// order, however short-lived the node, also across an outage of this
// node's Redis connection, unless discovery has to resynchronise: when
// this node falls more than discovery.WatchBuffer changes behind, or when
// its Redis reader finds changes it can no longer read (the stream was
// trimmed past it, or Redis lost them). Then the joins and leaves in
// between are replaced by the difference with the current state, and the
// number of changes not reported one by one is logged at Warn
// (discovery.Event.Missed). Address is empty for a client-only node
// (discovery.NodeInfo.ClientOnly), which nothing can dial.
type NodeEvent struct {
	NodeID   string   `msgpack:"nodeId" json:"nodeId"`
	Address  string   `msgpack:"address,omitempty" json:"address,omitempty"`
	Services []string `msgpack:"services,omitempty" json:"services,omitempty"`
	Joined   bool     `msgpack:"joined" json:"joined"`
}

// ServiceDiscovered reports a service that discovery found on another
// node (service:discovered).
type ServiceDiscovered struct {
	NodeID        string `msgpack:"nodeId" json:"nodeId"`
	Address       string `msgpack:"address,omitempty" json:"address,omitempty"`
	Name          string `msgpack:"name" json:"name"`
	Version       string `msgpack:"version" json:"version"`
	QualifiedName string `msgpack:"qualifiedName" json:"qualifiedName"`
}

// Event errors.
var (
	// ErrInvalidEvent is returned for an empty event name, a pattern where
	// a name is needed, and bad arguments to Event.Decode.
	ErrInvalidEvent = errors.New("netron: invalid event")
	// ErrUnknownEventType is returned by Subscribe for a type that is not
	// an event type of this package.
	ErrUnknownEventType = errors.New("netron: not an event type")
	// ErrPatternUnsupported is returned by Peer.On for a pattern
	// ("name*") on a peer that is not a Go node: Netron has no patterns.
	ErrPatternUnsupported = errors.New("netron: the peer does not support event patterns")
)

const (
	// DefaultEventBuffer is the buffer, in events, of every local event
	// subscription (On, Events, Subscribe, Peer.On) unless
	// bus.WithBuffer says otherwise.
	DefaultEventBuffer = 1024
	// DefaultEventPolicy is what a full local event subscription does
	// unless bus.WithPolicy says otherwise: it drops its oldest event. An
	// emitter never waits for a slow handler.
	DefaultEventPolicy = bus.DropOldest
	// DefaultEventQueue is the queue, in events, of each peer subscribed
	// to this node's events (Config.EventQueueSize). When it is full the
	// oldest queued event is dropped.
	DefaultEventQueue = 256
	// DefaultMaxSubscriptionsPerPeer bounds the event names (and patterns)
	// one peer may subscribe to (Config.MaxSubscriptionsPerPeer), as in
	// Titan; the next subscribe fails with a TitanError 429.
	DefaultMaxSubscriptionsPerPeer = 1000
	// maxEventName bounds the length of a name a peer subscribes to.
	maxEventName = 1024
	// emitWindow bounds the emit requests in flight to one plain Netron
	// subscriber.
	emitWindow = 64
)

// checkName validates an event name; pattern allows a trailing "*".
func checkName(name string, pattern bool) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidEvent)
	case len(name) > maxEventName:
		return fmt.Errorf("%w: name longer than %d bytes", ErrInvalidEvent, maxEventName)
	case !pattern && strings.HasSuffix(name, "*"):
		return fmt.Errorf("%w: %q is a pattern, not a name", ErrInvalidEvent, name)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Routing: which subscriptions an event goes to.

// target is where a route delivers: a bus topic with one subscription (a
// handler's queue, a channel, or a peer's forwarding queue), or, for the
// node's own bookkeeping, a function run inline.
type target struct {
	topic  *bus.Topic[Event]
	inline func(context.Context, Event)
	remote bool // the target forwards to a peer: Args must be encoded

	// sub is the queue's subscription (nil for inline and forwarding
	// targets); ledger, the charged events (from peers) in it (see
	// eventCharge); pub serialises their publishes.
	sub    *bus.Subscription[Event]
	pub    sync.Mutex
	ledger ledger
	warned atomic.Int64 // unix nanoseconds of the last slow-handler warning

	// series counts the events of a queue (nil: no Config.Metrics; for a
	// forwarding target, the route's series, carried by each event);
	// counted, the drops of sub it has counted.
	series  *obs.EventSeries
	counted atomic.Uint64
}

// eventCharge is the inbound memory (transport.WithInboundMemory) the
// arguments of an event from a peer hold, from their decoding until every
// queue they were put in has handed them to its handler and the handler
// has returned, or dropped them: one reference for the receiving reader,
// one per queue.
type eventCharge struct {
	acct wire.Account
	refs atomic.Int32
	// args holds the arguments of an event of up to two (Event.Args
	// points into it): one allocation for both.
	args [2]any
}

// done gives back a reference; the last gives the memory back.
func (c *eventCharge) done() {
	if c != nil && c.refs.Add(-1) == 0 {
		c.acct.Release()
	}
}

// ledger is the charged events in a handler's queue. Whoever takes an
// entry out gives its reference back: the handler, for the event it has
// run; deliver, for one it dropped (a full queue with a drop policy: the
// bus never drops a charged event itself) or whose publish failed; the
// handler's end, for what was published after it.
type ledger struct {
	mu     sync.Mutex
	q      []*eventCharge
	closed bool
}

// add records c; false once the queue's handler has ended.
func (l *ledger) add(c *eventCharge) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.q = append(l.q, c)
	return true
}

// remove takes c out, if it is in, and reports whether it was: then the
// caller gives its reference back.
func (l *ledger) remove(c *eventCharge) bool {
	if c == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.q, c) // the oldest, as a rule: the first
	if i < 0 {
		return false
	}
	l.q = slices.Delete(l.q, i, i+1)
	if len(l.q) == 0 && cap(l.q) > 64 {
		l.q = nil
	}
	return true
}

// close gives back what is left: the handler has ended.
func (l *ledger) close() {
	l.mu.Lock()
	gone := l.q
	l.q, l.closed = nil, true
	l.mu.Unlock()
	for _, g := range gone {
		g.done()
	}
}

// route is one subscription of a target: an exact name or a prefix.
type route struct {
	key     string // canonical name, or the prefix of a pattern
	deliver string // for an exact route, the name the subscriber used
	prefix  bool
	t       *target
	dead    atomic.Bool      // removed; skipped until its list is compacted
	series  *obs.EventSeries // of a peer's subscription (forwarding routes)
}

func newRoute(name string, t *target) *route {
	if p, ok := strings.CutSuffix(name, "*"); ok {
		return &route{key: p, prefix: true, t: t}
	}
	return &route{key: canonical(name), deliver: name, t: t}
}

func (r *route) matches(name, alias string) bool {
	if !r.prefix {
		return r.key == name
	}
	return strings.HasPrefix(name, r.key) || (alias != "" && strings.HasPrefix(alias, r.key))
}

// router holds routes. Dispatch reads them without a lock: each name's
// list, and the list of patterns, is a slice that writers replace or
// extend past the length readers loaded, never change under them.
// Writers hold mu. A change costs O(1) amortised whatever the number of
// names and routes (TestRouterRemoveIsLinear, TestRouterManyNamesIsLinear).
type router struct {
	mu     sync.Mutex
	exact  sync.Map // canonical name → *routeList
	prefix routeList
}

// routeList is the routes of one name, or the patterns.
type routeList struct {
	rs   atomic.Pointer[[]*route]
	dead int // removed routes still in rs; under router.mu
}

func (l *routeList) load() []*route {
	if p := l.rs.Load(); p != nil {
		return *p
	}
	return nil
}

// add appends in place when the slice has room: readers hold shorter
// slices and never see the new element, and no writer appends to an
// older slice (each starts from the one stored). Copying every list on
// every add made N subscriptions to one name cost O(N²) (10,000 peers
// subscribing to the node's service events: ~100 KiB of garbage each).
func (r *router) add(rs ...*route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range rs {
		l := &r.prefix
		if !rt.prefix {
			if v, ok := r.exact.Load(rt.key); ok {
				l = v.(*routeList)
			} else {
				l = new(routeList)
				r.exact.Store(rt.key, l) // writers hold mu: nobody stored it meanwhile
			}
		}
		next := append(l.load(), rt)
		l.rs.Store(&next)
	}
}

// remove marks routes dead, which dispatch skips from then on, and copies
// a list without its dead routes only once they are half of it. Copying
// the list on every removal made N subscribers of one name leaving (a
// disconnect storm) cost O(N²): 66 MB of garbage for 4,000, 32 KB now.
func (r *router) remove(rs ...*route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range rs {
		if rt.dead.Swap(true) {
			continue // removed before
		}
		l := &r.prefix
		if !rt.prefix {
			v, ok := r.exact.Load(rt.key)
			if !ok {
				continue // never added
			}
			l = v.(*routeList)
		}
		l.dead++
		cur := l.load()
		if 2*l.dead < len(cur) {
			continue
		}
		if l.dead >= len(cur) && !rt.prefix {
			r.exact.Delete(rt.key)
			continue
		}
		next := live(cur, l.dead)
		l.rs.Store(&next)
		l.dead = 0
	}
}

// live returns a new list of the routes of l that are not dead; dead is
// how many are.
func live(l []*route, dead int) []*route {
	out := make([]*route, 0, max(len(l)-dead, 0))
	for _, r := range l {
		if !r.dead.Load() {
			out = append(out, r)
		}
	}
	return out
}

// routesOf returns the routes of the (canonical) name.
func (r *router) routesOf(name string) []*route {
	if v, ok := r.exact.Load(name); ok {
		return v.(*routeList).load()
	}
	return nil
}

// any reports whether some route matches the (canonical) name.
func (r *router) any(name string) bool {
	for _, rt := range r.routesOf(name) {
		if !rt.dead.Load() {
			return true
		}
	}
	alias := aliasOf[name]
	for _, rt := range r.prefix.load() {
		if !rt.dead.Load() && rt.matches(name, alias) {
			return true
		}
	}
	return false
}

// dispatch hands ev (whose Name is canonical) to every target with a
// matching route, once per target, in the caller's goroutine. Callers
// serialise dispatches (they run under a bus topic's publish lock), so
// every target sees the events of a router in one order.
func (r *router) dispatch(ctx context.Context, ev Event, log *slog.Logger) {
	var buf [8]*target
	done := buf[:0]
	send := func(rt *route) {
		if rt.dead.Load() {
			return
		}
		for _, d := range done {
			if d == rt.t {
				return
			}
		}
		done = append(done, rt.t)
		e := ev
		if !rt.prefix {
			e.Name = rt.deliver
		}
		if rt.t.remote {
			e.series = rt.series
		}
		deliver(ctx, rt.t, e, log)
	}
	for _, rt := range r.routesOf(ev.Name) {
		send(rt)
	}
	if prefix := r.prefix.load(); len(prefix) > 0 {
		alias := aliasOf[ev.Name]
		for _, rt := range prefix {
			if rt.matches(ev.Name, alias) {
				send(rt)
			}
		}
	}
}

func deliver(ctx context.Context, t *target, ev Event, log *slog.Logger) {
	if t.inline != nil {
		t.inline(ctx, ev)
		return
	}
	if t.remote {
		if ev.enc == nil {
			ev.enc = &encodedArgs{}
		}
		ev.enc.encode(ev.Args)
	}
	if ev.charge != nil {
		ev.charge.refs.Add(1) // given back through the target's ledger
	}
	if conn, ok := ctx.Value(readerKey{}).(*transport.Conn); ok {
		// A remote event, delivered on its connection's reader inside the
		// node-wide inbound topic's publish: a full bus.Block queue must
		// hold back this connection only. Try without waiting; when the
		// queue is full, wait on the reader once that publish has returned
		// (the connection's next packet waits too, so order is kept).
		// (A target is fed by one connection, Peer.On's: a held
		// publish keeps the target's own lock, which no other reader needs.)
		err := t.publish(noWait, ev)
		if !errors.Is(err, context.Canceled) {
			undelivered(log, t, ev, err)
			return
		}
		if conn.Hold(func() { undelivered(log, t, ev, t.publish(conn.Context(), ev)) }) {
			return
		}
		// Not on the reader (a subscriber of the remote topic passed the
		// context on): wait here, as any publisher to a Block queue does.
	}
	undelivered(log, t, ev, t.publish(ctx, ev))
}

// publish puts ev in t's queue. A charged event is in t's ledger while
// it is there, and is never dropped by the bus: when the queue is full,
// its drop policy is applied here, where it is known what is dropped.
func (t *target) publish(ctx context.Context, ev Event) error {
	if ev.charge == nil || t.sub == nil {
		return t.topic.Publish(ctx, ev)
	}
	t.pub.Lock()
	defer t.pub.Unlock()
	if p := t.sub.Policy(); p != bus.Block {
		if ch := t.sub.C(); len(ch) >= cap(ch) {
			if p == bus.DropNewest || cap(ch) == 0 {
				return errQueueFull
			}
			select {
			case old, ok := <-ch: // DropOldest (the handler may take it first)
				if ok {
					t.series.Dropped(1)
				}
				if ok && t.ledger.remove(old.charge) {
					old.charge.done()
				}
			default:
			}
		}
	}
	if !t.ledger.add(ev.charge) {
		return bus.ErrClosed // the handler has ended
	}
	err := t.topic.Publish(ctx, ev)
	if err != nil && !t.ledger.remove(ev.charge) {
		return nil // the handler took it after all (or its end did)
	}
	return err
}

// errQueueFull: a charged event dropped because its queue was full.
var errQueueFull = errors.New("netron: event queue full, event dropped")

// undelivered logs the error of an event's delivery to t, if any, and
// gives back the reference of an event that did not get there.
func undelivered(log *slog.Logger, t *target, ev Event, err error) {
	t.count(ev, err)
	if err == nil {
		return
	}
	ev.charge.done()
	if errors.Is(err, errQueueFull) {
		// What the bus says of a slow consumer, at most once a second.
		now := time.Now().UnixNano()
		if last := t.warned.Load(); now-last >= int64(time.Second) && t.warned.CompareAndSwap(last, now) {
			log.Warn("netron: slow event handler, event dropped", "event", ev.Name, "topic", t.topic.Name(), "policy", t.sub.Policy())
		}
		return
	}
	logUndelivered(log, t, ev, err)
}

// count counts the outcome of an event's delivery to t in its metrics:
// delivered when it was put in the queue, or offered to a full one that
// dropped it (then dropped too), and the drops of the bus's policy.
func (t *target) count(ev Event, err error) {
	s := t.series
	if t.remote {
		s = ev.series
	}
	if s == nil {
		return
	}
	switch {
	case err == nil:
		s.Delivered()
	case errors.Is(err, errQueueFull):
		s.Delivered()
		s.Dropped(1)
	default:
		return
	}
	if t.sub != nil {
		// The bus's drops (bus.DropNewest, bus.DropOldest) happen inside
		// the publish: counted by the subscription, taken from there.
		d := t.sub.Dropped()
		if old := t.counted.Swap(d); d > old {
			s.Dropped(d - old)
		}
	}
}

// readerKey marks the context of a remote event's delivery: its value is
// the connection whose reader delivers it (see readerContext).
type readerKey struct{}

// readerContext returns the context remote events of conn are delivered
// with, made once per connection.
func readerContext(conn *transport.Conn) context.Context {
	if v, ok := conn.Value(readerKey{}); ok {
		return v.(context.Context)
	}
	v, _ := conn.LoadOrStoreValue(readerKey{}, context.WithValue(conn.Context(), readerKey{}, conn))
	return v.(context.Context)
}

// logUndelivered logs the error of an event's delivery to t, if any.
func logUndelivered(log *slog.Logger, t *target, ev Event, err error) {
	if err != nil && !errors.Is(err, bus.ErrClosed) {
		log.Debug("netron: event not delivered", "event", ev.Name, "topic", t.topic.Name(), "err", err)
	}
}

// noWait is a context that has ended: a publish with it to a bus.Block
// subscription that is full fails with context.Canceled instead of waiting.
var noWait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// encodedArgs is the msgpack encoding of an event's arguments (one value
// after the other, no array header), made once, by the emitter, for every
// peer the event goes to.
type encodedArgs struct {
	done bool
	n    int
	b    []byte
	err  error
	// buf is where b starts: the arguments of a small event are encoded
	// without an allocation of their own (and without growing b twice).
	buf [96]byte
}

func (e *encodedArgs) encode(args []any) {
	if e.done {
		return
	}
	e.done = true
	e.n = len(args)
	e.b = e.buf[:0]
	for i, a := range args {
		if se, ok := a.(ServiceEvent); ok {
			a = serviceEventWire{Name: se.Name, Version: se.Version, QualifiedName: se.QualifiedName,
				PeerID: se.PeerID, Definition: se.def, DefID: se.DefID}
		}
		var err error
		if e.b, err = wire.AppendMarshal(e.b, a); err != nil {
			e.err = fmt.Errorf("argument %d (%T): %w", i+1, a, err)
			e.b = nil
			return
		}
	}
}

// ---------------------------------------------------------------------------
// The node's event hub.

// eventHub is the event machinery of a node: the routers, the bridge from
// connections and the registry to lifecycle events, the tasks peers
// subscribe with, and the goroutines of handlers and forwarders.
type eventHub struct {
	n      *Node
	log    *slog.Logger
	local  router // this node's events → handlers, channels, forwarders
	events *bus.Topic[Event]
	remote *bus.Topic[Event]
	peerT  *bus.Topic[PeerEvent]
	svcT   *bus.Topic[ServiceEvent]
	nodeT  *bus.Topic[NodeEvent]
	discT  *bus.Topic[ServiceDiscovered]

	maxSubs    int
	queueSize  int
	forwarders atomic.Int64 // live forwarders (peers subscribed to something)
	fwdNames   atomic.Int64 // names and patterns subscribed by peers
	seq        atomic.Uint64

	mu       sync.Mutex
	closed   bool
	handlers map[*handler]struct{}
	senders  map[*sender]struct{}
	subs     map[ender]struct{} // the node's live Subscriptions
	wg       sync.WaitGroup
	unsubs   []func()
}

func newEventHub(n *Node) (*eventHub, error) {
	h := &eventHub{
		n:         n,
		log:       n.logger,
		events:    bus.NewTopic[Event](n.bus, TopicEvents),
		remote:    bus.NewTopic[Event](n.bus, TopicRemoteEvents),
		peerT:     bus.NewTopic[PeerEvent](n.bus, TopicPeerEvents),
		svcT:      bus.NewTopic[ServiceEvent](n.bus, TopicServiceEvents),
		nodeT:     bus.NewTopic[NodeEvent](n.bus, TopicNodeEvents),
		discT:     bus.NewTopic[ServiceDiscovered](n.bus, TopicServiceDiscovered),
		maxSubs:   n.cfg.MaxSubscriptionsPerPeer,
		queueSize: n.cfg.EventQueueSize,
		handlers:  make(map[*handler]struct{}),
		senders:   make(map[*sender]struct{}),
		subs:      make(map[ender]struct{}),
	}
	if h.maxSubs == 0 {
		h.maxSubs = DefaultMaxSubscriptionsPerPeer
	}
	if h.queueSize == 0 {
		h.queueSize = DefaultEventQueue
	}
	subs := []func() (func(), error){
		func() (func(), error) {
			return h.events.SubscribeFunc(func(ctx context.Context, ev Event) { h.local.dispatch(ctx, ev, h.log) })
		},
		func() (func(), error) {
			return h.remote.SubscribeFunc(func(ctx context.Context, ev Event) {
				if ev.Peer != nil {
					ev.Peer.ev.routes.dispatch(ctx, ev, h.log)
				}
			})
		},
		func() (func(), error) {
			return bus.NewTopic[transport.ConnEvent](n.bus, transport.TopicConnected).SubscribeFunc(h.onConnected)
		},
		func() (func(), error) {
			return bus.NewTopic[transport.ConnEvent](n.bus, transport.TopicDisconnected).SubscribeFunc(h.onDisconnected)
		},
		func() (func(), error) {
			return bus.NewTopic[transport.Inbound](n.bus, transport.TopicRequests).SubscribeFunc(h.onRequest)
		},
		func() (func(), error) {
			return bus.NewTopic[transport.Inbound](n.bus, transport.TopicStreams).SubscribeFunc(h.onExt)
		},
	}
	for _, s := range subs {
		u, err := s()
		if err != nil {
			for _, u := range h.unsubs {
				u()
			}
			return nil, err
		}
		h.unsubs = append(h.unsubs, u)
	}
	n.reg.OnChange(h.onServiceChange)
	n.server.HandleTask("subscribe", h.taskSubscribe)
	n.server.HandleTask("unsubscribe", h.taskUnsubscribe)
	n.server.HandleTask("emit", taskEmit)
	return h, nil
}

// goTracked runs f in a goroutine that close waits for; false once closed.
func (h *eventHub) goTracked(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// ender is a Subscription as the node ends it.
type ender interface{ endBy(error) }

// track records a Subscription of this node's events, to end it when the
// node stops, and reports false when the node has stopped.
func track[T any](h *eventHub, s *Subscription[T]) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.subs[s] = struct{}{}
	s.untrack = func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}
	return true
}

// close stops the hub: no new subscriptions, every handler and forwarder
// closed; it waits for their goroutines (handlers first deliver what they
// have buffered) until ctx ends.
func (h *eventHub) close(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for _, u := range h.unsubs {
			u()
		}
	}
	handlers := make([]*handler, 0, len(h.handlers))
	for x := range h.handlers {
		handlers = append(handlers, x)
	}
	senders := make([]*sender, 0, len(h.senders))
	for s := range h.senders {
		senders = append(senders, s)
	}
	subs := make([]ender, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.endBy(ErrStopped)
	}
	for _, x := range handlers {
		x.sub.Close()
	}
	for _, s := range senders {
		s.close()
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("event handlers still running: %w", ctx.Err())
	}
}

// publish publishes an event of this node on TopicEvents and reports an
// argument that cannot be encoded for a subscribed peer.
func (h *eventHub) publish(ctx context.Context, ev Event) error {
	if h.forwarders.Load() > 0 {
		ev.enc = &encodedArgs{}
	}
	if err := h.events.Publish(ctx, ev); err != nil {
		if errors.Is(err, bus.ErrClosed) {
			return ErrStopped
		}
		return fmt.Errorf("netron: emit %s: %w", ev.Name, err)
	}
	if ev.enc != nil && ev.enc.err != nil {
		return fmt.Errorf("netron: emit %s: %w", ev.Name, ev.enc.err)
	}
	return nil
}

// subOptions puts the event defaults before the caller's options.
func subOptions(name string, opts []bus.SubOption) []bus.SubOption {
	return append([]bus.SubOption{bus.WithBuffer(DefaultEventBuffer), bus.WithPolicy(DefaultEventPolicy), bus.WithName(name)}, opts...)
}

// newTarget makes a queue of its own for one subscription, named name in
// the bus, to pattern (its label in the metrics).
func (h *eventHub) newTarget(name, pattern string, opts []bus.SubOption) (*target, *bus.Subscription[Event], error) {
	t := &target{topic: bus.NewTopic[Event](h.n.bus, obs.EventSubTopic+strconv.FormatUint(h.seq.Add(1), 10))}
	t.series = h.n.cfg.Metrics.inner().Events(pattern, false)
	sub, err := t.topic.Subscribe(subOptions(name, opts)...)
	if err != nil {
		return nil, nil, err
	}
	t.sub = sub
	return t, sub, nil
}

// handler runs a function for every event of its queue, in its own
// goroutine, in order.
type handler struct {
	h       *eventHub
	t       *target
	sub     *bus.Subscription[Event]
	fn      func(Event)
	stopped atomic.Bool
	once    sync.Once
}

func (h *eventHub) newHandler(name, pattern string, fn func(Event), opts []bus.SubOption) (*handler, error) {
	t, sub, err := h.newTarget(name, pattern, opts)
	if err != nil {
		return nil, err
	}
	x := &handler{h: h, t: t, sub: sub, fn: fn}
	h.mu.Lock()
	h.handlers[x] = struct{}{}
	h.mu.Unlock()
	if !h.goTracked(x.run) {
		x.close()
		return nil, ErrStopped
	}
	return x, nil
}

func (x *handler) run() {
	for ev := range x.sub.C() {
		taken := x.t.ledger.remove(ev.charge)
		if !x.stopped.Load() {
			x.call(ev)
		}
		if taken {
			ev.charge.done()
		}
	}
	x.t.ledger.close()
}

func (x *handler) call(ev Event) {
	defer func() {
		if r := recover(); r != nil {
			x.h.log.Error("netron: event handler panicked", "event", ev.Name, "source", ev.Source,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	x.fn(ev)
}

// close stops delivery: once it returns, fn is not called again (a call in
// progress finishes). The goroutine ends after skipping what is buffered.
func (x *handler) close() {
	x.stopped.Store(true)
	x.finish()
}

// finish ends the subscription: fn still gets what is buffered, then the
// goroutine ends.
func (x *handler) finish() {
	x.once.Do(func() {
		x.sub.Close()
		x.h.mu.Lock()
		delete(x.h.handlers, x)
		x.h.mu.Unlock()
	})
}

// ---------------------------------------------------------------------------
// Local subscriptions.

// On calls fn with every event of this node called name, until the
// subscription it returns is closed. name may be a lifecycle event under
// either of its names (EventPeerConnected or EventPeerConnect, …), any user
// event name, or a pattern: "prefix*" for every event whose name starts
// with prefix, "*" for all of them.
//
// fn runs in a goroutine of its own, one event at a time, in the order the
// events were published: events from one source (one goroutine calling
// Emit, one connection, the registry) arrive in the order that source
// emitted them. A panic in fn is recovered and logged; the next event is
// delivered as usual.
//
// The events wait for fn in a queue of DefaultEventBuffer (1024) events.
// When fn falls behind and the queue is full, the oldest queued event is
// dropped (DefaultEventPolicy, bus.DropOldest) and a warning is logged at
// most once a second: an emitter never waits for a slow handler and memory
// stays bounded. bus.WithBuffer and bus.WithPolicy change that; with
// bus.Block the emitter waits for room (bounded by its context), so fn
// must then not Emit itself.
//
// Once Close returns, fn is not called again (a call in progress
// finishes). On fails with ErrInvalidEvent when name is empty or fn is nil,
// and with ErrStopped after Stop; when the node stops, the subscription
// ends with ErrStopped after fn got what was queued.
func (n *Node) On(name string, fn func(Event), opts ...bus.SubOption) (*Subscription[Event], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidEvent)
	}
	if err := checkName(name, true); err != nil {
		return nil, err
	}
	x, err := n.ev.newHandler("On("+name+")", name, fn, opts)
	if errors.Is(err, ErrStopped) || errors.Is(err, bus.ErrClosed) {
		return nil, ErrStopped
	}
	if err != nil {
		return nil, fmt.Errorf("netron: On(%q): %w", name, err)
	}
	rt := newRoute(name, x.t)
	n.ev.local.add(rt)
	s := newSubscription(x.sub, true)
	s.stop = func() {
		n.ev.local.remove(rt)
		x.close()
	}
	s.finish = func() {
		n.ev.local.remove(rt)
		x.finish()
	}
	if !track(n.ev, s) {
		s.stop()
		return nil, ErrStopped
	}
	return s, nil
}

// Events returns a subscription to the events of this node that match name
// (a name or a pattern, as for On), received from its channel C. The
// channel buffers DefaultEventBuffer (1024) events and, when full, drops
// the oldest (DefaultEventPolicy); bus.WithBuffer and bus.WithPolicy change
// that. Events from one source arrive in the order they were emitted.
// Close closes the channel; events already buffered can still be received.
func (n *Node) Events(name string, opts ...bus.SubOption) (*Subscription[Event], error) {
	if err := checkName(name, true); err != nil {
		return nil, err
	}
	if n.isStopped() {
		return nil, ErrStopped
	}
	t, sub, err := n.ev.newTarget("Events("+name+")", name, opts)
	if err != nil {
		return nil, fmt.Errorf("netron: events %q: %w", name, err)
	}
	rt := newRoute(name, t)
	n.ev.local.add(rt)
	s := newSubscription(sub, false)
	s.stop = func() {
		n.ev.local.remove(rt)
		_ = sub.Close()
	}
	s.finish = s.stop
	if !track(n.ev, s) {
		s.stop()
		return nil, ErrStopped
	}
	return s, nil
}

// Subscribe returns a subscription to the typed events E of node n,
// received from its channel C: PeerEvent (connections opened and closed),
// ServiceEvent (services exposed and unexposed), NodeEvent (nodes joining
// and leaving), NodeChange (every change discovery reports: joins,
// updates, leaves), ServiceDiscovered, or Event (every event of the node,
// in its generic form). The buffer is DefaultEventBuffer (1024) events and a
// full buffer drops its oldest event (DefaultEventPolicy) unless
// bus.WithBuffer and bus.WithPolicy say otherwise.
func Subscribe[E any](n *Node, opts ...bus.SubOption) (*Subscription[E], error) {
	var topic string
	switch any(*new(E)).(type) {
	case PeerEvent:
		topic = TopicPeerEvents
	case ServiceEvent:
		topic = TopicServiceEvents
	case NodeEvent:
		topic = TopicNodeEvents
	case ServiceDiscovered:
		topic = TopicServiceDiscovered
	case NodeChange:
		topic = TopicPresence
	case Event:
		topic = TopicEvents
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnknownEventType, *new(E))
	}
	if n.isStopped() {
		return nil, ErrStopped
	}
	sub, err := bus.Subscribe[E](n.bus, topic, subOptions("Subscribe["+topic+"]", opts)...)
	if err != nil {
		if errors.Is(err, bus.ErrClosed) {
			return nil, ErrStopped
		}
		return nil, err
	}
	s := newSubscription(sub, false)
	s.stop = func() { _ = sub.Close() }
	s.finish = s.stop
	if !track(n.ev, s) {
		s.stop()
		return nil, ErrStopped
	}
	return s, nil
}

// Emit publishes the event name with args to this node's subscribers (On,
// Events, Subscribe[Event]) and to every peer subscribed to it, which
// receives Netron's TASK ["emit", name, ...args] or, from a Go peer, the
// one-way event packet. Events emitted by one goroutine reach every
// subscriber in that order.
//
// Emit does not wait for handlers or peers: each has a bounded queue whose
// policy drops the oldest event when full (see On and
// Config.EventQueueSize), except a local subscription made with bus.Block,
// for which Emit waits until ctx ends. The arguments must be encodable as
// msgpack when a peer is subscribed; they are encoded once, by Emit, and
// an error is returned (local subscribers still got the event). Handlers
// receive args as they are: do not modify them after Emit.
func (n *Node) Emit(ctx context.Context, name string, args ...any) error {
	if err := checkName(name, false); err != nil {
		return err
	}
	// After Stop the bus is closed: publish returns ErrStopped.
	name = canonical(name)
	err := n.ev.publish(ctx, Event{Name: name, Args: args, Source: n.cfg.ID})
	if err == nil {
		n.cfg.Metrics.inner().EventEmitted(name)
	}
	return err
}

func (n *Node) isStopped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopped
}

// ---------------------------------------------------------------------------
// Lifecycle events.

type lifeKey struct{}

// life orders the connect and disconnect events of one connection: the hub
// announces them from different goroutines.
type life struct {
	mu                      sync.Mutex
	connected, disconnected bool
}

func lifeOf(c *transport.Conn) *life {
	v, _ := c.LoadOrStoreValue(lifeKey{}, &life{})
	return v.(*life)
}

func (h *eventHub) onConnected(_ context.Context, ce transport.ConnEvent) {
	l := lifeOf(ce.Conn)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connected = true
	p := h.n.peerOf(ce.Conn)
	h.publishPeer(PeerEvent{PeerID: ce.PeerID, Connected: true, Peer: p})
	if l.disconnected {
		h.publishPeer(PeerEvent{PeerID: ce.PeerID, Err: ce.Conn.Err(), Peer: p})
	}
}

func (h *eventHub) onDisconnected(_ context.Context, ce transport.ConnEvent) {
	// Forwarders and subscriptions on this connection go first: nothing
	// may be sent to it any more.
	if v, ok := ce.Conn.Value(fwdKey{}); ok {
		v.(*connFwd).closeConn()
	}
	if v, ok := ce.Conn.Value(peerKey{}); ok {
		if p := v.(*Peer); !p.willReconnect() {
			p.ev.closeAll(ce.Err)
		}
	}
	l := lifeOf(ce.Conn)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.disconnected = true
	if l.connected {
		h.publishPeer(PeerEvent{PeerID: ce.PeerID, Err: ce.Err, Peer: h.n.peerOf(ce.Conn)})
	}
}

func (h *eventHub) publishPeer(pe PeerEvent) {
	ctx := h.n.ctx
	name := EventPeerDisconnect
	if pe.Connected {
		name = EventPeerConnect
	}
	_ = h.peerT.Publish(ctx, pe)
	_ = h.publish(ctx, Event{Name: name, Args: []any{pe}, Source: h.n.cfg.ID})
}

func (h *eventHub) onServiceChange(c rpccore.ServiceChange) {
	d := c.Definition
	se := ServiceEvent{
		Name:          d.Meta.Name,
		Version:       d.Meta.Version,
		QualifiedName: d.Meta.Name + "@" + d.Meta.Version,
		PeerID:        h.n.cfg.ID,
		Exposed:       c.Exposed,
	}
	name := EventServiceUnexpose
	if c.Exposed {
		desc := rpccore.Describe(d)
		se.Definition, se.def = &desc, &d
		name = EventServiceExpose
	} else {
		se.DefID = d.ID
	}
	ctx := h.n.ctx
	_ = h.svcT.Publish(ctx, se)
	_ = h.publish(ctx, Event{Name: name, Args: []any{se}, Source: h.n.cfg.ID})
}

// publishNodeEvent announces a node joining or leaving (fed by discovery).
func (h *eventHub) publishNodeEvent(ctx context.Context, ne NodeEvent) error {
	name := EventNodeLeft
	if ne.Joined {
		name = EventNodeJoined
	}
	if err := h.nodeT.Publish(ctx, ne); err != nil {
		return err
	}
	return h.publish(ctx, Event{Name: name, Args: []any{ne}, Source: h.n.cfg.ID})
}

// publishServiceDiscovered announces a service found by discovery.
func (h *eventHub) publishServiceDiscovered(ctx context.Context, sd ServiceDiscovered) error {
	if err := h.discT.Publish(ctx, sd); err != nil {
		return err
	}
	return h.publish(ctx, Event{Name: EventServiceDiscovered, Args: []any{sd}, Source: h.n.cfg.ID})
}
