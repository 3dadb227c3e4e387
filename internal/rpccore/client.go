package rpccore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// DefaultRequestTimeout applies to calls whose context has no deadline.
const DefaultRequestTimeout = 5 * time.Second

// Client sends requests to peers and matches their responses. It keeps one
// long-lived subscription to transport.TopicResponses and one to
// transport.TopicDisconnected for the whole node: no subscription per call. When
// a connection closes every request pending on it fails at once with an
// error that matches peer.ErrDisconnected.
type Client struct {
	timeout time.Duration
	logger  *slog.Logger
	unsubs  []func()
	streams *streamcore.Manager
	obs     *obs.Observer // nil: observability off
}

// ClientOption configures a Client.
type ClientOption interface{ applyClient(*Client) }

type clientOptionFunc func(*Client)

func (f clientOptionFunc) applyClient(c *Client) { f(c) }

// WithRequestTimeout sets the timeout of calls whose context has no
// deadline (default 5 s, Titan's REQUEST_TIMEOUT).
func WithRequestTimeout(d time.Duration) ClientOption {
	return clientOptionFunc(func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	})
}

// WithClientLogger sets the client's logger.
func WithClientLogger(l *slog.Logger) ClientOption {
	return clientOptionFunc(func(c *Client) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithClientObserver makes the client report its calls to o (nil: off).
func WithClientObserver(o *obs.Observer) ClientOption {
	return clientOptionFunc(func(c *Client) { c.obs = o })
}

// NewClient subscribes to responses and disconnects on b.
func NewClient(b *bus.Bus, opts ...ClientOption) (*Client, error) {
	c := &Client{timeout: DefaultRequestTimeout, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o.applyClient(c)
	}
	u1, err := bus.NewTopic[transport.Inbound](b, transport.TopicResponses).SubscribeFunc(c.onResponse)
	if err != nil {
		return nil, err
	}
	u2, err := bus.NewTopic[transport.ConnEvent](b, transport.TopicDisconnected).SubscribeFunc(c.onDisconnect)
	if err != nil {
		u1()
		return nil, err
	}
	c.unsubs = []func(){u1, u2}
	return c, nil
}

// Close stops matching responses.
func (c *Client) Close() error {
	for _, u := range c.unsubs {
		u()
	}
	return nil
}

// RequestTimeout returns the default request timeout.
func (c *Client) RequestTimeout() time.Duration { return c.timeout }

type pendingKey struct{}

// pendingSet is the requests in flight on one connection.
type pendingSet struct {
	conn   *transport.Conn // told how many calls wait (transport.Conn.AwaitReplies)
	sent   atomic.Uint64   // calls made on it, counted when the client observes
	mu     sync.Mutex
	calls  map[uint32]pending
	closed bool
	// sweep fails the calls whose deadline has passed: one timer per
	// connection instead of one per call. It fires slack after the
	// earliest deadline it knows (armed; zero while it is not armed), so
	// that one pass fails every call due within slack of it: calls that
	// keep timing out cost a pass over the set per slack, not per call.
	// With calls of one timeout it fires about once per timeout while
	// calls go on.
	sweep  *time.Timer
	armed  time.Time
	slack  time.Duration
	sweeps int // passes so far, for tests
	// orphaned is how many calls were waiting for their reply when the
	// connection closed (and failed because of it).
	orphaned int
}

// sweepSlack is how late, at most, the sweep fails a call, as a fraction
// of the request timeout.
const sweepSlack = 32

// pending is a request waiting for its response on ch. A zero deadline
// is none: the caller's context has one, or its uploads are running.
type pending struct {
	ch       chan response
	deadline time.Time
}

type response struct {
	data  []byte
	isErr bool
	err   error
}

// errNoResponse is what the sweep sends a call whose deadline has passed.
var errNoResponse = errors.New("rpc: no response in time")

func (c *Client) pendingOf(conn *transport.Conn) *pendingSet {
	if v, ok := conn.Value(pendingKey{}); ok {
		return v.(*pendingSet)
	}
	v, _ := conn.LoadOrStoreValue(pendingKey{}, &pendingSet{conn: conn, calls: make(map[uint32]pending), slack: c.timeout / sweepSlack})
	return v.(*pendingSet)
}

var respChanPool = sync.Pool{New: func() any { return make(chan response, 1) }}

func (c *Client) onResponse(_ context.Context, in transport.Inbound) {
	ps := c.pendingOf(in.Conn)
	ps.mu.Lock()
	p, ok := ps.calls[in.Packet.ID]
	if ok {
		delete(ps.calls, in.Packet.ID)
		ps.await(-1)
	}
	ps.mu.Unlock()
	if c.streams != nil && !in.Packet.IsError() && isStreamRef(in.Packet.Data) {
		// Register the stream before its first chunk can arrive.
		c.announce(in.Conn, in.Packet.Data, ok)
	}
	if !ok {
		c.logger.Debug("netron: dropped a response to an unknown request", "peer", in.Conn.ID(), "request_id", in.Packet.ID)
		return
	}
	p.ch <- response{data: in.Packet.Data, isErr: in.Packet.IsError()}
}

func (c *Client) onDisconnect(_ context.Context, ev transport.ConnEvent) {
	ps := c.pendingOf(ev.Conn)
	ps.mu.Lock()
	ps.closed = true
	calls := ps.calls
	ps.calls = nil
	ps.orphaned += len(calls)
	ps.await(-len(calls))
	if ps.sweep != nil {
		ps.sweep.Stop()
	}
	ps.mu.Unlock()
	for _, p := range calls {
		p.ch <- response{err: ev.Err}
	}
}

// Orphaned returns how many calls on conn were waiting for their reply
// when it closed: the calls its closing failed.
func (c *Client) Orphaned(conn *transport.Conn) int {
	ps := c.pendingOf(conn)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.orphaned
}

// Request sends a request of type t on conn whose data is appended by
// build, and waits for the response. It returns the response data (one
// msgpack value), or an *rpc.Error when the peer answered with an error, or
// the connection's error when it closed, or the context's error.
func (c *Client) Request(ctx context.Context, conn *transport.Conn, t wire.Type, build func([]byte) ([]byte, error)) ([]byte, error) {
	return c.request(ctx, conn, t, build, nil)
}

// request is Request that sets *sent (when sent is not nil) once the
// request is in the connection's outbound queue: an error with *sent
// false is of a request the peer never saw.
func (c *Client) request(ctx context.Context, conn *transport.Conn, t wire.Type, build func([]byte) ([]byte, error), sent *bool) ([]byte, error) {
	// The wait for room in a full outbound queue counts against the
	// timeout too.
	deadline := c.deadline(ctx)
	id, ps, ch, err := c.send(ctx, deadline, deadline, conn, t, build)
	if err != nil {
		return nil, err
	}
	if sent != nil {
		*sent = true
	}
	select {
	case r := <-ch:
		respChanPool.Put(ch) // the response taken out of the set is its only one
		if r.err == errNoResponse {
			return nil, fmt.Errorf("rpc: request %d to %s: no response within %s: %w", id, conn.ID(), c.timeout, context.DeadlineExceeded)
		}
		return r.result()
	case <-ctx.Done():
		c.forget(ps, id, ch)
		return nil, fmt.Errorf("rpc: request %d to %s: %w", id, conn.ID(), ctx.Err())
	}
}

// deadline is when a call with ctx times out by the default timeout: zero
// (none) when ctx has a deadline of its own.
func (c *Client) deadline(ctx context.Context) time.Time {
	if _, ok := ctx.Deadline(); ok {
		return time.Time{}
	}
	return time.Now().Add(c.timeout)
}

// send registers a request on conn and queues it; the response will
// arrive on ch. The wait for room in the outbound queue ends with ctx, or
// at sendBy (see transport.Conn.SendBefore); the pending set fails the call at
// deadline (zero: never) unless its response came first.
func (c *Client) send(ctx context.Context, sendBy, deadline time.Time, conn *transport.Conn, t wire.Type, build func([]byte) ([]byte, error)) (uint32, *pendingSet, chan response, error) {
	if conn.GoingAway() {
		return 0, nil, nil, fmt.Errorf("rpc: %s: %w", conn.ID(), peer.ErrGoingAway)
	}
	ch := respChanPool.Get().(chan response)
	ps := c.pendingOf(conn)
	if c.obs != nil && t == wire.TypeCall {
		ps.sent.Add(1)
	}
	id, ok := ps.reserve(conn.NextID, ch, deadline)
	if !ok {
		respChanPool.Put(ch)
		return 0, nil, nil, conn.Err()
	}
	fb := getBuf()
	frame, err := build(wire.AppendHeader(fb.b, id, wire.Flags(t, true, 0)))
	if err != nil {
		c.forget(ps, id, ch)
		fb.put(frame)
		return 0, nil, nil, err
	}
	if err := conn.SendBefore(ctx, sendBy, frame, fb.release); err != nil {
		c.forget(ps, id, ch)
		if !sendBy.IsZero() && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("rpc: request to %s: not sent within %s: %w", conn.ID(), c.timeout, err)
		}
		return 0, nil, nil, err
	}
	return id, ps, ch, nil
}

// reserve registers ch under the next id that no pending request holds:
// ids wrap after 2³², and a request can still be waiting for its answer
// when its id comes round again. It reports false once the connection
// has closed.
func (ps *pendingSet) reserve(next func() uint32, ch chan response, deadline time.Time) (uint32, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return 0, false
	}
	id := next()
	for ps.calls[id].ch != nil {
		id = next()
	}
	ps.calls[id] = pending{ch: ch, deadline: deadline}
	ps.await(1)
	ps.armLocked(deadline)
	return id, true
}

// await tells the connection how many calls wait for a reply on it.
func (ps *pendingSet) await(delta int) {
	if ps.conn != nil {
		ps.conn.AwaitReplies(delta)
	}
}

// setDeadline gives the request id, if still pending on ch, a new
// deadline; zero takes its deadline away.
func (ps *pendingSet) setDeadline(id uint32, ch chan response, deadline time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.calls[id]; ok && p.ch == ch {
		ps.calls[id] = pending{ch: ch, deadline: deadline}
		ps.armLocked(deadline)
	}
}

// armLocked makes sure the sweep runs by deadline plus slack (zero: no
// deadline).
func (ps *pendingSet) armLocked(deadline time.Time) {
	if deadline.IsZero() || ps.closed {
		return
	}
	at := deadline.Add(ps.slack)
	if !ps.armed.IsZero() && !at.Before(ps.armed) {
		return
	}
	ps.armed = at
	if ps.sweep == nil {
		ps.sweep = time.AfterFunc(time.Until(at), ps.expire)
	} else {
		ps.sweep.Reset(time.Until(at))
	}
}

// expire fails the calls whose deadline has passed with errNoResponse,
// and arms the sweep for the earliest deadline left.
func (ps *pendingSet) expire() {
	ps.mu.Lock()
	now := time.Now()
	ps.armed = time.Time{}
	ps.sweeps++
	var due []chan response
	var next time.Time
	for id, p := range ps.calls {
		switch {
		case p.deadline.IsZero():
		case !p.deadline.After(now):
			delete(ps.calls, id)
			ps.await(-1)
			due = append(due, p.ch)
		case next.IsZero() || p.deadline.Before(next):
			next = p.deadline
		}
	}
	ps.armLocked(next)
	ps.mu.Unlock()
	for _, ch := range due {
		ch <- response{err: errNoResponse} // out of the set: no other response comes
	}
}

// forget removes a request that will not be waited for. The channel goes
// back to the pool only if no response can still be sent to it.
func (c *Client) forget(ps *pendingSet, id uint32, ch chan response) {
	ps.mu.Lock()
	still := ps.calls[id].ch == ch
	if still {
		delete(ps.calls, id)
		ps.await(-1)
	}
	ps.mu.Unlock()
	if still {
		respChanPool.Put(ch)
	}
}

// QueryInterface asks the peer for a service: "name" (latest),
// "name@1.2.3", or a range "name@^1". A plain Netron peer (Titan), which
// does not resolve ranges, is asked for the bare name and its answer kept
// when its version is in the range (Titan reports only the highest
// version of a service: a lower one in the range cannot be found).
func (c *Client) QueryInterface(ctx context.Context, conn *transport.Conn, spec string) (*rpc.Service, error) {
	data, err := c.Request(ctx, conn, wire.TypeTask, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendString(b, "query_interface")
		return wire.AppendString(b, spec), nil
	})
	if err != nil {
		if svc, ok, err := c.rangeFallback(ctx, conn, spec, err); ok {
			return svc, err
		}
		return nil, err
	}
	var def wire.Definition
	if err := wire.UnmarshalMax(data, &def, conn.MaxDecodeMemory()); err != nil {
		return nil, fmt.Errorf("%w: query_interface: %w", rpc.ErrMalformedResult, err)
	}
	return c.Remote(conn, def), nil
}

// Abilities runs the abilities task, offering ours; a plain Titan peer
// answers 404 (errors.Is(err, rpc.ErrTaskNotFound)).
func (c *Client) Abilities(ctx context.Context, conn *transport.Conn, ours Abilities) (Abilities, error) {
	data, err := c.Request(ctx, conn, wire.TypeTask, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendString(b, "abilities")
		return wire.AppendMarshal(b, ours)
	})
	if err != nil {
		return Abilities{}, err
	}
	var a Abilities
	if err := wire.UnmarshalMax(data, &a, conn.MaxDecodeMemory()); err != nil {
		return Abilities{}, fmt.Errorf("%w: abilities: %w", rpc.ErrMalformedResult, err)
	}
	return a, nil
}

// Remote returns a handle for a service definition on conn.
func (c *Client) Remote(conn *transport.Conn, def wire.Definition) *rpc.Service {
	return newService(def, remoteInvoker{c: c, conn: conn, svc: qualified(def)})
}

// qualified returns the "name@version" of def.
func qualified(def wire.Definition) string {
	if def.Meta.Version == "" {
		return def.Meta.Name
	}
	return def.Meta.Name + "@" + def.Meta.Version
}

// RunTask runs a task on the peer and returns its raw result.
func (c *Client) RunTask(ctx context.Context, conn *transport.Conn, name string, args ...any) (rpc.Result, error) {
	data, err := c.Request(ctx, conn, wire.TypeTask, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 1+len(args))
		b = wire.AppendString(b, name)
		return appendArgs(b, args)
	})
	return newResult(data, conn.MaxDecodeMemory()), err
}

type remoteInvoker struct {
	c    *Client
	conn *transport.Conn
	// sent, when not nil, is set once a request is queued on conn (see
	// Client.request); a balanced call reads it to know whether a failed
	// call may run elsewhere. Calls with uploads never set it.
	sent *bool
	svc  string // the service's qualified name, for observing its calls
}

// Invoke is Service.Call: a method that produces a stream fails with
// rpc.ErrStreamResult, and its stream is opened and closed at once, which
// tells the producer to stop (OpenStream is the way to read it).
func (r remoteInvoker) Invoke(ctx context.Context, target, method string, args []any) ([]byte, error) {
	data, err := r.invoke(ctx, target, method, args)
	if err != nil || !isStreamRef(data) {
		return data, err
	}
	if ref, e := streamRefOf(data); e == nil && r.c.streams != nil {
		if in, e := r.c.streams.Accept(r.conn, ref); e == nil {
			_ = in.CloseWith(rpc.ErrStreamResult)
		}
	}
	return nil, rpc.ErrStreamResult
}

// invoke sends the CALL and waits for its reply, observed when the
// client has an observer.
func (r remoteInvoker) invoke(ctx context.Context, target, method string, args []any) ([]byte, error) {
	if r.c.obs != nil {
		return r.observe(ctx, target, method, args)
	}
	return r.call(ctx, target, method, args, nil)
}

// call sends the CALL and waits for its reply; a non-nil size is told the
// size of the request packet.
func (r remoteInvoker) call(ctx context.Context, target, method string, args []any, size *int) ([]byte, error) {
	if hasSources(args) {
		return r.c.callWithUploads(ctx, r.conn, target, method, args, size)
	}
	return r.c.request(ctx, r.conn, wire.TypeCall, func(b []byte) ([]byte, error) {
		b = appendCallHead(ctx, r.c.obs, r.conn, b, len(args), target, method)
		b, err := appendArgs(b, args)
		if size != nil {
			*size = len(b) // b is the whole packet
		}
		return b, err
	}, r.sent)
}

// appendCallHead appends the head of a CALL's data: its array header, the
// trace context of ctx when o traces and the peer agreed to
// obs.ExtensionTrace, the target and the method.
func appendCallHead(ctx context.Context, o *obs.Observer, conn *transport.Conn, b []byte, nargs int, target, method string) []byte {
	if o != nil && o.Tracer != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && conn.Extensions().Has(obs.ExtensionTrace) {
			b = wire.AppendArrayHeader(b, 3+nargs)
			b = obs.AppendTraceparent(b, sc)
			b = wire.AppendString(b, target)
			return wire.AppendString(b, method)
		}
	}
	b = wire.AppendArrayHeader(b, 2+nargs)
	b = wire.AppendString(b, target)
	return wire.AppendString(b, method)
}

func (r remoteInvoker) PeerID() string { return r.conn.ID() }

func (r remoteInvoker) DecodeMax() int64 { return r.conn.MaxDecodeMemory() }

func appendArgs(b []byte, args []any) ([]byte, error) {
	var err error
	for i, a := range args {
		if b, err = wire.AppendMarshal(b, a); err != nil {
			return b, fmt.Errorf("rpc: argument %d (%T): %w", i+1, a, err)
		}
	}
	return b, nil
}

// frameBuf is a pooled encoding buffer. Its release func is bound once,
// on first use, so handing it to the connection with a frame allocates
// nothing.
type frameBuf struct {
	b       []byte
	release func([]byte)
}

var bufPool = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 512)} }}

// getBuf returns an empty buffer; encode into fb.b and give the result to
// fb.put (or to the connection with fb.release) when done.
func getBuf() *frameBuf {
	fb := bufPool.Get().(*frameBuf)
	if fb.release == nil {
		fb.release = fb.put
	}
	fb.b = fb.b[:0]
	return fb
}

// put returns the buffer to the pool with b, what was encoded into it
// (append may have grown it). Buffers grown past 64 KiB are dropped.
func (fb *frameBuf) put(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	fb.b = b[:0]
	bufPool.Put(fb)
}
