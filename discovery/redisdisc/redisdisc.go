package redisdisc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	client redis.UniversalClient // the caller's unless ownClient
	cfg    config
	log    *slog.Logger
	wmLog  watermill.LoggerAdapter
	alive  string // the four keys; see scripts.go
	nodes  string
	events string
	meta   string
	keys   []string // alive, nodes, events, meta: the order of the scripts
	inc    int64
	incStr string
	view   *discovery.View

	watches *discovery.WatchGroup

	// regMu serialises what this instance writes about its own nodes
	// (announcements, leaves, heartbeats), so that revisions reach Redis in
	// order and a heartbeat never re-adds a node being deregistered.
	regMu sync.Mutex

	mu     sync.Mutex // guards owned, seq, closed, suspect
	owned  map[string]*ownedNode
	seq    uint64
	closed bool
	// suspect holds the nodes of the view that a resync did not find in
	// Redis, with when they leave the view (a TTL later) unless an
	// announcement confirms them first. A node Redis lost (a restart, a
	// failover) is announced again by its instance within a heartbeat; one
	// whose leave the reader missed is gone.
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
	// goroutine; lastGen is written by the reader and read by the loop.
	sub        *redisstream.Subscriber
	readerDone chan struct{}
	lastResync time.Time
	lastGen    atomic.Int64
	resyncs    atomic.Int64

	ownClient bool          // made by Connect: Close closes client
	xreads    *xreadCounter // ownClient only: XREADs in flight
}

type ownedNode struct {
	entry     Entry
	payload   []byte
	announced bool // false while the last announcement has not reached Redis
}

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
// XREAD holds one connection of client's pool.
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
	inc := discovery.NewIncarnation()
	d := &Discovery{
		client:  client,
		cfg:     cfg,
		log:     log,
		wmLog:   watermillLogger(cfg.logger),
		alive:   base + ":alive",
		nodes:   base + ":nodes",
		events:  base + ":events",
		meta:    base + ":meta",
		inc:     inc,
		incStr:  strconv.FormatInt(inc, 10),
		view:    discovery.NewView(),
		owned:   make(map[string]*ownedNode),
		suspect: make(map[string]time.Time),
		synced:  make(chan struct{}),
		kick:    make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	d.keys = []string{d.alive, d.nodes, d.events, d.meta}
	d.watches = d.view.NewWatchGroup()
	d.stopCtx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.loop()
	return d, nil
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

// Keys returns the Redis keys the instance uses: the stream, the hash of
// entries, the sorted set of deadlines and the hash of counters. For the
// default prefix they are {netron:discovery}:events, …:nodes, …:alive and
// …:meta.
func (d *Discovery) Keys() (events, nodes, alive, meta string) {
	return d.events, d.nodes, d.alive, d.meta
}

// Healthy reports whether the last Redis round trip of the background loop
// succeeded. While it is false the instance keeps its last view.
func (d *Discovery) Healthy() bool { return d.healthy.Load() }

// Resyncs returns how many times the instance re-read the whole membership
// after its start: after an outage, when its stream reader missed entries
// (the stream was trimmed past it, or a failover lost them), or when Redis
// lost its data. Each costs one read of every entry.
func (d *Discovery) Resyncs() int64 { return d.resyncs.Load() }

// Register implements discovery.Discovery. It writes the node to Redis and
// announces it on the stream (one script) before returning.
//
// A node id is held by one instance at a time. If another instance holds
// the id and its node is alive (its TTL has not run out since its last
// heartbeat) at another address, Register changes nothing and fails with
// an error wrapping discovery.ErrDuplicateID that names that address. A
// holder at the same address is the same node coming back after a crash
// (its old process no longer holds the address), and is replaced at once;
// a client-only node (no address) is never taken for another one.
//
// A node whose entry would exceed MaxEntrySize fails with
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
	d.regMu.Lock()
	defer d.regMu.Unlock()

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	prev := d.owned[node.ID]
	if prev != nil && prev.announced && prev.entry.Node.SameDetails(node) {
		d.mu.Unlock()
		return nil
	}
	op := OpJoin
	if prev != nil {
		op = OpUpdate
	}
	d.seq++
	e := Entry{Op: op, Node: node, TTL: d.cfg.ttl, Rev: discovery.Revision{Incarnation: d.inc, Seq: d.seq}}
	payload, err := EncodeEntry(e)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: %w", discovery.ErrInvalidNode, err)
	}
	o := &ownedNode{entry: e, payload: payload}
	d.owned[node.ID] = o
	d.mu.Unlock()

	err = d.announce(ctx, o)
	var taken *takenError
	switch {
	case errors.As(err, &taken):
		d.mu.Lock()
		if d.owned[node.ID] == o {
			delete(d.owned, node.ID)
		}
		d.mu.Unlock()
		return taken.err(node.ID)
	case err != nil:
		d.view.Put(node, d.cfg.ttl, e.Rev, time.Now())
		d.wake()
		return fmt.Errorf("%w: register %q (kept; it is announced when Redis is back): %w", ErrUnavailable, node.ID, err)
	}
	d.view.Put(node, d.cfg.ttl, e.Rev, time.Now())
	return nil
}

// takenError is putScript's refusal: another live instance holds the id.
type takenError struct {
	holder discovery.NodeInfo
	ttl    time.Duration // the holder's
	left   time.Duration // until the holder's deadline
}

func (e *takenError) Error() string { return "node id taken" }

func (e *takenError) err(id string) error {
	where := "a client-only node (no address)"
	if e.holder.Address != "" {
		where = "the node at " + e.holder.Address
	}
	return fmt.Errorf("%w: %q is held by %s, which heartbeated %v ago (if it is gone, its registration expires within %v); stop it or choose another id",
		discovery.ErrDuplicateID, id, where, max(e.ttl-e.left, 0).Round(time.Millisecond), e.left.Round(time.Millisecond))
}

// announce writes o to Redis and the stream. regMu is held. A refusal is a
// *takenError.
func (d *Discovery) announce(ctx context.Context, o *ownedNode) error {
	id := o.entry.Node.ID
	res, err := putScript.Run(ctx, d.client, d.keys,
		id, o.payload, d.incStr, o.entry.Node.Address, d.cfg.ttl.Milliseconds(),
		d.cfg.maxLen, d.cfg.maxAge.Milliseconds(), watermill.NewUUID()).Slice()
	if err != nil {
		return err
	}
	if len(res) == 3 && res[0] == "taken" {
		raw, _ := res[1].(string)
		ms, _ := res[2].(int64)
		e, derr := DecodeEntry([]byte(raw))
		if derr != nil {
			e.Node.ID = id
		}
		return &takenError{holder: e.Node, ttl: e.TTL, left: time.Duration(ms) * time.Millisecond}
	}
	if len(res) != 2 || res[0] != "ok" {
		return fmt.Errorf("redisdisc: unexpected reply to an announcement: %v", res)
	}
	d.mu.Lock()
	if d.owned[id] == o {
		o.announced = true
	}
	d.mu.Unlock()
	return nil
}

// Deregister implements discovery.Discovery. The node leaves the local view
// at once; its removal from Redis, with the leave announcement, is tried up
// to three times within ctx (once while Redis is known to be unreachable).
// If that fails the error wraps discovery.ErrUnavailable, and the other
// instances report the node left when its TTL has passed.
func (d *Discovery) Deregister(ctx context.Context, nodeID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.regMu.Lock()
	defer d.regMu.Unlock()
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
	leave := Entry{Op: OpLeave, Node: discovery.NodeInfo{ID: id}, TTL: d.cfg.ttl,
		Rev: discovery.Revision{Incarnation: d.inc, Seq: d.seq}}
	d.mu.Unlock()
	d.view.Remove(id, leave.Rev, time.Now())

	payload, err := EncodeEntry(leave)
	if err != nil {
		return err
	}
	attempts := 3
	if d.down.Load() {
		attempts = 1
	}
	for attempt := 1; ; attempt++ {
		err = delScript.Run(ctx, d.client, d.keys, id, d.incStr, payload, d.cfg.maxLen, watermill.NewUUID()).Err()
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

// Close implements discovery.Discovery: it stops the heartbeat loop and the
// stream reader and waits for them, deregisters this instance's nodes
// (within a few seconds; if Redis is unreachable the others expire them after
// their TTL and Close returns an error wrapping discovery.ErrUnavailable), and
// ends every watch. It never closes the client given to New. Close is
// idempotent and returns the same error every time.
//
// One goroutine is not Close's to wait for: watermill-redisstream's reader
// runs a blocking XREAD that go-redis cannot interrupt, and watermill does
// not wait for it. It exits when that XREAD returns: at once when this
// instance had nodes to deregister (their leave entries wake it), otherwise
// within the read block time (WithReadBlock, default at most 2 s). An
// instance made by Connect waits for it (within that time) before it closes
// its client.
func (d *Discovery) Close() error {
	d.shutdown(true)
	return d.closeErr
}

// Kill stops the instance as if its process had died: it stops heartbeats,
// the reader and the watches, but leaves its nodes in Redis, where the other
// instances see them expire after their TTL. It is meant for tests and
// measurements. Later calls fail with ErrClosed; Close after Kill does
// nothing.
func (d *Discovery) Kill() error {
	d.shutdown(false)
	return nil
}

func (d *Discovery) shutdown(deregister bool) {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		// Stop the loop and the reader first: the leave entries written
		// below then wake the reader's blocking XREAD, and it sees that it
		// is closing instead of blocking again.
		d.stopping.Store(true)
		close(d.stop)
		d.cancel()
		d.wg.Wait()
		var errs []error
		if deregister {
			ctx, cancel := context.WithTimeout(context.Background(), 2*d.cfg.opTimeout)
			d.regMu.Lock()
			d.mu.Lock()
			ids := make([]string, 0, len(d.owned))
			for id := range d.owned {
				ids = append(ids, id)
			}
			d.mu.Unlock()
			slices.Sort(ids)
			for _, id := range ids {
				d.mu.Lock()
				if err := d.deregisterLocked(ctx, id); err != nil {
					errs = append(errs, err)
				}
			}
			d.regMu.Unlock()
			cancel()
		}
		d.watches.Close()
		d.healthy.Store(false)
		if d.ownClient {
			// Let watermill's XREAD return before the client closes under
			// it, which go-redis would report on its global logger.
			d.xreads.wait(d.cfg.blockTime + d.cfg.opTimeout)
			_ = d.client.Close()
		}
		d.closeErr = errors.Join(errs...)
	})
}

func (d *Discovery) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// loop is the instance's background goroutine: first snapshot and stream
// reader, heartbeats, expiry probes, resyncs, and recovery after outages.
func (d *Discovery) loop() {
	defer d.wg.Done()
	defer d.stopReader()
	b := backoff{min: min(50*time.Millisecond, d.cfg.heartbeat/2), max: d.cfg.heartbeat}
	timer := time.NewTimer(0)
	defer timer.Stop()
	nextBeat := time.Now()
	synced := false
	var behind lag
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
			nextBeat = time.Now()
		case <-d.resync:
			// At most one resync a heartbeat: under a storm of changes a
			// resync must not add to the load that caused it.
			if synced && d.healthy.Load() && time.Since(d.lastResync) >= d.cfg.heartbeat {
				if err := d.resyncNow("the stream reader missed entries"); err != nil {
					d.log.Debug("discovery: resync failed", "err", err)
					nextBeat = time.Now()
				}
			} else if synced {
				behind.gap = true // at the next heartbeat
			}
		case <-timer.C:
		}
		now := time.Now()
		if !now.Before(nextBeat) {
			var (
				err  error
				next time.Time
			)
			if !synced {
				err = d.firstSync()
				synced = err == nil
				next = time.Now().Add(d.cfg.heartbeat)
			} else {
				var r beatResult
				r, err = d.beat()
				if err == nil {
					next = d.afterBeat(r, &behind)
				}
			}
			now = time.Now()
			switch {
			case err != nil && d.stopping.Load():
				return
			case err != nil:
				d.down.Store(true)
				if d.healthy.Swap(false) || b.attempt == 0 {
					d.log.Warn("discovery: redis unavailable; keeping the last view and retrying", "err", err)
				} else {
					d.log.Debug("discovery: redis still unavailable", "err", err, "attempt", b.attempt)
				}
				nextBeat = now.Add(b.next())
			default:
				if !d.healthy.Load() && b.attempt > 0 {
					d.log.Info("discovery: redis reachable again; re-syncing", "attempts", b.attempt)
					if err := d.resyncNow("redis was unreachable"); err != nil {
						d.log.Debug("discovery: re-sync after outage failed", "err", err)
					}
					d.reannounce()
				}
				d.healthy.Store(true)
				d.down.Store(false)
				b.reset()
				nextBeat = next
			}
		}
		timer.Reset(max(time.Until(nextBeat), time.Millisecond))
	}
}

// lag is what the loop knows of the stream reader's progress: a change it
// had not applied at a heartbeat, how far it had got then, and whether it
// reported a gap that is waiting for a resync.
type lag struct {
	gen, applied int64
	at           time.Time
	gap          bool
}

// afterBeat acts on a heartbeat's reply and returns when to beat next: a
// heartbeat later, or earlier when a node's deadline falls before that (an
// expiry probe, so that a dead node is reported left when its TTL runs
// out, not up to a heartbeat later).
func (d *Discovery) afterBeat(r beatResult, behind *lag) time.Time {
	localNow := time.Now()
	d.touch(localNow)
	if len(r.expired) > 0 {
		d.log.Debug("discovery: expired nodes", "nodes", r.expired, "now", r.now, "grace", r.grace, "earliest", r.earliest)
	}
	// Fewer changes in Redis than the reader had applied before the
	// heartbeat: Redis lost some. A reader that has not moved for a
	// heartbeat although changes were waiting lost its way; one that
	// moves is slow, and is left to catch up.
	last := d.lastGen.Load()
	resync := ""
	switch {
	case r.gen < r.applied:
		resync = "redis lost changes (a restart, a flush or a failover)"
	case behind.gap && time.Since(d.lastResync) >= d.cfg.heartbeat:
		resync = "the stream reader missed entries"
	case behind.gen > 0 && last < behind.gen && last == behind.applied && localNow.Sub(behind.at) >= d.cfg.heartbeat:
		resync = "the stream reader is stuck"
	}
	if resync != "" {
		if err := d.resyncNow(resync); err != nil {
			d.log.Debug("discovery: resync failed", "err", err)
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
	next := localNow.Add(d.cfg.heartbeat)
	probe := r.earliest
	if r.grace > r.now && r.grace > probe {
		probe = r.grace
	}
	if r.earliest >= 0 {
		// Jitter, so that the instances do not all probe at once.
		at := localNow.Add(time.Duration(probe-r.now)*time.Millisecond + time.Millisecond +
			rand.N(min(d.cfg.heartbeat/10, 50*time.Millisecond)+1))
		at = later(at, localNow.Add(d.cfg.heartbeat/10))
		if at.Before(next) {
			next = at
		}
	}
	return next
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
			d.log.Info("discovery: a node redis no longer held was not announced again; it left", "node", id)
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
func (d *Discovery) firstSync() error {
	if err := d.sync(); err != nil {
		return err
	}
	close(d.synced)
	d.reannounce()
	return nil
}

// resyncNow re-reads the whole membership and restarts the reader after
// it. The loop goroutine calls it.
func (d *Discovery) resyncNow(why string) error {
	d.resyncs.Add(1)
	d.lastResync = time.Now()
	d.log.Info("discovery: re-reading the membership", "why", why)
	return d.sync()
}

// sync stops the reader, reads the snapshot, makes the view agree with it
// and starts the reader right after the snapshot's stream position, so
// that the view is the snapshot plus every later change, once each.
func (d *Discovery) sync() error {
	d.stopReader()
	snap, err := d.snapshot()
	if err != nil {
		return err
	}
	d.apply(snap)
	d.lastGen.Store(snap.gen)
	return d.startReader(snap.pos)
}

type snapshot struct {
	gen     int64
	pos     string
	nodes   []discovery.NodeInfo
	ttl     []time.Duration
	rev     []discovery.Revision
	seen    []time.Time
	present map[string]bool
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
		d.log.Warn("discovery: skipping malformed snapshot entry", "node", b.id, "err", b.err, "entry", truncate(b.raw))
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
	s := snapshot{present: map[string]bool{}}
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
		e, err := DecodeEntry([]byte(raw))
		if err == nil && (e.Node.ID != id || e.Op == OpLeave) {
			err = fmt.Errorf("%w: entry of %q (op %s) stored under %q", ErrMalformedEntry, e.Node.ID, e.Op, id)
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

// apply makes the view agree with s: every node of s is put, and every
// other node but this instance's own becomes a suspect (see
// Discovery.suspect).
func (d *Discovery) apply(s snapshot) {
	for i, n := range s.nodes {
		d.view.Put(n, s.ttl[i], s.rev[i], s.seen[i])
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
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
	applied  int64 // the reader's last change before the heartbeat ran
	now      int64 // Redis time, ms
	missing  []string
	lost     []string
	expired  []string
	earliest int64 // the earliest deadline, or -1
	gen      int64
	grace    int64
}

// beat runs the heartbeat script, then announces again the nodes Redis
// lost and gives up the ones another instance took over.
func (d *Discovery) beat() (beatResult, error) {
	d.regMu.Lock()
	defer d.regMu.Unlock()
	d.mu.Lock()
	args := make([]any, 5, 5+len(d.owned))
	args[0], args[1], args[2], args[3], args[4] = d.incStr, d.cfg.ttl.Milliseconds(), d.cfg.gap.Milliseconds(), d.cfg.maxLen, maxExpiries
	for id := range d.owned {
		args = append(args, id)
	}
	d.mu.Unlock()

	ctx, cancel := d.opCtx()
	defer cancel()
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
				e.Op, e.Rev.Seq = OpJoin, d.seq
				if payload, err := EncodeEntry(e); err == nil {
					d.owned[id] = &ownedNode{entry: e, payload: payload}
				}
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
		d.log.Error("discovery: this instance no longer announces a node: "+why, "node", id, "holder", holder.Address)
	}
}

func parseBeat(res []any) (beatResult, error) {
	if len(res) != 7 {
		return beatResult{}, fmt.Errorf("redisdisc: unexpected heartbeat reply of %d elements", len(res))
	}
	var r beatResult
	var ok [4]bool
	r.now, ok[0] = res[0].(int64)
	r.earliest, ok[1] = res[4].(int64)
	r.gen, ok[2] = res[5].(int64)
	r.grace, ok[3] = res[6].(int64)
	if ok != [4]bool{true, true, true, true} {
		return beatResult{}, fmt.Errorf("redisdisc: unexpected heartbeat reply %v", res)
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
	d.regMu.Lock()
	defer d.regMu.Unlock()
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
			d.giveUp(o.entry.Node.ID, taken.err(o.entry.Node.ID).Error())
			continue
		case err != nil:
			d.log.Debug("discovery: re-announcing failed", "node", o.entry.Node.ID, "err", err)
			return
		}
		d.view.Put(o.entry.Node, o.entry.TTL, o.entry.Rev, time.Now())
		d.log.Debug("discovery: node announced again", "node", o.entry.Node.ID)
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
// missed entries (a gap) or that Redis lost some and numbers new ones again
// (a restart, a failover), and asks the loop for a resync.
func (d *Discovery) applyEntry(msg *message.Message) {
	if g := msg.Metadata.Get(genKey); g != "" {
		gen, err := strconv.ParseInt(g, 10, 64)
		if last := d.lastGen.Swap(gen); err == nil && gen != last+1 {
			d.log.Debug("discovery: the stream does not follow on from what this instance read", "after", last, "got", gen)
			select {
			case d.resync <- struct{}{}:
			default:
			}
		}
	}
	if why := msg.Metadata.Get(malformedKey); why != "" {
		d.log.Warn("discovery: skipping malformed stream entry", "err", why, "uuid", msg.UUID)
		return
	}
	e, err := DecodeEntry(msg.Payload)
	if err != nil {
		d.log.Warn("discovery: skipping malformed stream entry", "err", err, "uuid", msg.UUID, "payload", truncate(string(msg.Payload)))
		return
	}
	now := time.Now()
	switch e.Op {
	case OpLeave:
		d.view.Remove(e.Node.ID, e.Rev, now)
	default:
		d.mu.Lock()
		delete(d.suspect, e.Node.ID)
		d.mu.Unlock()
		d.view.Put(e.Node, e.TTL, e.Rev, now)
	}
}

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
