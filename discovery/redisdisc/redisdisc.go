package redisdisc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
)

// maxExpiries bounds the nodes one heartbeat expires; more wait for the
// next heartbeat (of any instance).
const maxExpiries = 100

// Discovery is the Redis Streams backend of discovery.Discovery. See the
// package documentation for the design. It is safe for concurrent use.
type Discovery struct {
	client  redis.UniversalClient // the caller's unless ownClient
	cfg     config
	log     *slog.Logger
	wmLog   watermill.LoggerAdapter
	alive   string // the four keys; see scripts.go
	nodes   string
	events  string
	meta    string
	keys    []string // alive, nodes, events, meta: the order of the scripts
	started time.Time
	view    *discovery.View

	watches *discovery.WatchGroup

	// regMu serialises what this instance writes about its own nodes
	// (announcements, leaves, heartbeats), so that revisions reach Redis in
	// order and a heartbeat never re-adds a node being deregistered. It is
	// taken within a context, so that a frozen Redis cannot hold a
	// Deregister or a Close past its deadline.
	regMu ctxMutex

	// inc is the instance's incarnation (see Discovery.incarnation), 0
	// until it first reached Redis.
	inc atomic.Int64

	mu     sync.Mutex // guards owned (and their entries), seq, closed, suspect
	owned  map[string]*ownedNode
	seq    uint64
	closed bool
	// suspect holds the nodes of the view that a resync after Redis lost
	// data did not find in Redis, with when they leave the view (a TTL
	// later) unless an announcement confirms them first. A node Redis lost
	// (a restart, a failover) is announced again by its instance within a
	// heartbeat; one whose leave was lost too is gone.
	suspect map[string]time.Time

	healthy  atomic.Bool
	down     atomic.Bool // the loop's last Redis round trip failed
	stopping atomic.Bool
	synced   chan struct{} // closed after the first snapshot
	kick     chan struct{} // wakes the loop for an early retry
	resync   chan struct{} // asks the loop for a resync (the reader saw a gap)
	stop     chan struct{} // closed by Close and Kill
	stopCtx  context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	closeErr error

	// The stream reader. sub and readerDone are owned by the loop
	// goroutine; the reader writes lastGen, skipped and sawLoss, the loop
	// reads them.
	sub        *redisstream.Subscriber
	readerDone chan struct{}
	lastResync time.Time
	lastGen    atomic.Int64 // number of the last change applied
	skipped    atomic.Int64 // changes the reader jumped over since the last sync
	sawLoss    atomic.Bool  // the change numbers went back: Redis lost changes
	needResync atomic.Bool  // the last resync failed: the next heartbeat retries it
	resyncs    atomic.Int64
	errors     atomic.Int64 // failed Redis operations of the background loop (Errors)
	reconnects atomic.Int64 // Redis answered again after failures (Reconnects)

	// Counters for tests and measurements.
	beats       atomic.Int64 // successful heartbeats
	probes      atomic.Int64 // extra heartbeats run at a node's deadline
	probesSaved atomic.Int64 // probes not run: the node had already left
	nextRegular atomic.Int64 // the next regular heartbeat, Unix ns

	ownClient bool          // made by Connect: Close closes client
	xreads    *xreadCounter // ownClient only: XREADs in flight
}

type ownedNode struct {
	entry     entry // its incarnation is 0 until the instance reached Redis
	announced bool  // false while the last announcement has not reached Redis
}

// ctxMutex is a mutex that can be waited for within a context.
type ctxMutex chan struct{}

func (m ctxMutex) lock(ctx context.Context) error {
	select {
	case m <- struct{}{}:
		return nil
	default:
	}
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m ctxMutex) unlock() { <-m }

var _ discovery.Discovery = (*Discovery)(nil)

// New returns a Discovery that uses client and starts its background
// goroutine, which reads the current members from Redis (retrying with
// backoff while Redis is unreachable) and then follows the stream.
//
// client may be any go-redis UniversalClient: a single server, Sentinel
// (redis.NewFailoverClient) or Cluster (redis.NewClusterClient); every key
// of one prefix lives in one hash slot. New never closes client:
// watermill-redisstream closes the client it is given, so it gets client
// behind a wrapper whose Close does nothing. The stream reader's blocking
// XREAD holds one connection of client's pool. Set ContextTimeoutEnabled in
// client's options: the instance bounds every Redis round trip with a
// context, and go-redis honours those bounds only then (Connect does it for
// the clients it makes); New logs a warning when a client's options do
// not set it.
func New(client redis.UniversalClient, opts ...Option) (*Discovery, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.finish(); err != nil {
		return nil, err
	}
	log := cfg.logger.With("component", "discovery", "backend", "redis", "prefix", cfg.prefix)
	base := hashTagged(cfg.prefix)
	d := &Discovery{
		client:  client,
		cfg:     cfg,
		log:     log,
		wmLog:   watermillLogger(cfg.logger),
		alive:   base + ":alive",
		nodes:   base + ":nodes",
		events:  base + ":events",
		meta:    base + ":meta",
		started: time.Now(),
		view:    discovery.NewView(),
		regMu:   make(ctxMutex, 1),
		owned:   make(map[string]*ownedNode),
		suspect: make(map[string]time.Time),
		synced:  make(chan struct{}),
		kick:    make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	d.keys = []string{d.alive, d.nodes, d.events, d.meta}
	if on, known := contextTimeouts(client); known && !on {
		log.Warn("discovery: the redis client's options do not set ContextTimeoutEnabled; a Redis that stops answering then holds Deregister and Close past their deadlines, for the client's read timeout and retries")
	}
	d.watches = d.view.NewWatchGroup()
	d.stopCtx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.loop()
	return d, nil
}

// contextTimeouts reports whether client honours the deadlines of its
// commands' contexts (ContextTimeoutEnabled), when its options say.
func contextTimeouts(client redis.UniversalClient) (on, known bool) {
	switch c := client.(type) {
	case *redis.Client: // a single server, or Sentinel's failover client
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}

// hashTagged returns prefix as the common part of the keys: as it is when
// it has a Redis Cluster hash tag ("{…}" with something inside), else in
// braces, so that every key of the prefix hashes to one slot.
func hashTagged(prefix string) string {
	if i := strings.IndexByte(prefix, '{'); i >= 0 {
		if j := strings.IndexByte(prefix[i+1:], '}'); j > 0 {
			return prefix
		}
	}
	return "{" + prefix + "}"
}

// Healthy reports whether the last Redis round trip of the background loop
// succeeded. While it is false the instance keeps its last view.
func (d *Discovery) Healthy() bool { return d.healthy.Load() }

// Resyncs returns how many times the instance re-read the whole membership
// after its start: when its stream reader missed entries (the stream was
// trimmed past it, or a failover lost them), when Redis lost its data, or
// when the reader stopped moving. Each costs one read of every entry.
func (d *Discovery) Resyncs() int64 { return d.resyncs.Load() }

// Errors returns how many Redis operations of the instance's background
// loop failed: heartbeats (and the first read of the membership), resyncs
// and announcements made again. Register and Deregister report their
// failures to their callers instead.
func (d *Discovery) Errors() int64 { return d.errors.Load() }

// Reconnects returns how many times Redis answered the background loop
// again after it had failed: the ends of outages.
func (d *Discovery) Reconnects() int64 { return d.reconnects.Load() }

// Register implements discovery.Discovery. It writes the node to Redis and
// announces it on the stream (one script) before returning.
//
// A node id is held by one instance at a time. A holder that has
// heartbeated within 1.5 of its heartbeat intervals (by the Redis clock)
// is live: a live node beats every interval, so it is never taken over,
// whatever its address. When another instance holds the id, Register
// waits, within ctx, until the holder has been silent that long, and then
// takes the id over: that is a node restarted after a crash, whose old
// registration has not expired yet. If the holder beats meanwhile, or ctx
// ends first, Register changes nothing and fails with an error wrapping
// discovery.ErrDuplicateID that names the holder's address; a wait that
// would outlast ctx's deadline is not started: Register fails at once.
//
// A node whose entry would exceed maxEntrySize fails with
// discovery.ErrInvalidNode. If Redis cannot be reached it returns an error
// wrapping discovery.ErrUnavailable, but the registration is kept: the
// background loop announces it as soon as Redis is back (and then logs an
// error if the id turned out to be taken; call Deregister to drop it).
func (d *Discovery) Register(ctx context.Context, node discovery.NodeInfo) error {
	if err := discovery.ValidateNode(node); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	node = node.Clone()
	node.LastSeen = time.Time{}
	waited := int64(-1) // the holder's last heartbeat when this call waited for it
	for attempt := 0; ; attempt++ {
		taken, err := d.register(ctx, node)
		if taken == nil {
			return err
		}
		if waited >= 0 && taken.last != waited || attempt == 3 {
			return taken.err(node.ID, waited >= 0 && taken.last != waited)
		}
		wait := taken.silentIn + time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return taken.err(node.ID, false)
		}
		d.log.Info("discovery: node id held by a registration that has not been silent long enough to be taken over; waiting",
			"registration", node.ID, "holder", taken.holder.Address, "wait", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return taken.err(node.ID, false)
		case <-d.stop:
			t.Stop()
			return ErrClosed
		}
		waited = taken.last
	}
}

// register is one attempt of Register: a *takenError when another instance
// holds the id, else Register's error.
func (d *Discovery) register(ctx context.Context, node discovery.NodeInfo) (*takenError, error) {
	if err := d.regMu.lock(ctx); err != nil {
		return nil, fmt.Errorf("redisdisc: register %q: %w", node.ID, err)
	}
	defer d.regMu.unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	prev := d.owned[node.ID]
	if prev != nil && prev.announced && prev.entry.Node.SameDetails(node) {
		d.mu.Unlock()
		return nil, nil
	}
	op := opJoin
	if prev != nil {
		op = opUpdate
	}
	d.seq++
	e := entry{Op: op, Node: node, TTL: d.cfg.ttl, Heartbeat: d.cfg.heartbeat, Rev: discovery.Revision{Incarnation: d.inc.Load(), Seq: d.seq}}
	if err := fits(e); err != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", discovery.ErrInvalidNode, err)
	}
	o := &ownedNode{entry: e}
	d.owned[node.ID] = o
	d.mu.Unlock()

	err := d.announce(ctx, o)
	var taken *takenError
	switch {
	case errors.As(err, &taken):
		d.mu.Lock()
		if d.owned[node.ID] == o {
			delete(d.owned, node.ID)
		}
		d.mu.Unlock()
		return taken, nil
	case err != nil:
		d.view.Put(node, d.cfg.ttl, d.revOf(o), time.Now())
		d.wake()
		return nil, fmt.Errorf("%w: register %q (kept; it is announced when Redis is back): %w", ErrUnavailable, node.ID, err)
	}
	d.view.Put(node, d.cfg.ttl, d.revOf(o), time.Now())
	return nil, nil
}

// fits checks that e, whose incarnation may not be known yet, encodes
// within maxEntrySize with any incarnation.
func fits(e entry) error {
	e.Rev.Incarnation = math.MaxInt64 // the longest
	_, err := encodeEntry(e)
	return err
}

// revOf returns the revision of o's entry.
func (d *Discovery) revOf(o *ownedNode) discovery.Revision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return o.entry.Rev
}

// incarnation returns the instance's incarnation, which orders its
// entries after those of every instance that reached Redis before it. It
// asks Redis the first time (see incScript): the Redis clock, in Unix
// nanoseconds to the microsecond, whose last three digits are the
// prefix's count of incarnations handed out. So the registrations of one
// node id by instances on different hosts are ordered by when each
// instance first reached Redis, whatever the clocks of the hosts.
//
// Callers that ask at once (the first Register and the first snapshot)
// do not wait for each other: each asks Redis, and the first answer
// stored is the incarnation (the other costs a count).
func (d *Discovery) incarnation(ctx context.Context) (int64, error) {
	if inc := d.inc.Load(); inc != 0 {
		return inc, nil
	}
	res, err := incScript.Run(ctx, d.client, d.keys).Slice()
	if err != nil {
		return 0, err
	}
	inc, err := parseInc(res)
	if err != nil {
		return 0, err
	}
	if d.inc.CompareAndSwap(0, inc) {
		return inc, nil
	}
	return d.inc.Load(), nil
}

// parseInc reads incScript's reply, {seconds, microseconds, count}, as an
// incarnation: seconds and microseconds in nanoseconds, plus the count
// modulo 1000. Whatever Redis returned, it never panics (see FuzzReplies).
func parseInc(res []any) (int64, error) {
	if len(res) == 3 {
		sec, ok1 := res[0].(int64)
		usec, ok2 := res[1].(int64)
		n, ok3 := res[2].(int64)
		if ok1 && ok2 && ok3 && sec > 0 && sec < math.MaxInt64/1_000_000_000 && usec >= 0 && usec < 1_000_000 && n > 0 {
			return sec*1_000_000_000 + usec*1000 + n%1000, nil
		}
	}
	return 0, fmt.Errorf("redisdisc: unexpected reply for an incarnation: %s", truncate(fmt.Sprint(res)))
}

// takenError is putScript's refusal: another instance holds the id and has
// not been silent long enough to be taken over.
type takenError struct {
	holder   discovery.NodeInfo
	hb       time.Duration // the holder's heartbeat interval
	left     time.Duration // until the holder's deadline
	silentIn time.Duration // until the holder counts as silent
	last     int64         // the holder's last heartbeat, Redis ms
}

func (e *takenError) Error() string { return "node id taken" }

// err is the error Register returns; beat says whether the holder was
// seen to heartbeat while Register waited.
func (e *takenError) err(id string, beat bool) error {
	where := "a client-only node (no address)"
	if e.holder.Address != "" {
		where = "the node at " + e.holder.Address
	}
	ago := max(e.hb*3/2-e.silentIn, 0).Round(time.Millisecond)
	if beat {
		return fmt.Errorf("%w: %q is held by %s, which heartbeated again while this node waited (%v ago): it is alive; stop it or choose another id",
			discovery.ErrDuplicateID, id, where, ago)
	}
	return fmt.Errorf("%w: %q is held by %s, which heartbeated %v ago and beats every %v (it can be taken over once it has been silent for %v; its registration expires within %v); stop it or choose another id",
		discovery.ErrDuplicateID, id, where, ago, e.hb, (e.hb * 3 / 2).Round(time.Millisecond), e.left.Round(time.Millisecond))
}

// announce writes o to Redis and the stream, with the instance's
// incarnation (which it gets first, the first time), each round trip
// within the operation timeout. regMu is held. A refusal is a
// *takenError.
func (d *Discovery) announce(ctx context.Context, o *ownedNode) error {
	ictx, cancel := context.WithTimeout(ctx, d.cfg.opTimeout)
	inc, err := d.incarnation(ictx)
	cancel()
	if err != nil {
		return err
	}
	ctx, cancel = context.WithTimeout(ctx, d.cfg.opTimeout)
	defer cancel()
	d.mu.Lock()
	o.entry.Rev.Incarnation = inc
	e := o.entry
	d.mu.Unlock()
	payload, err := encodeEntry(e)
	if err != nil {
		return err
	}
	id := e.Node.ID
	res, err := putScript.Run(ctx, d.client, d.keys,
		id, payload, strconv.FormatInt(inc, 10), d.cfg.ttl.Milliseconds(),
		d.cfg.maxLen, d.cfg.maxAge.Milliseconds(), watermill.NewUUID()).Slice()
	if err != nil {
		return err
	}
	taken, err := parsePut(res)
	if err != nil {
		return err
	}
	if taken != nil {
		if taken.holder.ID == "" {
			taken.holder.ID = id
		}
		return taken
	}
	d.mu.Lock()
	if d.owned[id] == o {
		o.announced = true
	}
	d.mu.Unlock()
	return nil
}

// parsePut reads putScript's reply: nil for {"ok", gen}, a *takenError for
// a refusal. Whatever Redis returned, it never panics (see FuzzReplies).
func parsePut(res []any) (*takenError, error) {
	bad := func() (*takenError, error) {
		return nil, fmt.Errorf("redisdisc: unexpected reply to an announcement: %s", truncate(fmt.Sprint(res)))
	}
	if len(res) == 0 {
		return bad()
	}
	switch res[0] {
	case "ok":
		if len(res) != 2 {
			return bad()
		}
		if _, ok := res[1].(int64); !ok {
			return bad()
		}
		return nil, nil
	case "taken":
		if len(res) != 5 {
			return bad()
		}
		raw, ok1 := res[1].(string)
		left, ok2 := res[2].(int64)
		silentIn, ok3 := res[3].(int64)
		last, ok4 := res[4].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 || left < 0 || silentIn < 0 || left > maxEntryTTL.Milliseconds() || silentIn > maxEntryTTL.Milliseconds() {
			return bad()
		}
		t := &takenError{
			left:     time.Duration(left) * time.Millisecond,
			silentIn: time.Duration(silentIn) * time.Millisecond,
			last:     last,
		}
		if e, err := decodeEntry([]byte(raw)); err == nil {
			t.holder, t.hb = e.Node, e.Heartbeat
			if t.hb == 0 {
				t.hb = e.TTL / 3
			}
		}
		return t, nil
	}
	return bad()
}

// Deregister implements discovery.Discovery. The node leaves the local view
// and stops being heartbeated at once; its removal from Redis, with the
// leave announcement, is tried up to three times within ctx (once while
// Redis is known to be unreachable). If that fails the error wraps
// discovery.ErrUnavailable, and the other instances report the node left
// when its TTL has passed.
func (d *Discovery) Deregister(ctx context.Context, nodeID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.regMu.lock(ctx); err != nil {
		// A write of this instance is stuck on Redis: drop the node here,
		// so that nothing heartbeats it; Redis expires it.
		d.mu.Lock()
		_, ok := d.owned[nodeID]
		delete(d.owned, nodeID)
		d.mu.Unlock()
		if !ok {
			return nil
		}
		d.view.Remove(nodeID, discovery.Revision{}, time.Now())
		return fmt.Errorf("%w: deregister %q: %w", ErrUnavailable, nodeID, err)
	}
	defer d.regMu.unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	return d.deregisterLocked(ctx, nodeID)
}

// deregisterLocked removes nodeID; regMu and mu are held, and mu is
// released.
func (d *Discovery) deregisterLocked(ctx context.Context, id string) error {
	o := d.owned[id]
	if o == nil {
		d.mu.Unlock()
		return nil
	}
	delete(d.owned, id)
	d.seq++
	inc := d.inc.Load()
	leave := entry{Op: opLeave, Node: discovery.NodeInfo{ID: id}, TTL: d.cfg.ttl, Heartbeat: d.cfg.heartbeat,
		Rev: discovery.Revision{Incarnation: inc, Seq: d.seq}}
	d.mu.Unlock()
	d.view.Remove(id, leave.Rev, time.Now())
	if inc == 0 {
		return nil // the instance never reached Redis: nothing of it is there
	}

	payload, err := encodeEntry(leave)
	if err != nil {
		return err
	}
	attempts := 3
	if d.down.Load() {
		attempts = 1
	}
	for attempt := 1; ; attempt++ {
		if err = ctx.Err(); err != nil {
			break
		}
		err = delScript.Run(ctx, d.client, d.keys, id, strconv.FormatInt(inc, 10), payload, d.cfg.maxLen, watermill.NewUUID()).Err()
		if err == nil || attempt == attempts || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if err != nil {
		return fmt.Errorf("%w: deregister %q: %w", ErrUnavailable, id, err)
	}
	return nil
}

// ready waits for the first snapshot.
func (d *Discovery) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case <-d.synced:
		return nil
	default:
	}
	select {
	case <-d.synced:
		return nil
	case <-d.stop:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: no snapshot from Redis yet: %w", ErrUnavailable, ctx.Err())
	}
}

// Nodes implements discovery.Discovery. The first call waits (within ctx)
// until the instance has read the current members from Redis; later calls
// answer from the local view, also while Redis is unreachable.
//
// A node's LastSeen is its last heartbeat as read from Redis when this
// instance read the membership, then the time of this instance's last
// successful heartbeat, at which Redis still held the node alive: Redis
// itself expires nodes, so a node listed after a heartbeat had one within
// its TTL.
func (d *Discovery) Nodes(ctx context.Context) ([]discovery.NodeInfo, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	return d.view.Nodes(), nil
}

// Find implements discovery.Discovery, from the local view like Nodes.
func (d *Discovery) Find(ctx context.Context, service, versionRange string) ([]discovery.NodeInfo, error) {
	if err := discovery.ValidateRange(versionRange); err != nil {
		return nil, err
	}
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	return d.view.Find(service, versionRange)
}

// Watch implements discovery.Discovery; see there for the buffering and
// slow-consumer policy. A watch started before the first snapshot receives
// the members as NodeJoined events when the snapshot arrives.
func (d *Discovery) Watch(ctx context.Context) (<-chan discovery.Event, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return d.watches.Watch(ctx)
}

// Close implements discovery.Discovery: CloseContext with a bound of twice
// the time one Redis round trip may take (the heartbeat, between 2 s and
// 5 s), so at most 10 s.
func (d *Discovery) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*d.cfg.opTimeout)
	defer cancel()
	return d.CloseContext(ctx)
}

// CloseContext stops the heartbeat loop and the stream reader and waits for
// them, deregisters this instance's nodes, and ends every watch, within
// ctx. If Redis cannot be reached (or ctx ends first) the nodes are not
// deregistered: the others expire them after their TTL, and CloseContext
// returns an error wrapping discovery.ErrUnavailable. It never closes the
// client given to New. Close and CloseContext are idempotent and return
// the same error every time.
//
// How closely ctx is kept depends on the client. A client made by Connect
// is closed when ctx ends, which ends whatever Redis round trip is still
// waiting (on a frozen or blackholed Redis), so CloseContext returns at
// ctx's deadline at the latest. With a client given to New, a round trip
// in flight ends at its own deadline (at most 5 s) only if the client's
// options set ContextTimeoutEnabled; otherwise go-redis waits for its
// ReadTimeout, with retries.
//
// One goroutine is not CloseContext's to wait for: watermill-redisstream's
// reader runs a blocking XREAD that go-redis cannot interrupt, and
// watermill does not wait for it. It exits when that XREAD returns: when
// a leave entry of this instance wakes it, otherwise within the read block
// time (WithReadBlock, default at most 2 s). An instance made by Connect
// waits for it (within ctx) before it closes its client.
func (d *Discovery) CloseContext(ctx context.Context) error {
	d.shutdown(ctx, true)
	return d.closeErr
}

// Kill stops the instance as if its process had died: it stops heartbeats,
// the reader and the watches, but leaves its nodes in Redis, where the other
// instances see them expire after their TTL. It is meant for tests and
// measurements. Later calls fail with ErrClosed; Close after Kill does
// nothing.
func (d *Discovery) Kill() error {
	d.shutdown(context.Background(), false)
	return nil
}

func (d *Discovery) shutdown(ctx context.Context, deregister bool) {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.stopping.Store(true)
		close(d.stop)
		d.cancel()
		// The loop (and with it the reader) stops first: the leave entries
		// written below then find nothing of this instance left to undo
		// them, and wake the reader's blocking XREAD, which sees that it is
		// closing instead of blocking again.
		stopped := make(chan struct{})
		go func() {
			d.wg.Wait()
			close(stopped)
		}()
		clientClosed := false
		select {
		case <-stopped:
		case <-ctx.Done():
			if d.ownClient {
				// A round trip is waiting on a Redis that does not answer:
				// closing the client ends it.
				_ = d.client.Close()
				clientClosed = true
			}
			<-stopped
		}
		var errs []error
		if deregister {
			errs = d.deregisterAll(ctx)
		}
		d.watches.Close()
		d.healthy.Store(false)
		if d.ownClient && !clientClosed {
			// Let watermill's XREAD return before the client closes under
			// it, which go-redis would report on its global logger.
			d.xreads.wait(ctx, d.cfg.blockTime+d.cfg.opTimeout)
			_ = d.client.Close()
		}
		d.closeErr = errors.Join(errs...)
	})
}

// deregisterAll deregisters every node of this instance within ctx.
func (d *Discovery) deregisterAll(ctx context.Context) []error {
	d.mu.Lock()
	ids := make([]string, 0, len(d.owned))
	for id := range d.owned {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	if err := d.regMu.lock(ctx); err != nil {
		return []error{fmt.Errorf("%w: deregister %s: %w", ErrUnavailable, strings.Join(ids, ", "), err)}
	}
	defer d.regMu.unlock()
	var errs []error
	for _, id := range ids {
		d.mu.Lock()
		if err := d.deregisterLocked(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (d *Discovery) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// loop is the instance's background goroutine: first snapshot and stream
// reader, heartbeats, expiry probes, resyncs, and retries while Redis
// fails.
//
// Regular heartbeats keep one phase, a heartbeat apart, from the first
// snapshot on: an expiry probe (an extra heartbeat just after a node's
// deadline) or a retry does not move it, so the instances' heartbeats
// stay spread over the interval however many nodes die. While Redis fails
// the loop retries with backoff, but never later than a margin before the
// deadline of its own nodes (their last heartbeat plus the TTL), and from
// there on every retryMin: an instance that gets Redis back before its
// nodes' deadline refreshes them in time.
func (d *Discovery) loop() {
	defer d.wg.Done()
	defer d.stopReader()
	b := backoff{min: d.cfg.retryMin, max: d.cfg.heartbeat}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var (
		synced, down bool
		behind       lag
		extra        bool      // a heartbeat was asked for (a Register that failed)
		retry        time.Time // while down or not synced: the next attempt
		regular      time.Time // the next regular heartbeat
		probe        time.Time // an extra heartbeat at a node's deadline; zero: none
		probeID      string    // that node
		refreshed    = d.started
	)
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
			extra = true
		case <-d.resync:
			// At most one resync a heartbeat: under a storm of changes a
			// resync must not add to the load that caused it.
			if synced && !down && time.Since(d.lastResync) >= d.cfg.heartbeat {
				if err := d.resyncNow("the stream reader missed entries"); err != nil {
					d.log.Debug("discovery: resync failed; retried at the next heartbeat", "err", err)
				}
			} else if synced {
				behind.gap = true // at the next heartbeat
			}
		case <-timer.C:
		}
		now := time.Now()
		due := false
		switch {
		case !synced || down:
			due = extra || !now.Before(retry)
		case extra || !now.Before(regular):
			due = true
		case !probe.IsZero() && !now.Before(probe):
			// Another instance's probe or heartbeat may have expired the
			// node already: its leave came through the stream.
			if _, ok := d.view.Get(probeID); ok {
				due = true
				d.probes.Add(1)
			} else {
				d.probesSaved.Add(1)
			}
			probe = time.Time{}
		}
		if due {
			extra = false
			var err error
			if !synced {
				if err = d.firstSync(); err == nil {
					synced = true
					regular = now.Add(d.cfg.heartbeat)
				}
			} else {
				var r beatResult
				if r, err = d.beat(); err == nil {
					refreshed = now
					d.beats.Add(1)
					probe, probeID = d.afterBeat(r, &behind)
				}
			}
			end := time.Now()
			switch {
			case err != nil && d.stopping.Load():
				return
			case err != nil:
				d.errors.Add(1)
				if !down || b.attempt == 0 {
					d.log.Warn("discovery: redis unavailable; keeping the last view and retrying", "err", err)
				} else {
					d.log.Debug("discovery: redis still unavailable", "err", err, "attempt", b.attempt)
				}
				down = true
				d.down.Store(true)
				d.healthy.Store(false)
				retry = d.retryAt(end, b.next(), refreshed)
				probe = time.Time{}
			default:
				if down {
					d.reconnects.Add(1)
					d.log.Info("discovery: redis reachable again", "attempts", b.attempt)
				}
				down = false
				d.down.Store(false)
				d.healthy.Store(true)
				b.reset()
				for !regular.After(end) {
					regular = regular.Add(d.cfg.heartbeat)
				}
				if !probe.IsZero() && !probe.Before(regular) {
					probe = time.Time{}
				}
				d.nextRegular.Store(regular.UnixNano())
			}
		}
		wake := regular
		switch {
		case !synced || down:
			wake = retry
		case !probe.IsZero() && probe.Before(wake):
			wake = probe
		}
		timer.Reset(max(time.Until(wake), time.Millisecond))
	}
}

// retryAt is when to try Redis again after a failure at now: after the
// backoff, but no later than a margin before the deadline of this
// instance's nodes (refreshed, when their deadlines last moved, plus the
// TTL), and from then on every retryMin until that deadline.
func (d *Discovery) retryAt(now time.Time, backoff time.Duration, refreshed time.Time) time.Time {
	at := now.Add(backoff)
	deadline := refreshed.Add(d.cfg.ttl)
	if now.Before(deadline) {
		if soonest := later(deadline.Add(-d.cfg.margin), now.Add(d.cfg.retryMin)); at.After(soonest) {
			at = soonest
		}
	}
	return at
}

// lag is what the loop knows of the stream reader's progress: a change it
// had not applied at a heartbeat, how far it had got then, and whether it
// reported a gap that is waiting for a resync.
type lag struct {
	gen, applied int64
	at           time.Time
	gap          bool
}

// afterBeat acts on a heartbeat's reply: it resyncs when Redis lost
// changes, when the reader reported a gap or stopped moving, or when the
// last resync failed. It returns when to probe, and which node: just after
// the earliest deadline (or the end of a grace period), so that a dead
// node is reported left when its TTL runs out, not up to a heartbeat later.
func (d *Discovery) afterBeat(r beatResult, behind *lag) (time.Time, string) {
	localNow := time.Now()
	d.touch(localNow)
	if len(r.expired) > 0 {
		d.log.Debug("discovery: expired nodes", "nodes", r.expired, "now", r.now, "grace", r.grace, "earliest", r.earliest)
	}
	// Fewer changes in Redis than the reader had applied before the
	// heartbeat: Redis lost some. A reader that has not moved for a while
	// although changes were waiting lost its way; one that moves is slow,
	// and is left to catch up.
	last := d.lastGen.Load()
	resync := ""
	switch {
	case r.gen < r.applied:
		d.sawLoss.Store(true)
		resync = "redis lost changes (a restart, a flush or a failover)"
	case d.needResync.Load():
		resync = "the last resync failed"
	case behind.gap && time.Since(d.lastResync) >= d.cfg.heartbeat:
		resync = "the stream reader missed entries"
	case behind.gen > 0 && last < behind.gen && last == behind.applied && localNow.Sub(behind.at) >= d.cfg.stuckAfter:
		resync = "the stream reader is stuck"
	}
	if resync != "" {
		if err := d.resyncNow(resync); err != nil {
			d.log.Debug("discovery: resync failed; retried at the next heartbeat", "err", err)
		}
		*behind = lag{}
		last = d.lastGen.Load()
	}
	switch {
	case last >= r.gen:
		behind.gen = 0
	case behind.gen == 0 || last != behind.applied:
		*behind = lag{gen: r.gen, applied: last, at: localNow, gap: behind.gap}
	}
	if r.earliest < 0 {
		return time.Time{}, ""
	}
	probe := r.earliest
	if r.grace > r.now && r.grace > probe {
		probe = r.grace
	}
	// Jitter, so that the instances do not all probe at once; those that
	// come later find the node gone and skip their probe.
	at := localNow.Add(time.Duration(probe-r.now)*time.Millisecond + time.Millisecond +
		rand.N(min(d.cfg.heartbeat/10, 50*time.Millisecond)+1))
	return later(at, localNow.Add(d.cfg.heartbeat/10)), r.earliestID
}

// touch moves the last-seen time of every node of the view to now (Redis
// expires nodes itself, so every node it has not reported left was alive
// within its TTL), and removes the suspects whose time is up.
func (d *Discovery) touch(now time.Time) {
	d.view.TouchAll(now)
	d.view.Expire(now) // drops old tombstones; no node expires, all were touched
	d.mu.Lock()
	var gone []string
	for id, until := range d.suspect {
		if now.After(until) {
			gone = append(gone, id)
			delete(d.suspect, id)
		}
	}
	d.mu.Unlock()
	for _, id := range gone {
		if d.view.Remove(id, discovery.Revision{}, now) {
			d.log.Info("discovery: a node redis no longer held was not announced again; it left", "peer", id)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// opCtx bounds one background Redis operation.
func (d *Discovery) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.stopCtx, d.cfg.opTimeout)
}

// firstSync reads the membership, starts the stream reader right after the
// snapshot's position and announces what Register could not.
// It gets the instance's incarnation first: its heartbeats send it.
func (d *Discovery) firstSync() error {
	ctx, cancel := d.opCtx()
	_, err := d.incarnation(ctx)
	cancel()
	if err != nil {
		return err
	}
	if _, err := d.sync(true); err != nil {
		return err
	}
	close(d.synced)
	d.checkOldLayout()
	d.reannounce()
	return nil
}

// checkOldLayout warns when the keys of the layout before hash tags (the
// prefix without braces) exist: instances of that layout do not see this
// one, nor it them.
func (d *Discovery) checkOldLayout() {
	if hashTagged(d.cfg.prefix) == d.cfg.prefix {
		return // a prefix with a hash tag of its own: the same keys
	}
	var found []string
	for _, suffix := range []string{":nodes", ":events", ":alive"} {
		ctx, cancel := d.opCtx()
		n, err := d.client.Exists(ctx, d.cfg.prefix+suffix).Result()
		cancel()
		if err == nil && n > 0 {
			found = append(found, d.cfg.prefix+suffix)
		}
	}
	if len(found) > 0 {
		d.log.Warn("discovery: keys of the earlier key layout exist under this prefix; nodes still running that version do not see this one, nor it them: stop them all before starting this version, then delete those keys",
			"keys", found, "now_used", []string{d.nodes, d.events, d.alive, d.meta})
	}
}

// resyncNow re-reads the whole membership and restarts the reader after
// it. The loop goroutine calls it.
func (d *Discovery) resyncNow(why string) error {
	d.resyncs.Add(1)
	d.lastResync = time.Now()
	d.log.Info("discovery: re-reading the membership", "why", why)
	_, err := d.sync(false)
	if err != nil {
		d.errors.Add(1)
	}
	return err
}

// sync stops the reader, reads the snapshot, makes the view agree with it
// and starts the reader right after the snapshot's stream position, so
// that the view is the snapshot plus every later change, once each. A
// resync (not first) that fails leaves needResync set, and the next
// heartbeat tries again (the reader is stopped meanwhile). The watchers
// learn of a resync through the view: its first event carries the number
// of changes the reader did not apply one by one (see discovery.Event).
func (d *Discovery) sync(first bool) (snapshot, error) {
	d.stopReader()
	snap, err := d.snapshot()
	if err != nil {
		if !first {
			d.needResync.Store(true)
		}
		return snap, err
	}
	lost := d.sawLoss.Swap(false)
	missed := d.skipped.Swap(0)
	if last := d.lastGen.Load(); !first {
		if snap.gen < last {
			lost = true
		} else if !lost {
			missed += snap.gen - last
		}
	}
	if first {
		missed = 0
	}
	d.apply(snap, int(missed), lost)
	d.lastGen.Store(snap.gen)
	if err := d.startReader(snap.pos); err != nil {
		d.needResync.Store(true)
		return snap, err
	}
	d.needResync.Store(false)
	return snap, nil
}

type snapshot struct {
	redisNow int64 // ms
	gen      int64
	pos      string
	nodes    []discovery.NodeInfo
	ttl      []time.Duration
	rev      []discovery.Revision
	seen     []time.Time
	present  map[string]bool
}

// snapshot reads, in one script, the Redis time, the generation, the
// stream's last id, the entries and the deadlines.
func (d *Discovery) snapshot() (snapshot, error) {
	ctx, cancel := d.opCtx()
	defer cancel()
	res, err := snapshotScript.Run(ctx, d.client, d.keys).Slice()
	if err != nil {
		return snapshot{}, err
	}
	s, bad, err := parseSnapshot(res, time.Now())
	for _, b := range bad {
		d.log.Warn("discovery: skipping malformed snapshot entry", "peer", b.id, "err", b.err, "entry", truncate(b.raw))
	}
	return s, err
}

// badEntry is an entry of the snapshot that does not decode.
type badEntry struct {
	id, raw string
	err     error
}

// parseSnapshot reads snapshotScript's reply; localNow is when it came.
// Whatever Redis returned, it never panics (see FuzzReplies).
func parseSnapshot(res []any, localNow time.Time) (snapshot, []badEntry, error) {
	if len(res) != 6 {
		return snapshot{}, nil, fmt.Errorf("redisdisc: unexpected snapshot reply of %d elements", len(res))
	}
	redisNow, _ := res[0].(int64)
	grace, _ := res[5].(int64)
	s := snapshot{redisNow: redisNow, present: map[string]bool{}}
	s.gen, _ = res[1].(int64)
	s.pos, _ = res[2].(string)
	if s.pos == "" {
		s.pos = "0-0"
	}
	flat, _ := res[3].([]any)
	stored := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		id, _ := flat[i].(string)
		raw, _ := flat[i+1].(string)
		stored[id] = raw
	}
	var bad []badEntry
	zs, _ := res[4].([]any)
	for i := 0; i+1 < len(zs); i += 2 {
		id, _ := zs[i].(string)
		sc, _ := zs[i+1].(string)
		deadline, err := strconv.ParseFloat(sc, 64)
		if err != nil || int64(deadline) <= redisNow && redisNow >= grace {
			// Dead: the next heartbeat anywhere expires it. During a
			// grace period a passed deadline means nothing yet.
			continue
		}
		raw, ok := stored[id]
		if !ok || s.present[id] {
			continue
		}
		e, err := decodeEntry([]byte(raw))
		if err == nil && (e.Node.ID != id || e.Op == opLeave) {
			err = fmt.Errorf("%w: entry of %q (op %s) stored under %q", errMalformedEntry, e.Node.ID, e.Op, id)
		}
		if err != nil {
			bad = append(bad, badEntry{id: id, raw: raw, err: err})
			continue
		}
		beat := int64(deadline) - e.TTL.Milliseconds()
		s.nodes = append(s.nodes, e.Node)
		s.ttl = append(s.ttl, e.TTL)
		s.rev = append(s.rev, e.Rev)
		s.seen = append(s.seen, localNow.Add(-time.Duration(redisNow-beat)*time.Millisecond))
		s.present[id] = true
	}
	return s, bad, nil
}

// apply makes the view agree with s, as one resync of the view that
// replaces missed changes (see discovery.View.Resync). Every node of s is
// put. The other nodes of the view, but this instance's own, are gone:
// they leave the view at once, unless Redis lost data (lost), when they
// become suspects (see Discovery.suspect).
func (d *Discovery) apply(s snapshot, missed int, lost bool) {
	anns := make([]discovery.Announcement, len(s.nodes))
	for i, n := range s.nodes {
		anns[i] = discovery.Announcement{Node: n, TTL: s.ttl[i], Rev: s.rev[i], Seen: s.seen[i]}
	}
	d.mu.Lock()
	owned := make(map[string]bool, len(d.owned))
	for id := range d.owned {
		owned[id] = true
	}
	d.mu.Unlock()
	var drop func(string) bool
	if !lost {
		drop = func(id string) bool { return !owned[id] }
	}
	now := time.Now()
	d.view.Resync(anns, missed, drop, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !lost {
		clear(d.suspect)
		return
	}
	for _, n := range d.view.Nodes() {
		switch {
		case s.present[n.ID]:
			delete(d.suspect, n.ID)
		case d.owned[n.ID] == nil:
			if _, ok := d.suspect[n.ID]; !ok {
				ttl := d.cfg.ttl
				if t, ok := d.view.TTL(n.ID); ok {
					ttl = t
				}
				d.suspect[n.ID] = now.Add(ttl)
			}
		}
	}
}

type beatResult struct {
	applied    int64 // the reader's last change before the heartbeat ran
	now        int64 // Redis time, ms
	missing    []string
	lost       []string
	expired    []string
	earliest   int64 // the earliest deadline, or -1
	earliestID string
	gen        int64
	grace      int64
}

// beat runs the heartbeat script, then announces again the nodes Redis
// lost and gives up the ones another instance took over.
func (d *Discovery) beat() (beatResult, error) {
	ctx, cancel := d.opCtx()
	defer cancel()
	if err := d.regMu.lock(ctx); err != nil {
		return beatResult{}, err
	}
	defer d.regMu.unlock()
	d.mu.Lock()
	args := make([]any, 5, 5+len(d.owned))
	args[0], args[1], args[2], args[3], args[4] = strconv.FormatInt(d.inc.Load(), 10), d.cfg.ttl.Milliseconds(), d.cfg.pause.Milliseconds(), d.cfg.maxLen, maxExpiries
	for id := range d.owned {
		args = append(args, id)
	}
	d.mu.Unlock()

	applied := d.lastGen.Load()
	res, err := beatScript.Run(ctx, d.client, d.keys, args...).Slice()
	if err != nil {
		return beatResult{}, err
	}
	r, err := parseBeat(res)
	if err != nil {
		return beatResult{}, err
	}
	r.applied = applied
	if len(r.missing) > 0 {
		d.mu.Lock()
		for _, id := range r.missing {
			if o := d.owned[id]; o != nil {
				// A new revision: the others may have seen it leave.
				d.seq++
				e := o.entry
				e.Op, e.Rev.Seq = opJoin, d.seq
				d.owned[id] = &ownedNode{entry: e}
			}
		}
		d.mu.Unlock()
		d.log.Info("discovery: nodes of this instance are missing in redis; announcing them again", "nodes", r.missing)
	}
	for _, id := range r.lost {
		d.giveUp(id, "another instance took the node id over")
	}
	d.reannounceLocked()
	return r, nil
}

// giveUp stops announcing the node id, which another instance now holds.
func (d *Discovery) giveUp(id, why string) {
	d.mu.Lock()
	_, ok := d.owned[id]
	delete(d.owned, id)
	d.mu.Unlock()
	if ok {
		holder, _ := d.view.Get(id)
		d.log.Error("discovery: this instance no longer announces a node: "+why, "registration", id, "holder", holder.Address)
	}
}

// parseBeat reads beatScript's reply. Whatever Redis returned, it never
// panics (see FuzzReplies).
func parseBeat(res []any) (beatResult, error) {
	if len(res) != 8 {
		return beatResult{}, fmt.Errorf("redisdisc: unexpected heartbeat reply of %d elements", len(res))
	}
	var r beatResult
	var ok [5]bool
	r.now, ok[0] = res[0].(int64)
	r.earliest, ok[1] = res[4].(int64)
	r.gen, ok[2] = res[5].(int64)
	r.grace, ok[3] = res[6].(int64)
	r.earliestID, ok[4] = res[7].(string)
	if ok != [5]bool{true, true, true, true, true} || r.earliest < -1 || r.gen < 0 || r.grace < 0 {
		return beatResult{}, fmt.Errorf("redisdisc: unexpected heartbeat reply %s", truncate(fmt.Sprint(res)))
	}
	strs := func(v any) []string {
		a, _ := v.([]any)
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	r.missing, r.lost, r.expired = strs(res[1]), strs(res[2]), strs(res[3])
	return r, nil
}

// reannounce announces the nodes whose last announcement did not reach
// Redis.
func (d *Discovery) reannounce() {
	ctx, cancel := d.opCtx()
	defer cancel()
	if err := d.regMu.lock(ctx); err != nil {
		return
	}
	defer d.regMu.unlock()
	d.reannounceLocked()
}

func (d *Discovery) reannounceLocked() {
	d.mu.Lock()
	var todo []*ownedNode
	for _, o := range d.owned {
		if !o.announced {
			todo = append(todo, o)
		}
	}
	d.mu.Unlock()
	for _, o := range todo {
		ctx, cancel := d.opCtx()
		err := d.announce(ctx, o)
		cancel()
		var taken *takenError
		switch {
		case errors.As(err, &taken):
			d.giveUp(o.entry.Node.ID, taken.err(o.entry.Node.ID, false).Error())
			continue
		case err != nil:
			d.errors.Add(1)
			d.log.Debug("discovery: re-announcing failed", "registration", o.entry.Node.ID, "err", err)
			return
		}
		d.view.Put(o.entry.Node, o.entry.TTL, d.revOf(o), time.Now())
		d.log.Debug("discovery: node announced again", "registration", o.entry.Node.ID)
	}
}

// startReader subscribes to the stream after position pos with
// watermill-redisstream in fan-out mode and starts applying entries. The
// loop goroutine calls it.
func (d *Discovery) startReader(pos string) error {
	// Not a copy of the client made from its options: go-redis writes a
	// client's options while it opens connections, so copying them from a
	// client in use is a data race.
	rc := noClose{d.client}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                        rc,
		Unmarshaller:                  unmarshaller{},
		FanOutOldestId:                pos,
		BlockTime:                     d.cfg.blockTime,
		DisableIndefiniteInitialBlock: true,
		ShouldStopOnReadErrors:        func(error) bool { return d.stopping.Load() },
	}, d.wmLog)
	if err != nil {
		return err
	}
	msgs, err := sub.Subscribe(d.stopCtx, d.events)
	if err != nil {
		_ = sub.Close()
		return err
	}
	d.sub = sub
	done := make(chan struct{})
	d.readerDone = done
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(done)
		for msg := range msgs {
			d.applyEntry(msg)
			msg.Ack()
		}
	}()
	return nil
}

// stopReader stops the stream reader and waits for its goroutine. The loop
// goroutine calls it.
func (d *Discovery) stopReader() {
	if d.sub == nil {
		return
	}
	_ = d.sub.Close() // waits for watermill's consumer; closes noClose: nothing
	<-d.readerDone
	d.sub, d.readerDone = nil, nil
}

// applyEntry merges one stream entry into the view. Malformed entries are
// logged and skipped. The reader starts right after a snapshot, so every
// entry must carry the next generation; any other means that the reader
// missed entries (a gap: they are counted, for the resync's Missed) or
// that Redis lost some and numbers new ones again (a restart, a failover),
// and asks the loop for a resync.
func (d *Discovery) applyEntry(msg *message.Message) {
	if g := msg.Metadata.Get(genKey); g != "" {
		if gen, err := strconv.ParseInt(g, 10, 64); err == nil {
			if last := d.lastGen.Swap(gen); gen != last+1 {
				if gen > last {
					d.skipped.Add(gen - last - 1)
				} else {
					d.sawLoss.Store(true)
				}
				d.log.Debug("discovery: the stream does not follow on from what this instance read", "after", last, "got", gen)
				select {
				case d.resync <- struct{}{}:
				default:
				}
			}
		}
	}
	if why := msg.Metadata.Get(malformedKey); why != "" {
		d.log.Warn("discovery: skipping malformed stream entry", "err", why, "uuid", msg.UUID)
		return
	}
	e, err := decodeEntry(msg.Payload)
	if err != nil {
		d.log.Warn("discovery: skipping malformed stream entry", "err", err, "uuid", msg.UUID, "payload", truncate(string(msg.Payload)))
		return
	}
	now := time.Now()
	switch {
	case e.Op == opLeave && strings.HasPrefix(msg.UUID, expiryUUIDPrefix):
		// Redis expired the node: in stream order it is gone, whatever
		// revision the expiry could name.
		if !d.view.Remove(e.Node.ID, e.Rev, now) {
			d.view.Remove(e.Node.ID, discovery.Revision{}, now)
		}
	case e.Op == opLeave:
		d.view.Remove(e.Node.ID, e.Rev, now)
	default:
		d.mu.Lock()
		delete(d.suspect, e.Node.ID)
		d.mu.Unlock()
		d.view.Put(e.Node, e.TTL, e.Rev, now)
	}
}

// expiryUUIDPrefix starts the message uuid of the leave beatScript
// appends for an expiry.
const expiryUUIDPrefix = "expired:"

func truncate(s string) string {
	const n = 200
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "…"
}

// backoff is exponential with ±20 % jitter.
type backoff struct {
	min, max time.Duration
	attempt  int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.attempt, 20)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.attempt++
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (b *backoff) reset() { b.attempt = 0 }
