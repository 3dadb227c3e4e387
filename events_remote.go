package netron

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// The emitting side. A peer that runs the task subscribe(name) gets a
// forwarder: routes in this node's router that feed one bounded queue per
// peer, drained by one sender goroutine that sends each event to the peer,
// as a TASK ["emit", name, ...args] request (Netron) or as a one-way EXT
// event packet (Go peers that agreed on rpccore.ExtensionEvents).

type fwdKey struct{}

// connFwd is the forwarding state of one connection.
type connFwd struct {
	h    *eventHub
	conn *transport.Conn

	mu     sync.Mutex
	closed bool              // the connection is gone
	routes map[string]*route // by the name the peer subscribed with
	s      *sender           // nil while the peer subscribes to nothing
}

func (h *eventHub) fwdOf(conn *transport.Conn) *connFwd {
	if v, ok := conn.Value(fwdKey{}); ok {
		return v.(*connFwd)
	}
	v, _ := conn.LoadOrStoreValue(fwdKey{}, &connFwd{h: h, conn: conn, routes: make(map[string]*route)})
	f := v.(*connFwd)
	if conn.Err() != nil {
		// The connection closed and its disconnect may already have been
		// handled: close what this call created.
		f.closeConn()
	}
	return f
}

func (f *connFwd) add(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrPeerDisconnected
	}
	if _, ok := f.routes[name]; ok {
		return nil
	}
	if len(f.routes) >= f.h.maxSubs {
		f.h.n.cfg.Metrics.inner().Refused(429, "subscriptions")
		return rpc.NewError(429, fmt.Sprintf("Maximum subscriptions per peer (%d) exceeded", f.h.maxSubs),
			map[string]any{"limit": f.h.maxSubs, "event": name})
	}
	if f.s == nil {
		s, err := f.h.newSender(f.conn)
		if err != nil {
			return err
		}
		f.s = s
	}
	rt := newRoute(name, f.s.t)
	rt.series = f.h.n.cfg.Metrics.inner().Events(name, true)
	f.routes[name] = rt
	f.h.local.add(rt)
	f.h.fwdNames.Add(1)
	return nil
}

func (f *connFwd) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt, ok := f.routes[name]
	if !ok {
		return
	}
	delete(f.routes, name)
	f.h.local.remove(rt)
	f.h.fwdNames.Add(-1)
	if len(f.routes) == 0 && f.s != nil {
		f.s.close()
		f.s = nil
	}
}

// closeConn removes every route of the connection and stops its sender.
func (f *connFwd) closeConn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	rs := make([]*route, 0, len(f.routes))
	for _, rt := range f.routes {
		rs = append(rs, rt)
	}
	f.routes = map[string]*route{}
	if len(rs) > 0 {
		f.h.local.remove(rs...)
		f.h.fwdNames.Add(-int64(len(rs)))
	}
	if f.s != nil {
		f.s.close()
		f.s = nil
	}
}

// sender drains one peer's event queue onto its connection. The queue
// lives on the sender's bus topic's synchronous subscriber: it grows with
// what is pending (at most queueSize events, then the oldest is dropped)
// and a goroutine runs only while events are pending, so an idle
// subscribed peer costs neither a parked goroutine nor a fixed buffer.
type sender struct {
	h     *eventHub
	conn  *transport.Conn
	t     *target
	unsub func()

	mu       sync.Mutex
	queue    []Event
	head     int
	running  bool
	stopped  atomic.Bool
	dropped  atomic.Uint64
	lastWarn atomic.Int64
	once     sync.Once
	done     chan struct{} // closed by close

	// Emit requests to a plain Netron peer awaiting their answers, at most
	// emitWindow; one reaper per sender collects them, across drainer runs.
	inflight chan *rpccore.Pending
	reaping  bool
}

func (h *eventHub) newSender(conn *transport.Conn) (*sender, error) {
	t := &target{topic: bus.NewTopic[Event](h.n.bus, obs.EventSubTopic+strconv.FormatUint(h.seq.Add(1), 10)), remote: true}
	s := &sender{h: h, conn: conn, t: t, done: make(chan struct{}), inflight: make(chan *rpccore.Pending, emitWindow)}
	unsub, err := t.topic.SubscribeFunc(s.enqueue)
	if err != nil {
		return nil, err
	}
	s.unsub = unsub
	h.mu.Lock()
	h.senders[s] = struct{}{}
	h.forwarders.Add(1)
	h.mu.Unlock()
	return s, nil
}

func (s *sender) close() {
	s.once.Do(func() {
		s.stopped.Store(true)
		close(s.done)
		s.unsub()
		s.mu.Lock()
		s.queue, s.head = nil, 0
		s.mu.Unlock()
		s.h.mu.Lock()
		_, live := s.h.senders[s]
		delete(s.h.senders, s)
		s.h.mu.Unlock()
		if live {
			s.h.forwarders.Add(-1)
		}
	})
}

// enqueue runs in the emitter's goroutine: it never blocks.
func (s *sender) enqueue(_ context.Context, ev Event) {
	s.mu.Lock()
	if s.stopped.Load() {
		s.mu.Unlock()
		return
	}
	if len(s.queue)-s.head >= s.h.queueSize {
		s.queue[s.head].series.Dropped(1)
		s.queue[s.head] = Event{}
		s.head++
		s.dropped.Add(1)
		if now := time.Now().UnixNano(); now-s.lastWarn.Load() > int64(time.Second) {
			s.lastWarn.Store(now)
			s.h.log.Warn("netron: a subscribed peer is behind; dropping its oldest queued events", "peer", s.conn.ID(), "queue", s.h.queueSize, "dropped", s.dropped.Load())
		}
	}
	if s.head > 0 && s.head >= len(s.queue)/2 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, ev)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start && !s.h.goTracked(s.run) {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}
}

// next pops the oldest queued event; false when the queue is empty, and
// then the drainer is no longer running.
func (s *sender) next() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.queue) {
		s.queue, s.head = nil, 0 // an idle peer holds no buffer
		s.running = false
		return Event{}, false
	}
	ev := s.queue[s.head]
	s.queue[s.head] = Event{}
	s.head++
	return ev, true
}

// run drains the queue, then exits.
func (s *sender) run() {
	ctx := s.conn.Context()
	for {
		ev, ok := s.next()
		if !ok {
			return
		}
		if s.stopped.Load() || s.conn.Err() != nil {
			continue // drain: the subscription or the connection is gone
		}
		enc := ev.enc
		if enc == nil || !enc.done {
			enc = &encodedArgs{}
			enc.encode(ev.Args)
		}
		if enc.err != nil {
			s.h.log.Warn("netron: event not forwarded: cannot encode its arguments", "event", ev.Name, "peer", s.conn.ID(), "err", enc.err)
			continue
		}
		if s.conn.Extensions().Has(rpccore.ExtensionEvents) {
			f := getFrame()
			frame := appendEventData(wire.AppendHeader(f.b, s.conn.NextID(), wire.Flags(wire.TypeExt, true, 0)), extEventKind, ev.Name, enc)
			// Queued, not written here: the connection writes what the
			// sender queues meanwhile in one message (batch1).
			if err := s.conn.Queue(ctx, frame, f.release); err != nil {
				s.h.log.Debug("netron: event not forwarded", "event", ev.Name, "peer", s.conn.ID(), "err", err)
			}
			continue
		}
		if !s.reaping { // only the drainer touches reaping
			if !s.h.goTracked(s.reap) {
				continue
			}
			s.reaping = true
		}
		p, err := s.h.n.client.Send(ctx, s.conn, wire.TypeTask, func(b []byte) ([]byte, error) {
			return appendEventData(b, "emit", ev.Name, enc), nil
		})
		if err != nil {
			s.h.log.Debug("netron: event not forwarded", "event", ev.Name, "peer", s.conn.ID(), "err", err)
			continue
		}
		select {
		case s.inflight <- p: // waits while emitWindow emits are unanswered
		case <-s.done:
		}
	}
}

// reap collects the answers to emit requests, oldest first, until the
// sender closes.
func (s *sender) reap() {
	for {
		select {
		case p := <-s.inflight:
			if _, err := p.Wait(context.Background()); err != nil && s.conn.Err() == nil {
				s.h.log.Debug("netron: emit request failed", "peer", s.conn.ID(), "err", err)
			}
		case <-s.done:
			return
		}
	}
}

// extEventKind is the sub-kind of the EXT event packet: EXT packet data is
// an array whose first element names what it carries.
const extEventKind = "event"

// appendEventData appends [kind, name, ...args] with args already encoded.
func appendEventData(b []byte, kind, name string, enc *encodedArgs) []byte {
	b = wire.AppendArrayHeader(b, 2+enc.n)
	b = wire.AppendString(b, kind)
	b = wire.AppendString(b, name)
	return append(b, enc.b...)
}

// eventFrame is a pooled buffer an event packet is encoded into. Its
// release func is bound once: putting a bare slice into a sync.Pool boxes
// its header, an allocation per event.
type eventFrame struct {
	b       []byte
	release func([]byte)
}

var framePool = sync.Pool{New: func() any { return &eventFrame{b: make([]byte, 0, 256)} }}

// getFrame returns an empty buffer; encode into f.b and hand the result to
// the connection with f.release.
func getFrame() *eventFrame {
	f := framePool.Get().(*eventFrame)
	if f.release == nil {
		f.release = f.put
	}
	f.b = f.b[:0]
	return f
}

// put returns the buffer to the pool with b, what was encoded into it.
func (f *eventFrame) put(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	f.b = b[:0]
	framePool.Put(f)
}

func (h *eventHub) taskSubscribe(_ context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	name, err := eventNameArg(args)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, rpc.NewError(400, "subscribe is a task for peers", nil)
	}
	if err := h.fwdOf(conn).add(name); err != nil {
		return nil, err
	}
	return wire.Undefined{}, nil
}

func (h *eventHub) taskUnsubscribe(_ context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	name, err := eventNameArg(args)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		if v, ok := conn.Value(fwdKey{}); ok {
			v.(*connFwd).remove(name)
		}
	}
	return wire.Undefined{}, nil
}

// taskEmit answers Netron's emit task. The event itself is taken from the
// request in the connection's reader goroutine (onRequest), so that the
// events of a peer are delivered in the order it sent them; tasks run
// concurrently.
func taskEmit(_ context.Context, _ *transport.Conn, args *rpc.Args) (any, error) {
	if _, err := eventNameArg(args); err != nil {
		return nil, err
	}
	return wire.Undefined{}, nil
}

func eventNameArg(args *rpc.Args) (string, error) {
	var name string
	if err := args.Next(&name); err != nil {
		return "", err
	}
	if err := checkName(name, true); err != nil {
		return "", rpc.NewError(400, err.Error(), map[string]any{"reason": "EventName"})
	}
	return name, nil
}

// ---------------------------------------------------------------------------
// The receiving side: events a peer sends to our subscriptions.

// onRequest takes the event out of an emit TASK request, in the
// connection's reader goroutine. The RPC server answers the request.
func (h *eventHub) onRequest(ctx context.Context, in transport.Inbound) {
	if in.Packet.Type() != wire.TypeTask {
		return
	}
	h.receive(ctx, in.Conn, in.Packet.Data, "emit")
}

// onExt takes the event out of an EXT event packet; other EXT packets are
// not ours.
func (h *eventHub) onExt(ctx context.Context, in transport.Inbound) {
	if in.Packet.Type() != wire.TypeExt {
		return
	}
	h.receive(ctx, in.Conn, in.Packet.Data, extEventKind)
}

// receive decodes [kind, name, ...args] and publishes the event on
// TopicRemoteEvents, if the connection's peer has a subscription for it.
func (h *eventHub) receive(ctx context.Context, conn *transport.Conn, data []byte, kind string) {
	if !hasKind(data, kind) {
		return
	}
	v, ok := conn.Value(peerKey{})
	if !ok {
		return // no subscriptions on this connection
	}
	p := v.(*Peer)
	// The arguments are decoded within their decode budget, and what they
	// take is charged to the connection's inbound memory until every
	// handler has taken the event or it was dropped (eventCharge).
	charge := &eventCharge{}
	charge.acct.Reset(conn, conn.MaxDecodeMemory())
	name, args, err := parseEvent(data, kind, p.ev.routes.any, &p.ev.names, &charge.acct, charge.args[:0])
	charge.acct.Shrink()
	if err != nil || name == "" {
		charge.acct.Release()
	}
	switch {
	case errors.Is(err, wire.ErrNoMemory):
		h.log.Debug("netron: dropped an event: the node's inbound memory is full", "peer", conn.ID(), "err", err)
		return
	case err != nil && kind == extEventKind:
		// Only Go peers send these: a bug on their side, worth a warning.
		h.log.Warn("netron: dropped a malformed event packet", "peer", conn.ID(), "err", err)
		return
	case err != nil:
		// The RPC server answers the emit task with the error.
		h.log.Debug("netron: dropped a malformed emit request", "peer", conn.ID(), "err", err)
		return
	case name == "":
		return // nobody subscribed
	}
	charge.refs.Store(1) // the reader's, until the publish returns
	if err := h.remote.Publish(readerContext(conn), Event{Name: name, Args: args, Source: conn.ID(), Peer: p, charge: charge}); err != nil {
		h.log.Debug("netron: remote event not delivered", "peer", conn.ID(), "event", name, "err", err)
	}
	charge.done()
}

// parseEvent decodes the data of an emit request or an EXT event packet,
// [kind, name, ...args], which must hold exactly one msgpack value (the
// packet decoder checks that), through acct (nil: the default budget). It
// returns the canonical name and the arguments, or an empty name when
// wanted says nobody wants the event (its arguments are then not
// decoded). The arguments go into buf when they fit; names, if not nil,
// interns the names.
func parseEvent(data []byte, kind string, wanted func(string) bool, names *nameCache, acct *wire.Account, buf []any) (string, []any, error) {
	if !hasKind(data, kind) {
		return "", nil, fmt.Errorf("%w: not [%q, name, ...args]", ErrInvalidEvent, kind)
	}
	var dec *msgpack.Decoder
	if acct != nil {
		dec = wire.NewDecoderAccount(data, acct)
	} else {
		dec = wire.NewDecoder(data)
	}
	defer wire.ReleaseDecoder(dec)
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 2 || n > len(data) {
		return "", nil, fmt.Errorf("%w: no event name", ErrInvalidEvent)
	}
	if err := dec.Skip(); err != nil { // the kind, checked by hasKind
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	raw, err := wire.DecodeStringBytes(dec)
	if err != nil || len(raw) == 0 {
		return "", nil, fmt.Errorf("%w: the event name is not a string", ErrInvalidEvent)
	}
	name, cached := names.lookup(raw)
	if !cached {
		sent := string(raw)
		name = canonical(sent)
		if wanted(name) {
			names.add(sent, name)
		}
	}
	if !wanted(name) {
		return "", nil, nil
	}
	args := buf[:0]
	if cap(args) >= n-2 {
		args = args[:n-2]
	} else {
		args = make([]any, n-2)
	}
	for i := range args {
		if err := wire.DecodeArg(dec, reflect.ValueOf(&args[i]).Elem()); err != nil {
			return "", nil, fmt.Errorf("%w: %s argument %d: %w", ErrInvalidEvent, name, i+1, err)
		}
		args[i] = rpccore.PublicValue(args[i])
	}
	return name, args, nil
}

// hasKind reports whether data is a msgpack array whose first element is
// the string kind.
func hasKind(data []byte, kind string) bool {
	if len(data) == 0 {
		return false
	}
	i := 0
	switch c := data[0]; {
	case c >= 0x91 && c <= 0x9f:
		i = 1
	case c == 0xdc:
		i = 3
	case c == 0xdd:
		i = 5
	default:
		return false
	}
	if len(data) <= i {
		return false
	}
	var s []byte
	switch c := data[i]; {
	case c >= 0xa0 && c <= 0xbf:
		n := int(c & 0x1f)
		if len(data) < i+1+n {
			return false
		}
		s = data[i+1 : i+1+n]
	case c == 0xd9 && len(data) > i+1:
		n := int(data[i+1])
		if len(data) < i+2+n {
			return false
		}
		s = data[i+2 : i+2+n]
	default:
		return false
	}
	return string(s) == kind
}

// ---------------------------------------------------------------------------
// Subscriptions to a peer's events.

// peerEvents is the subscription state of one Peer.
type peerEvents struct {
	taskMu sync.Mutex // serialises the subscribe/unsubscribe round trips
	routes router
	names  nameCache // the names of the events received (see parseEvent)

	mu     sync.Mutex
	closed bool
	refs   map[string]int // local subscriptions per remote name
	subs   map[*peerSub]struct{}
}

// nameCache interns the names of the events a peer sends that someone
// wants: parseEvent looks a name up in its packet's bytes instead of
// decoding it into a new string for every event.
type nameCache struct {
	mu sync.Mutex
	m  map[string]string // the name as sent → its canonical form
}

// maxCachedNames bounds a nameCache; names beyond it are decoded.
const maxCachedNames = 256

// lookup returns the canonical name of the name b, if cached (nil c: none).
func (c *nameCache) lookup(b []byte) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.Lock()
	s, ok := c.m[string(b)]
	c.mu.Unlock()
	return s, ok
}

func (c *nameCache) add(name, canon string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]string)
	}
	if len(c.m) < maxCachedNames {
		c.m[name] = canon
	}
	c.mu.Unlock()
}

// peerSub is one local subscription to a peer's events.
type peerSub struct {
	names  []string // the names subscribed remotely (canonical)
	routes []*route
	x      *handler    // nil for an inline target or a channel
	end    func(error) // ends its Subscription by itself (nil: none)
	once   sync.Once
}

// On subscribes to the events called name of the peer (a name, or a
// pattern "prefix*" / "*" on a Go peer) and calls fn with each of them,
// until the subscription it returns ends. The first subscription to a name
// runs the peer's subscribe task, the last unsubscribe its unsubscribe
// task, as Netron does; a Titan peer then sends each event as a TASK emit
// request, a Go peer as a one-way event packet. Lifecycle events of the
// peer (peer:connect, service:expose, …) are subscribed to the same way,
// and arrive with Netron's payloads as map[string]any (Event.Decode turns
// them into PeerEvent or ServiceEvent).
//
// fn runs in a goroutine of its own, one event at a time, in the order the
// peer sent them, with the queue and slow-consumer policy described at
// Node.On (bus.WithBuffer and bus.WithPolicy apply). With bus.Block the
// connection's reader waits for room in fn's queue: the peer's next
// packets wait with it (backpressure on that connection only; other
// connections go on). While the reader waits it reads nothing, pongs
// included, so a wait longer than the keep-alive interval and timeout
// (40 s by default) closes the connection as dead, and so may the peer's
// write timeout once its socket buffers are full. A panic in fn is
// recovered and logged. ctx bounds the subscribe task.
//
// Close stops delivery (once it returns fn is not called again) and sends
// the unsubscribe task, when no other subscription of this node needs the
// name, without waiting for it; Unsubscribe(ctx) waits for the peer's
// answer. When the connection closes every subscription ends by itself
// (Done is closed and Err returns the peer's error, matching
// ErrPeerDisconnected), unless the peer reconnects (Node.Connect with
// Config.Reconnect on): then the subscriptions wait, and each new
// connection runs the subscribe task again for every name subscribed to,
// so that they receive the events of the node at the peer's URL, restarted
// or not; they end when the peer is gone for good (Peer.Done). Events
// emitted while there was no connection are lost. On fails at once
// (ErrReconnecting) between connections.
func (p *Peer) On(ctx context.Context, name string, fn func(Event), opts ...bus.SubOption) (*Subscription[Event], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidEvent)
	}
	if err := p.checkSubscribe(name); err != nil {
		return nil, err
	}
	x, err := p.node.ev.newHandler("Peer("+p.ID()+").On("+name+")", name, fn, opts)
	if err != nil {
		return nil, err
	}
	s := newSubscription(x.sub, true)
	ps := p.bindSubscription(s, x, x.close, x.finish)
	if err := p.subscribe(ctx, []string{name}, x.t, ps); err != nil {
		x.close()
		return nil, err
	}
	return s, nil
}

// Events is On with the events received from the subscription's channel C
// instead of a handler; C is closed when the subscription ends, after the
// events already queued.
func (p *Peer) Events(ctx context.Context, name string, opts ...bus.SubOption) (*Subscription[Event], error) {
	if err := p.checkSubscribe(name); err != nil {
		return nil, err
	}
	t, sub, err := p.node.ev.newTarget("Peer("+p.ID()+").Events("+name+")", name, opts)
	if err != nil {
		if errors.Is(err, bus.ErrClosed) {
			return nil, ErrStopped
		}
		return nil, err
	}
	s := newSubscription(sub, false)
	closeQ := func() { _ = sub.Close() }
	ps := p.bindSubscription(s, nil, closeQ, closeQ)
	if err := p.subscribe(ctx, []string{name}, t, ps); err != nil {
		closeQ()
		return nil, err
	}
	return s, nil
}

func (p *Peer) checkSubscribe(name string) error {
	if err := checkName(name, true); err != nil {
		return err
	}
	if strings.HasSuffix(name, "*") && !p.IsGo() {
		return fmt.Errorf("%w: %q on %s", ErrPatternUnsupported, name, p.ID())
	}
	return nil
}

// bindSubscription returns the peerSub behind s, whose handler is x (nil
// for a channel): stop ends its delivery at once, finish after what is
// queued.
func (p *Peer) bindSubscription(s *Subscription[Event], x *handler, stop, finish func()) *peerSub {
	ps := &peerSub{x: x, end: s.endBy}
	s.stop = stop
	s.finish = func() {
		p.ev.drop(ps)
		finish()
	}
	s.unsub = func(ctx context.Context) error { return p.unsubscribe(ctx, ps) }
	s.async = func() {
		// The unsubscribe task in a goroutine the node waits for at Stop;
		// after Stop there is no connection to send it on.
		if !p.node.ev.goTracked(func() { _ = p.unsubscribe(context.Background(), ps) }) {
			p.ev.drop(ps)
		}
	}
	return ps
}

// subscribe adds ps, a subscription to names delivered to t, and runs the
// subscribe task for the names no other subscription had.
func (p *Peer) subscribe(ctx context.Context, names []string, t *target, ps *peerSub) error {
	e := &p.ev
	e.taskMu.Lock()
	defer e.taskMu.Unlock()
	e.mu.Lock()
	if err := p.Err(); e.closed || err != nil {
		e.mu.Unlock()
		if err != nil {
			return err
		}
		return ErrPeerDisconnected
	}
	if e.refs == nil {
		e.refs = make(map[string]int)
		e.subs = make(map[*peerSub]struct{})
	}
	var first []string
	for _, name := range names {
		rt := newRoute(name, t)
		ps.routes = append(ps.routes, rt)
		remote := remoteName(name)
		ps.names = append(ps.names, remote)
		e.refs[remote]++
		if e.refs[remote] == 1 {
			first = append(first, remote)
		}
	}
	e.subs[ps] = struct{}{}
	e.routes.add(ps.routes...)
	e.mu.Unlock()
	for i, name := range first {
		if _, err := p.RunTask(ctx, "subscribe", name); err != nil {
			// Undo the local state, and the remote subscriptions made.
			last := e.drop(ps)
			for _, done := range first[:i] {
				if slices.Contains(last, done) {
					_, _ = p.RunTask(ctx, "unsubscribe", done)
				}
			}
			return fmt.Errorf("netron: subscribe %q on %s: %w", name, p.ID(), err)
		}
	}
	return nil
}

// remoteName is the name sent in the subscribe task: a lifecycle event's
// wire name, so that a Titan peer understands it.
func remoteName(name string) string {
	if strings.HasSuffix(name, "*") {
		return name
	}
	return canonical(name)
}

// drop removes ps locally and returns the names no other subscription
// needs any more.
func (e *peerEvents) drop(ps *peerSub) (last []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[ps]; !ok {
		return nil
	}
	delete(e.subs, ps)
	e.routes.remove(ps.routes...)
	for _, n := range ps.names {
		if e.refs[n]--; e.refs[n] <= 0 {
			delete(e.refs, n)
			last = append(last, n)
		}
	}
	if ps.x != nil {
		if e.closed {
			ps.x.finish() // the connection closed: deliver what arrived
		} else {
			ps.x.close()
		}
	}
	if e.closed {
		return nil
	}
	return last
}

func (p *Peer) unsubscribe(ctx context.Context, ps *peerSub) error {
	var err error
	ps.once.Do(func() {
		e := &p.ev
		e.taskMu.Lock()
		defer e.taskMu.Unlock()
		for _, name := range e.drop(ps) {
			if _, e2 := p.RunTask(ctx, "unsubscribe", name); e2 != nil && p.Err() == nil {
				err = errors.Join(err, fmt.Errorf("netron: unsubscribe %q on %s: %w", name, p.ID(), e2))
			}
		}
	})
	return err
}

// closeAll ends every subscription with err: the peer is gone.
func (e *peerEvents) closeAll(err error) {
	e.mu.Lock()
	e.closed = true
	subs := make([]*peerSub, 0, len(e.subs))
	for ps := range e.subs {
		subs = append(subs, ps)
	}
	e.mu.Unlock()
	for _, ps := range subs {
		e.drop(ps)
		if ps.end != nil {
			ps.end(err)
		}
	}
}

// ---------------------------------------------------------------------------
// The live service catalogue.

// syncCatalog keeps p.Services() current: it subscribes to the peer's
// service:expose and service:unexpose events. With a Go peer it then takes
// the catalogue again, so that nothing exposed between the abilities
// exchange and the subscription is missed; events that arrive before that
// snapshot are applied on top of it.
func (p *Peer) syncCatalog(ctx context.Context, isGo bool) error {
	p.mu.Lock()
	p.catalogReady = !isGo
	p.catalogPending = nil
	p.mu.Unlock()
	t := &target{inline: p.onCatalogEvent}
	ps := &peerSub{}
	if err := p.subscribe(ctx, []string{EventServiceExpose, EventServiceUnexpose}, t, ps); err != nil {
		p.setCatalogReady(nil, false)
		return err
	}
	p.mu.Lock()
	p.catalogSub = ps
	p.mu.Unlock()
	if !isGo {
		return nil
	}
	conn, err := p.activeConn()
	if err != nil {
		p.setCatalogReady(nil, false)
		return err
	}
	ab, err := p.node.client.Abilities(ctx, conn, p.node.offer())
	if err != nil {
		p.setCatalogReady(nil, false)
		return err
	}
	p.setCatalogReady(ab.Services, true)
	return nil
}

type catalogChange struct {
	exposed bool
	qn      string
	def     rpc.ServiceDescription
}

func (p *Peer) setCatalogReady(snapshot map[string]wire.Definition, replace bool) {
	catalog := describeAll(snapshot)
	p.mu.Lock()
	defer p.mu.Unlock()
	if replace {
		p.catalog = catalog
		if p.catalog == nil {
			p.catalog = map[string]rpc.ServiceDescription{}
		}
	}
	for _, c := range p.catalogPending {
		p.applyCatalog(c)
	}
	p.catalogPending = nil
	p.catalogReady = true
}

// onCatalogEvent runs inline, in the connection's reader goroutine.
func (p *Peer) onCatalogEvent(_ context.Context, ev Event) {
	if len(ev.Args) == 0 {
		return
	}
	m, ok := ev.Args[0].(map[string]any)
	if !ok {
		return
	}
	c := catalogChange{exposed: ev.Name == EventServiceExpose}
	c.qn, _ = m["qualifiedName"].(string)
	if c.qn == "" {
		name, _ := m["name"].(string)
		version, _ := m["version"].(string)
		c.qn = name + "@" + version
	}
	if c.exposed {
		if c.def, ok = m["definition"].(rpc.ServiceDescription); !ok {
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.catalogReady {
		if len(p.catalogPending) < 10000 {
			p.catalogPending = append(p.catalogPending, c)
		}
		return
	}
	p.applyCatalog(c)
}

func (p *Peer) applyCatalog(c catalogChange) {
	if c.exposed {
		if p.catalog == nil {
			p.catalog = make(map[string]rpc.ServiceDescription)
		}
		p.catalog[c.qn] = c.def
	} else {
		delete(p.catalog, c.qn)
	}
}
