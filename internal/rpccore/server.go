package rpccore

import (
	"context"
	"errors"
	"fmt"
	"github.com/netron-go/netron/peer"
	"log/slog"
	"reflect"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// ConnTaskFunc is a task handler that also gets the connection the task
// came on (nil for tasks run locally).
type ConnTaskFunc func(ctx context.Context, conn *transport.Conn, args *rpc.Args) (any, error)

// Server answers the requests peers send to this node: CALLs of exposed
// services and TASKs. It consumes transport.TopicRequests from the bus and
// replies on each connection's outbound topic.
type Server struct {
	reg       *Registry
	logger    *slog.Logger
	withStack bool
	sem       chan struct{}
	perPeer   int32
	authz     rpc.Authorizer
	authn     peer.Authenticator // for the authenticate task (coretasks.go)
	auth      authPolicy         // anonymous peers, failed authentications (anonymous.go)
	relay     *Client            // relays requests for services peers published (exposure.go)
	unsub     func()
	obs       *obs.Observer // nil: observability off
	unsubRefs func()        // see refs.go
	streams   *streamcore.Manager

	mu    sync.RWMutex
	tasks map[string]ConnTaskFunc

	wg        sync.WaitGroup
	startMu   sync.RWMutex  // orders starting a worker before Close's wait
	jobs      chan job      // to idle workers
	waiting   chan struct{} // a token per request waiting for a slot
	drainCh   chan struct{} // closed by Drain
	drainOnce sync.Once
	draining  atomic.Bool
	active    atomic.Int64 // requests running, for Drain
	closed    chan struct{}
	once      sync.Once
}

// ServerOption configures a Server.
type ServerOption interface{ applyServer(*Server) }

type serverOptionFunc func(*Server)

func (f serverOptionFunc) applyServer(s *Server) { f(s) }

// WithServerLogger sets the server's logger.
func WithServerLogger(l *slog.Logger) ServerOption {
	return serverOptionFunc(func(s *Server) {
		if l != nil {
			s.logger = l
		}
	})
}

// WithConcurrency bounds how many requests run at once on this node
// (default 4096). A request that finds no free slot waits for one in its
// connection's queue, and the connection goes on being read (pongs,
// responses and stream chunks the running requests may wait for);
// connections with waiting requests take the slots that free in turn. The
// node holds at most n waiting requests (or the per-peer limit, if more);
// past that, a request is refused at once with a 429 error
// (rpc.ErrTooManyRequests). The per-peer limit (WithPeerConcurrency) counts
// waiting requests too.
func WithConcurrency(n int) ServerOption {
	return serverOptionFunc(func(s *Server) {
		if n > 0 {
			s.sem = make(chan struct{}, n)
		}
	})
}

// DefaultPeerConcurrency bounds the requests one peer may have running.
const DefaultPeerConcurrency = 1024

// WithPeerConcurrency bounds how many requests one peer may have running
// or waiting for a slot at once (default 1024). A request beyond it is
// answered at once with a 429 error (rpc.ErrTooManyRequests) instead of
// running.
func WithPeerConcurrency(n int) ServerOption {
	return serverOptionFunc(func(s *Server) {
		if n > 0 {
			s.perPeer = int32(n)
		}
	})
}

// WithStackTraces makes errors sent to peers carry Go stack traces. Off by
// default: a stack tells an attacker about the server.
func WithStackTraces(on bool) ServerOption {
	return serverOptionFunc(func(s *Server) { s.withStack = on })
}

// NewServer subscribes to the requests on b and serves them from reg.
func NewServer(b *bus.Bus, reg *Registry, opts ...ServerOption) (*Server, error) {
	s := &Server{
		reg:     reg,
		logger:  slog.New(slog.DiscardHandler),
		sem:     make(chan struct{}, 4096),
		perPeer: DefaultPeerConcurrency,
		tasks:   make(map[string]ConnTaskFunc),
		closed:  make(chan struct{}),
		jobs:    make(chan job),
	}
	for _, o := range opts {
		o.applyServer(s)
	}
	s.waiting = make(chan struct{}, max(cap(s.sem), int(s.perPeer)))
	s.drainCh = make(chan struct{})
	s.HandleTask("query_interface", s.queryInterface)
	s.HandleTask("abilities", s.abilities)
	s.handleCoreTasks()
	if err := s.watchDisconnects(b); err != nil {
		return nil, err
	}
	unsub, err := bus.NewTopic[transport.Inbound](b, transport.TopicRequests).SubscribeFunc(s.dispatch)
	if err != nil {
		s.unsubRefs()
		return nil, err
	}
	s.unsub = unsub
	return s, nil
}

// Registry returns the registry the server serves.
func (s *Server) Registry() *Registry { return s.reg }

// HandleTask registers (or replaces) the task name.
func (s *Server) HandleTask(name string, fn ConnTaskFunc) {
	s.mu.Lock()
	s.tasks[name] = fn
	s.mu.Unlock()
}

// Waiting returns how many requests wait for a slot: the node runs as
// many as it may (WithConcurrency) and they wait in their connections'
// queues.
func (s *Server) Waiting() int { return len(s.waiting) }

// Drain makes the server answer new requests with 503 (rpc.ErrUnavailable)
// and waits until the requests already running have finished, or ctx
// ends.
func (s *Server) Drain(ctx context.Context) error {
	s.draining.Store(true)
	s.drainOnce.Do(func() { close(s.drainCh) })
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.active.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops taking requests and waits for the running ones.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.startMu.Lock() // no dispatch is between its check and wg.Add
		close(s.closed)
		s.startMu.Unlock()
		s.unsub()
		s.unsubRefs()
	})
	s.wg.Wait()
	return nil
}

// dispatch runs in the connection's reader goroutine: it takes a slot and
// hands the request to a goroutine of its own. A request over its peer's
// limit is refused right here, before it can take a slot: a peer that
// floods requests and stops reading its replies must not use up the
// node's slots with its refusals. The limit counts the peer's requests
// running or waiting for a slot and the senders waiting for room in its
// outbound queue (replies it has not read yet hold their workers and
// slots).
//
// When the node runs as many requests as it may, the request joins its
// connection's queue, which one goroutine per connection feeds to the
// slots in order: the reader goes on reading the connection, whose pongs,
// responses, stream chunks and credit the running requests may be waiting
// for, and connections with waiting requests take the slots that free in
// turn. The node holds at most as many waiting requests as it may run, or
// as one peer may have, whichever is more; past that, a request is refused
// at once with a 429 error, as over the per-peer limit: holding the reader
// instead would stop the pongs and the responses the running requests may
// wait for.
func (s *Server) dispatch(_ context.Context, in transport.Inbound) {
	if in.Refused {
		// Its message did not fit the node's inbound memory: read and
		// dropped by the connection.
		s.refused(503, "memory")
		s.answer(in.Conn, &in.Packet, nil, errNoMemory(in.Conn.Memory(), int64(in.Message), "its message"), false)
		return
	}
	st := connRequestsOf(in.Conn)
	if s.obs != nil && in.Packet.Type() == wire.TypeCall {
		st.calls.Add(1)
	}
	if st.inflight.Add(1)+int32(in.Conn.Waiting()) > s.perPeer {
		st.inflight.Add(-1)
		s.refused(429, "peer")
		s.answer(in.Conn, &in.Packet, nil, &rpc.Error{Code: 429, Name: "TitanError",
			Message: fmt.Sprintf("too many concurrent requests (limit %d per peer)", s.perPeer),
			Details: map[string]any{"limit": s.perPeer}}, false)
		return
	}
	held, ok := in.Conn.Keep(&in)
	if !ok {
		st.inflight.Add(-1)
		s.refused(503, "memory")
		s.answer(in.Conn, &in.Packet, nil, errNoMemory(in.Conn.Memory(), int64(len(in.Packet.Data)), "its data"), false)
		return
	}
	refs := s.announceStreams(&in)
	st.mu.Lock()
	if len(st.queue) == 0 {
		select {
		case s.sem <- struct{}{}:
			st.mu.Unlock()
			s.start(queued{in, held, refs}, &st.inflight)
			return
		default:
		}
	}
	select {
	case s.waiting <- struct{}{}:
	default:
		st.mu.Unlock()
		st.inflight.Add(-1)
		held.Release()
		s.forgetStreams(refs)
		s.refused(429, "node")
		s.answer(in.Conn, &in.Packet, nil, &rpc.Error{Code: 429, Name: "TitanError",
			Message: fmt.Sprintf("node overloaded: %d requests running and %d waiting", cap(s.sem), cap(s.waiting)),
			Details: map[string]any{"limit": cap(s.sem) + cap(s.waiting)}}, false)
		return
	}
	st.queue = append(st.queue, queued{in, held, refs})
	feed := !st.feeding
	st.feeding = true
	st.mu.Unlock()
	if feed {
		s.startFeed(st, in.Conn)
	}
}

// queued is a request on its way to a worker, with the inbound memory
// it holds (see transport.Conn.Keep).
type queued struct {
	in   transport.Inbound
	held transport.Kept
	refs []*streamcore.Inbound // stream arguments registered as it was read
}

// errNoMemory refuses a request that does not fit the node's inbound
// memory (transport.WithInboundMemory): need bytes for what. Its text is made
// before anything the request held is given back.
func errNoMemory(mem *transport.Memory, need int64, what string) error {
	msg := fmt.Sprintf("node out of memory for requests: %s needs %d bytes, %d of %d in use", what, need, mem.Used(), mem.Limit())
	if need <= 0 {
		msg = fmt.Sprintf("node out of memory for requests: no room for %s, %d of %d bytes in use", what, mem.Used(), mem.Limit())
	}
	return &rpc.Error{Code: 503, Name: "TitanError", Message: msg,
		Details: map[string]any{"reason": "InboundMemory", "limit": mem.Limit()}}
}

// maxBudgetStrikes is how many requests of one connection may go over
// their decode budget (wire.ErrBudget: the request's own data, not a
// handler's error) with no successful request in between before the
// connection is closed (1008).
const maxBudgetStrikes = 3

// connRequests is the server's state of one connection.
type connRequests struct {
	inflight atomic.Int32  // requests running or waiting, for the per-peer limit
	calls    atomic.Uint64 // CALLs received, counted when the server observes
	strikes  atomic.Int32  // requests over their decode budget since the last success
	mu       sync.Mutex
	queue    []queued // waiting for a slot, in order; each holds a token of s.waiting
	feeding  bool     // a goroutine feeds queue to the slots
}

type connRequestsKey struct{}

func connRequestsOf(conn *transport.Conn) *connRequests {
	if v, ok := conn.Value(connRequestsKey{}); ok {
		return v.(*connRequests)
	}
	v, _ := conn.LoadOrStoreValue(connRequestsKey{}, new(connRequests))
	return v.(*connRequests)
}

// startFeed starts the goroutine that feeds st's queue to the slots,
// unless the server has closed: then the queue is refused.
func (s *Server) startFeed(st *connRequests, conn *transport.Conn) {
	s.startMu.RLock()
	defer s.startMu.RUnlock()
	select {
	case <-s.closed:
		s.dropQueue(st, true)
		return
	default:
	}
	s.wg.Add(1)
	go s.feed(st, conn)
}

// feed starts the requests of st's queue, in order, as slots free; it
// ends when the queue is empty. While the server drains, the queue is
// answered 503 at once, without slots; when the connection or the server
// closes, it is dropped (refused, if the connection is still open).
func (s *Server) feed(st *connRequests, conn *transport.Conn) {
	defer s.wg.Done()
	for {
		st.mu.Lock()
		if len(st.queue) == 0 {
			st.feeding = false
			st.queue = nil // let a burst's queue go
			st.mu.Unlock()
			return
		}
		st.mu.Unlock()
		if s.draining.Load() {
			s.dropQueue(st, true)
			return
		}
		select {
		case s.sem <- struct{}{}:
		case <-s.drainCh:
			s.dropQueue(st, true)
			return
		case <-conn.Done():
			s.dropQueue(st, false)
			return
		case <-s.closed:
			s.dropQueue(st, true)
			return
		}
		q := st.pop()
		<-s.waiting
		s.start(q, &st.inflight)
	}
}

// pop takes the first request of the queue, which is not empty.
func (st *connRequests) pop() queued {
	st.mu.Lock()
	defer st.mu.Unlock()
	q := st.queue[0]
	st.queue[0] = queued{}
	st.queue = st.queue[1:]
	return q
}

// dropQueue forgets the requests waiting in st's queue, and with refuse
// answers them 503 (the server drains or closed; their connection may
// still be open). It answers without waiting for room: Close may be
// waiting for the feed, and a peer that does not read gets no answer.
func (s *Server) dropQueue(st *connRequests, refuse bool) {
	st.mu.Lock()
	queue := st.queue
	st.queue = nil
	st.feeding = false
	st.mu.Unlock()
	for _, q := range queue {
		st.inflight.Add(-1)
		<-s.waiting
		q.held.Release()
		s.forgetStreams(q.refs)
		if refuse {
			s.refused(503, "stopping")
			s.answer(q.in.Conn, &q.in.Packet, nil, errStopping(), false)
		}
	}
}

// errStopping is the answer to a request that comes while the node stops.
func errStopping() error {
	return &rpc.Error{Code: 503, Name: "TitanError", Message: "node stopping"}
}

// start runs the request of in, for which a slot was taken, on an idle
// worker or a new one.
func (s *Server) start(q queued, inflight *atomic.Int32) {
	s.active.Add(1) // before the check, so Drain cannot miss this request
	draining := s.draining.Load()
	if draining {
		s.active.Add(-1)
	}
	j := job{in: q.in, held: q.held, refs: q.refs, inflight: inflight, draining: draining}
	// A dispatch the bus runs while Close unsubscribes may have taken a
	// slot although closed was closed (select picks at random): it must
	// not start a worker once Close waits for them.
	s.startMu.RLock()
	defer s.startMu.RUnlock()
	select {
	case <-s.closed:
		if !draining {
			s.active.Add(-1)
		}
		inflight.Add(-1)
		q.held.Release()
		s.forgetStreams(q.refs)
		<-s.sem
		return
	default:
	}
	select {
	case s.jobs <- j: // an idle worker takes it
	default:
		s.wg.Add(1)
		go s.worker(j)
	}
}

// job is one request on its way to a worker.
type job struct {
	in       transport.Inbound
	held     transport.Kept        // inbound memory its message holds (see transport.Conn.Keep)
	refs     []*streamcore.Inbound // stream arguments registered as it was read
	inflight *atomic.Int32
	draining bool
	// acct is the decode budget of its data, which draws from its
	// connection's inbound memory as decoding goes on (see serve). It lives
	// in the job, which lives in its worker: no allocation per request.
	acct wire.Account
	// call observes the request when the server has an observer.
	call serverCall
}

// workerIdle is how long a worker waits for another request before it
// exits: it exits once it has run none for a whole workerIdle, so after
// between one and two of them.
var workerIdle = 10 * time.Second // a variable for tests

// worker runs requests. Workers outlive their request for a while and take
// the next one, so a request costs a hand-off to a parked goroutine whose
// stack has already grown, not a new goroutine; their number is bounded by
// the concurrency limit. Idleness is checked by a timer every workerIdle
// that looks at a count, not by a timer reset for every request and waited
// on each time the worker parks: that one cost sequential calls 1–3 %.
func (s *Server) worker(j job) {
	defer s.wg.Done()
	w := &workerClock{idle: workerIdle, quit: make(chan struct{}), closed: s.closed}
	w.t = time.AfterFunc(w.idle, w.check)
	defer w.t.Stop()
	for {
		w.runs.Add(1) // odd while it runs one
		s.run(&j)
		w.runs.Add(1)
		select {
		case j = <-s.jobs:
		case <-w.quit:
			return
		case <-s.closed:
			return
		}
	}
}

// workerClock tells an idle worker to exit.
type workerClock struct {
	t      *time.Timer
	idle   time.Duration
	runs   atomic.Uint64 // requests the worker started and ended
	seen   uint64        // runs at the last check; only check uses it
	quit   chan struct{}
	closed <-chan struct{}
}

// check closes quit when the worker started and ended no request since
// the last check and runs none, and else checks again after workerIdle.
// It reads t only after seeing a count the worker added after setting t.
func (w *workerClock) check() {
	select {
	case <-w.closed:
		return
	default:
	}
	if n := w.runs.Load(); n != w.seen || n%2 == 1 {
		w.seen = n
		w.t.Reset(w.idle)
		return
	}
	close(w.quit)
}

// run answers the request of j. The peer's in-flight count drops before
// the reply is sent: a caller that got its reply and calls again must not
// find the finished call still counted against its limit.
func (s *Server) run(j *job) {
	defer func() {
		if !j.draining {
			s.active.Add(-1)
		}
		<-s.sem
	}()
	if j.draining {
		j.inflight.Add(-1) // (serve does it for a request it runs)
		j.held.Release()
		s.forgetStreams(j.refs)
		s.refused(503, "stopping")
		_ = s.reply(j.in.Conn, &j.in.Packet, nil, errStopping())
		return
	}
	s.serve(j)
}

// reply sends the response to p: result, or err as an error response. It
// returns why the response could not be queued, if it could not.
func (s *Server) reply(conn *transport.Conn, p *wire.Packet, result any, err error) error {
	_, serr := s.answerTraced(conn, p, result, err, true, trace.SpanContext{})
	return serr
}

// answer encodes the response to p and queues it. With wait it waits for
// room in the connection's outbound queue, like any sender; without, it
// drops the response when the queue is full (the peer is not reading it
// anyway) and never blocks: the reader goroutine answers this way.
func (s *Server) answer(conn *transport.Conn, p *wire.Packet, result any, err error, wait bool) error {
	_, serr := s.answerTraced(conn, p, result, err, wait, trace.SpanContext{})
	return serr
}

// answerTraced is answer that puts the ids of span, when valid, in the
// error it sends, and returns the size of the reply packet.
func (s *Server) answerTraced(conn *transport.Conn, p *wire.Packet, result any, err error, wait bool, span trace.SpanContext) (int, error) {
	flags := wire.Flags(p.Type(), false, 0)
	fb := getBuf()
	frame := wire.AppendHeader(fb.b, p.ID, flags)
	if err == nil {
		frame, err = wire.AppendMarshal(frame, result)
		if err != nil {
			err = &rpc.Error{Code: 500, Name: "TitanError", Message: "cannot encode the result: " + err.Error()}
			frame = wire.AppendHeader(fb.b[:0], p.ID, flags)
		}
	}
	if err != nil {
		frame[4] |= wire.FlagError
		var e2 error
		werr := toWire(err, s.withStack)
		if te, ok := werr.(wire.TitanError); ok && span.IsValid() {
			te.TraceID, te.SpanID = span.TraceID().String(), span.SpanID().String()
			werr = te
		}
		if frame, e2 = wire.AppendMarshal(frame, werr); e2 != nil {
			s.logger.Error("netron: cannot encode an error reply", "peer", conn.ID(), "request_id", p.ID, "err", e2)
			fb.put(frame)
			return 0, e2
		}
	}
	size := len(frame)
	var serr error
	if wait {
		serr = conn.Send(conn.Context(), frame, fb.release)
	} else {
		serr = conn.Queue(noWait, frame, fb.release)
	}
	if serr != nil { // the buffer is not reused: the connection may hold it after all
		s.logger.Debug("netron: reply not sent", "peer", conn.ID(), "request_id", p.ID, "err", serr)
		return size, serr
	}
	return size, nil
}

// noWait is a context that has ended: Queue with it takes a packet only if
// the queue has room.
var noWait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// serve runs the request p and replies. The request stops counting against
// its peer's limit (inflight) once it has run; a reply that then waits for
// room in the peer's outbound queue counts as a waiting sender (see
// dispatch).
//
// The request holds j.held of the node's inbound memory (its message)
// from its arrival. Its data is decoded through an account that
// takes from the same memory as decoding goes on (wire.Account), up to the
// decode budget of the data; a request whose decoding does not fit is
// refused with 503. Once its arguments are decoded it keeps what decoding
// charged (what they take) until the reply is sent, or, for a method that
// streams, until its stream ends.
//
// A request whose own data went over its budget (wire.ErrBudget, not an
// error its handler returned) is a strike against its connection; a
// successful request clears them, and the maxBudgetStrikes-th in a row
// closes the connection.
func (s *Server) serve(j *job) {
	conn, p := j.in.Conn, &j.in.Packet
	j.acct.Reset(conn, conn.MaxDecodeMemory())
	var sc *serverCall
	if s.obs != nil {
		sc = &j.call
		sc.id = p.ID
	}
	result, err := s.handle(conn.Context(), conn, p, &j.acct, sc)
	j.acct.Shrink()
	msg, args := j.held, j.acct.Held()
	j.held = transport.Kept{}
	over := j.acct.OverBudget()
	j.acct.Reset(nil, 0)
	s.forgetStreams(j.refs) // those it did not open
	j.inflight.Add(-1)
	// Strikes are counted before the reply goes out: the peer's next
	// request, sent once it has the reply, must find them counted.
	st := connRequestsOf(conn)
	var strikes int32
	switch {
	case over:
		strikes = st.strikes.Add(1)
	case err == nil && st.strikes.Load() != 0:
		st.strikes.Store(0)
	}
	ps, _ := result.(*pendingStream)
	if ps != nil {
		result = ps.reference() // the producer starts once the reply is queued
		ps.release = func() { msg.Release(); conn.Release(args) }
	}
	var sent error
	if sc != nil && sc.on {
		var n int
		n, sent = s.answerTraced(conn, p, result, err, true, sc.spanContext())
		sc.end(s.obs, err, len(p.Data)+wire.HeaderSize, n)
	} else {
		sent = s.reply(conn, p, result, err)
	}
	if ps != nil {
		if err == nil && sent == nil {
			ps.start()
		} else {
			ps.abort(errors.Join(err, sent))
		}
	} else {
		msg.Release()
		conn.Release(args)
	}
	if strikes >= maxBudgetStrikes {
		s.logger.Warn("netron: closing a connection whose requests keep exceeding their decode budget", "peer", conn.ID(), "refused", strikes)
		conn.ClosePolicyAfterWrites(fmt.Sprintf("%d requests over their decode budget", strikes))
	}
	s.closeAfterAuth(conn, result)
}

// handle decodes and runs the request p, its data decoded through acct.
// It shrinks acct to what decoding charged once a CALL's arguments are
// decoded, before its method runs (a TASK decodes its arguments as it
// runs: serve shrinks it after).
func (s *Server) handle(ctx context.Context, conn *transport.Conn, p *wire.Packet, acct *wire.Account, sc *serverCall) (any, error) {
	if conn.Anonymous() {
		if err := s.refuseAnonymous(conn, p); err != nil {
			return nil, err
		}
	}
	dec := wire.NewDecoderAccount(p.Data, acct)
	defer wire.ReleaseDecoder(dec)
	return s.handleData(ctx, conn, p, dec, acct, sc)
}

func (s *Server) handleData(ctx context.Context, conn *transport.Conn, p *wire.Packet, dec *msgpack.Decoder, acct *wire.Account, sc *serverCall) (any, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, badRequest("Malformed", fmt.Sprintf("%s data must be an array", p.Type()), nil)
	}
	switch p.Type() {
	case wire.TypeCall:
		res, err := s.call(ctx, conn, p.ID, dec, n, acct, sc)
		if rt, ok := res.(relayTo); ok {
			return s.forward(ctx, conn, rt.e, p)
		}
		return res, err
	case wire.TypeTask:
		if n < 1 {
			return nil, badRequest("Malformed", "TASK data must start with the task name", nil)
		}
		name, err := wire.DecodeString(dec)
		if err != nil {
			return nil, badRequest("Malformed", "TASK name must be a string", nil)
		}
		s.mu.RLock()
		fn := s.tasks[name]
		s.mu.RUnlock()
		if fn == nil {
			return nil, notFound("Task", name, fmt.Sprintf("Task with id %s not found", name))
		}
		return safeTask(ctx, fn, conn, newArgs(dec, n-1, func(err error) error { return argError(conn, "task argument", -1, err) }),
			s.logger, p.ID, name)
	case wire.TypeGet, wire.TypeSet:
		res, err := s.property(ctx, conn, p.Type(), dec, n)
		if rt, ok := res.(relayTo); ok {
			return s.forward(ctx, conn, rt.e, p)
		}
		return res, err
	}
	return nil, badRequest("Malformed", fmt.Sprintf("unexpected %s request", p.Type()), nil)
}

// call decodes [target, method, ...args] and runs the method. From a Go
// peer that agreed to obs.ExtensionTrace the data may start with the
// caller's trace context: [traceparent, target, method, ...args]. With sc
// (the server observes) the call of a method it found is observed.
func (s *Server) call(ctx context.Context, conn *transport.Conn, id uint32, dec *msgpack.Decoder, n int, acct *wire.Account, sc *serverCall) (any, error) {
	var parent trace.SpanContext
	if n > 2 && hasTraceparent(dec, conn) {
		var ok bool
		if parent, ok = readTraceparent(dec); !ok {
			return nil, badRequest("Malformed", "CALL trace context must be a W3C traceparent (ext 20)", nil)
		}
		n--
	}
	if n < 2 {
		return nil, badRequest("Malformed", "CALL data must be [defId, method, ...args]", nil)
	}
	// The target and the method are looked up in the packet's bytes,
	// not decoded into strings (two allocations per call): the names
	// passed on are the registry's own.
	target, err := wire.DecodeStringBytes(dec)
	if err != nil {
		return nil, badRequest("Malformed", "CALL target must be a string", nil)
	}
	e := s.reg.targetForBytes(conn, target)
	if e == nil || !s.allowed(ctx, conn, e.qn, "") {
		if sc != nil { // counted under other: the names are the peer's
			sc.begin(ctx, s.obs, conn, parent, obs.Other, nil)
		}
		return nil, notFound("Service", string(target), fmt.Sprintf("Service with id %s not found", target))
	}
	nameBytes, err := wire.DecodeStringBytes(dec)
	if err != nil {
		return nil, badRequest("Malformed", "CALL method must be a string", nil)
	}
	if e.relay != nil && s.allowed(ctx, conn, e.qn, string(nameBytes)) {
		return relayTo{e}, nil // published by a peer (exposure.go)
	}
	m := e.methods[string(nameBytes)]
	if m == nil || !s.allowed(ctx, conn, e.qn, m.name) {
		name := string(nameBytes)
		if sc != nil {
			sc.begin(ctx, s.obs, conn, parent, e.qn, nil)
		}
		return nil, notFound("Method", e.qn+"."+name, fmt.Sprintf("Method '%s.%s' not found", e.qn, name))
	}
	if sc != nil {
		ctx = sc.begin(ctx, s.obs, conn, parent, e.qn, m)
	}
	result, err := invoke(ctx, callEnv{conn: conn, request: id, streams: s.streams, logger: s.logger, acct: acct, reg: s.reg, tracer: s.tracer()}, e, m, dec, n-2)
	if err != nil {
		return nil, err
	}
	return s.reg.result(conn, e, result)
}

// invoke decodes nargs arguments for m from dec and calls it, turning a
// panic into an internal error. A streaming method's result is a
// *pendingStream, whose reply is its StreamReference.
func invoke(ctx context.Context, env callEnv, e *exposed, m *method, dec *msgpack.Decoder, nargs int) (result any, err error) {
	logger := env.logger
	if nargs != len(m.args) {
		return nil, badRequest("ArgumentCount",
			fmt.Sprintf("%s.%s takes %d arguments, got %d", e.qn, m.name, len(m.args), nargs),
			map[string]any{"want": len(m.args), "got": nargs})
	}
	var sc *streamCall
	if m.streaming() || m.readers > 0 {
		if sc, err = env.beginStreams(m); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil || !m.streaming() {
				sc.abort(err)
			}
		}()
		if sc.out != nil {
			ctx = sc.startStream(ctx, e, m) // the producer lives as long as its stream
		}
	}
	// The receiver, ctx and up to 6 arguments without an allocation (Call
	// does not keep in; writerStream, which does, copies it).
	var inBuf [8]reflect.Value
	in := append(inBuf[:0], m.rcvr)
	if m.hasCtx {
		in = append(in, reflect.ValueOf(ctx))
	}
	var block reflect.Value
	if m.argBlock != nil {
		block = reflect.New(m.argBlock).Elem()
	}
	for i, t := range m.args {
		if m.readers > 0 && streamcore.T().IsReader(t) {
			v, err := sc.reader(dec, t, e, m, i)
			if err != nil {
				return nil, err
			}
			in = append(in, v)
			continue
		}
		if refParam(t) {
			if x, ok := wire.NextExt(dec); ok && x == wire.ExtReference {
				v, err := env.reference(dec, t, e, m, i)
				if err != nil {
					return nil, err
				}
				in = append(in, v)
				continue
			}
		}
		var v reflect.Value
		if block.IsValid() {
			v = block.Field(i)
		} else {
			v = reflect.New(t).Elem()
		}
		if err := wire.DecodeArg(dec, v); err != nil {
			return nil, argError(env.conn, fmt.Sprintf("%s.%s argument %d: want %s", e.qn, m.name, i+1, t), i, err) // the message counts from 1, the index (as in the definition) from 0
		}
		in = append(in, v)
	}
	if env.acct != nil {
		env.acct.Shrink()
	}
	if m.writer != nil {
		return sc.writerStream(m, slices.Clone(in)), nil // runs once the reply is out
	}
	defer func() {
		if r := recover(); r != nil {
			logger.Error("netron: handler panicked", append(env.callAttrs(e.qn, m.name), "panic", r, "stack", string(debug.Stack()))...)
			result, err = nil, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("internal error in %s.%s", e.qn, m.name)}
		}
	}()
	out := m.fn.Call(in)
	if m.hasErr {
		if errv := out[len(out)-1]; !errv.IsNil() {
			return nil, errv.Interface().(error)
		}
	}
	if m.source {
		return sc.sourceStream(e, m, out[0])
	}
	if m.hasOut {
		return out[0].Interface(), nil
	}
	return nil, nil
}

// argError is the error of an argument from conn (nil: a local call)
// that did not decode: 400 with the reason DecodeBudget when it would have
// taken more memory than its packet's budget (wire.ErrBudget),
// ArgumentType otherwise; 503 InboundMemory when the node's inbound memory
// had no room for decoding it (wire.ErrNoMemory).
func argError(conn *transport.Conn, what string, index int, err error) error {
	if errors.Is(err, wire.ErrNoMemory) && conn != nil {
		return errNoMemory(conn.Memory(), 0, "decoding "+what)
	}
	reason := "ArgumentType"
	if errors.Is(err, wire.ErrBudget) {
		reason = "DecodeBudget"
	}
	var details map[string]any
	if index >= 0 {
		details = map[string]any{"index": index}
	}
	return badRequest(reason, what+": "+err.Error(), details)
}

func safeTask(ctx context.Context, fn ConnTaskFunc, conn *transport.Conn, args *rpc.Args, logger *slog.Logger, id uint32, task string) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			attrs := []any{"task", task, "panic", r, "stack", string(debug.Stack())}
			if conn != nil {
				attrs = append([]any{"peer", conn.ID(), "request_id", id}, attrs...)
			}
			logger.Error("netron: task panicked", attrs...)
			result, err = nil, &rpc.Error{Code: 500, Name: "TitanError", Message: "internal error in task"}
		}
	}()
	return fn(ctx, conn, args)
}

func (s *Server) queryInterface(ctx context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	var name string
	if err := args.Next(&name); err != nil {
		return nil, err
	}
	e, err := s.reg.resolve(name)
	if err != nil {
		return nil, err
	}
	if !s.allowed(ctx, conn, e.qn, "") {
		return nil, serviceNotFound(name)
	}
	return e.def, nil
}

// Abilities is what the abilities task exchanges: the old Netron package's
// {services, allowServiceEvents} plus our negotiated extensions.
type Abilities struct {
	Services           map[string]wire.Definition `msgpack:"services,omitempty"`
	AllowServiceEvents bool                       `msgpack:"allowServiceEvents"`
	// NetronGo is present only between Go peers.
	NetronGo *GoAbilities `msgpack:"netronGo,omitempty"`
}

// GoAbilities advertises the protocol extensions of a Go peer.
type GoAbilities struct {
	Version    int      `msgpack:"version"`
	Extensions []string `msgpack:"extensions"`
}

// ProtocolVersion is the netron-go extension protocol version.
const ProtocolVersion = 1

// extensions this build supports, in preference order.
var supportedExtensions = []string{ExtensionEvents, streamcore.Extension, transport.ExtensionBatch, obs.ExtensionTrace}

func (s *Server) abilities(ctx context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	var remote Abilities
	if args.Len() > 0 {
		if err := args.Next(&remote); err != nil {
			remote = Abilities{}
		}
	}
	if conn != nil && remote.NetronGo != nil {
		conn.SetExtensions(&transport.Extensions{Version: remote.NetronGo.Version, Names: intersect(supportedExtensions, remote.NetronGo.Extensions)})
	}
	services := s.reg.Definitions()
	for qn := range services {
		if !s.allowed(ctx, conn, qn, "") {
			delete(services, qn)
		}
	}
	return Abilities{
		Services:           services,
		AllowServiceEvents: true,
		NetronGo:           &GoAbilities{Version: ProtocolVersion, Extensions: supportedExtensions},
	}, nil
}

func intersect(ours, theirs []string) []string {
	var out []string
	for _, o := range ours {
		for _, t := range theirs {
			if o == t {
				out = append(out, o)
				break
			}
		}
	}
	return out
}
