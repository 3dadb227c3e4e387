package redisdisc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
)

// Discovery is the Redis Streams backend of discovery.Discovery. See the
// package documentation for the design. It is safe for concurrent use.
type Discovery struct {
	client  redis.UniversalClient // the caller's; never closed
	cfg     config
	log     *slog.Logger
	wmLog   watermill.LoggerAdapter
	events  string // <prefix>:events
	nodes   string // <prefix>:nodes
	alive   string // <prefix>:alive
	inc     int64
	view    *discovery.View
	watches *discovery.WatchGroup
	pub     *redisstream.Publisher

	// regMu serialises what this instance writes about its own nodes
	// (announcements, leaves, heartbeats), so that revisions reach Redis in
	// order and a heartbeat never re-adds a node being deregistered.
	regMu sync.Mutex

	mu     sync.Mutex // guards owned, seq, closed
	owned  map[string]*ownedNode
	seq    uint64
	closed bool

	healthy  atomic.Bool
	stopping atomic.Bool
	synced   chan struct{} // closed after the first snapshot
	kick     chan struct{} // wakes the loop for an early retry
	stop     chan struct{} // closed by Close and Kill
	stopCtx  context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	closeErr error

	// Owned by the loop goroutine.
	sub *redisstream.Subscriber

	ownClient bool // made by Connect: Close closes client
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
// New never closes client: watermill-redisstream closes the client it is
// given, so it gets client behind a wrapper whose Close does nothing. The
// stream reader's blocking XREAD holds one connection of client's pool.
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
	wmLog := watermillLogger(cfg.logger)
	d := &Discovery{
		client: client,
		cfg:    cfg,
		log:    log,
		wmLog:  wmLog,
		events: cfg.prefix + ":events",
		nodes:  cfg.prefix + ":nodes",
		alive:  cfg.prefix + ":alive",
		inc:    discovery.NewIncarnation(),
		view:   discovery.NewView(),
		owned:  make(map[string]*ownedNode),
		synced: make(chan struct{}),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	d.watches = d.view.NewWatchGroup()
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{
		Client:        noClose{client},
		DefaultMaxlen: cfg.maxLen,
	}, wmLog)
	if err != nil {
		return nil, fmt.Errorf("redisdisc: publisher: %w", err)
	}
	d.pub = pub
	d.stopCtx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.loop()
	return d, nil
}

// Keys returns the Redis keys the instance uses: the stream, the hash of
// entries and the sorted set of last heartbeats.
func (d *Discovery) Keys() (events, nodes, alive string) { return d.events, d.nodes, d.alive }

// Healthy reports whether the last Redis round trip of the background loop
// succeeded. While it is false the instance keeps its last view and does not
// expire anyone.
func (d *Discovery) Healthy() bool { return d.healthy.Load() }

// Register implements discovery.Discovery. It writes the node to the
// snapshot and announces it on the stream before returning. A node whose
// entry would exceed MaxEntrySize fails with discovery.ErrInvalidNode. If Redis cannot
// be reached it returns an error wrapping discovery.ErrUnavailable, but the
// registration is kept: the background loop announces it as soon as Redis is
// back (call Deregister to drop it).
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

	d.view.Put(node, d.cfg.ttl, e.Rev, time.Now())
	if err := d.announce(ctx, o); err != nil {
		d.wake()
		return fmt.Errorf("%w: register %q (kept; it is announced when Redis is back): %w", ErrUnavailable, node.ID, err)
	}
	return nil
}

// announce writes o to the snapshot and the stream. regMu is held.
func (d *Discovery) announce(ctx context.Context, o *ownedNode) error {
	id := o.entry.Node.ID
	if err := putScript.Run(ctx, d.client, []string{d.alive, d.nodes, d.events},
		id, o.payload, d.cfg.maxAge.Milliseconds()).Err(); err != nil {
		return err
	}
	if err := d.publish(ctx, o.payload); err != nil {
		return err
	}
	d.mu.Lock()
	if d.owned[id] == o {
		o.announced = true
	}
	d.mu.Unlock()
	return nil
}

func (d *Discovery) publish(ctx context.Context, payload []byte) error {
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.SetContext(ctx)
	return d.pub.Publish(d.events, msg)
}

// Deregister implements discovery.Discovery. The node leaves the local view
// at once; the removal from Redis and the leave announcement are tried up to
// three times within ctx. If they fail the error wraps
// discovery.ErrUnavailable, and the other instances report the node left when
// its TTL has passed.
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
	err := d.deregisterLocked(ctx, nodeID)
	return err
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
	for attempt := 1; ; attempt++ {
		err = delScript.Run(ctx, d.client, []string{d.alive, d.nodes}, id).Err()
		if err == nil {
			err = d.publish(ctx, payload)
		}
		if err == nil || attempt == 3 || ctx.Err() != nil {
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
// within the read block time (WithReadBlock, default at most 2 s).
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
		_ = d.pub.Close() // closes noClose: nothing
		d.healthy.Store(false)
		if d.ownClient {
			// Also ends watermill's reader at once: its blocking XREAD
			// fails on the closed connection and it sees it is stopping.
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
// reader, heartbeats, liveness polling, expiry, and recovery after outages.
func (d *Discovery) loop() {
	defer d.wg.Done()
	defer func() {
		if d.sub != nil {
			_ = d.sub.Close() // waits for watermill's consumer; closes the reader's own client
		}
	}()
	b := backoff{min: min(50*time.Millisecond, d.cfg.heartbeat/2), max: d.cfg.heartbeat}
	timer := time.NewTimer(0)
	defer timer.Stop()
	nextBeat := time.Now()
	synced := false
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
			nextBeat = time.Now()
		case <-timer.C:
		}
		now := time.Now()
		if !now.Before(nextBeat) {
			var err error
			if !synced {
				err = d.firstSync()
				synced = err == nil
			} else {
				err = d.beat()
			}
			now = time.Now()
			switch {
			case err != nil && d.stopping.Load():
				return
			case err != nil:
				if d.healthy.Swap(false) || b.attempt == 0 {
					d.log.Warn("discovery: redis unavailable; keeping the last view and retrying", "err", err)
				} else {
					d.log.Debug("discovery: redis still unavailable", "err", err, "attempt", b.attempt)
				}
				nextBeat = now.Add(b.next())
			default:
				if !d.healthy.Load() && b.attempt > 0 {
					d.log.Info("discovery: redis reachable again; re-syncing", "attempts", b.attempt)
					d.recover(now)
				}
				d.healthy.Store(true)
				b.reset()
				nextBeat = now.Add(d.cfg.heartbeat)
			}
		}
		next := nextBeat
		if d.healthy.Load() {
			for _, n := range d.view.Expire(now) {
				d.log.Debug("discovery: node expired", "peer", n.ID, "lastSeen", n.LastSeen)
				d.cleanup(n.ID)
			}
			if e, ok := d.view.NextExpiry(); ok && e.Before(next) {
				next = e.Add(time.Millisecond)
			}
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
	}
}

// opCtx bounds one background Redis operation.
func (d *Discovery) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.stopCtx, d.cfg.opTimeout)
}

// firstSync reads the snapshot, starts the stream reader right after the
// snapshot's position and announces what Register could not.
func (d *Discovery) firstSync() error {
	pos, err := d.snapshot()
	if err != nil {
		return err
	}
	if err := d.startReader(pos); err != nil {
		return err
	}
	close(d.synced)
	d.reannounce()
	return nil
}

// recover runs when Redis answers again after failures: every known node
// gets a full TTL to show it is alive (nobody could heartbeat meanwhile),
// the snapshot is read again for nodes that joined during the outage, and
// this instance's nodes are announced again (the beat has already re-added
// any that Redis lost).
func (d *Discovery) recover(now time.Time) {
	d.view.TouchAll(now)
	if _, err := d.snapshot(); err != nil {
		d.log.Debug("discovery: re-sync after outage failed", "err", err)
	}
	d.reannounce()
}

// snapshot reads, in one MULTI, the stream's last id, the stored entries,
// the heartbeat scores and the Redis time, and merges them into the view.
// The stream reader starts after the returned id, so no announcement falls
// between the snapshot and the stream.
func (d *Discovery) snapshot() (string, error) {
	ctx, cancel := d.opCtx()
	defer cancel()
	var (
		last   *redis.XMessageSliceCmd
		stored *redis.MapStringStringCmd
		scores *redis.ZSliceCmd
		now    *redis.TimeCmd
	)
	_, err := d.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		last = p.XRevRangeN(ctx, d.events, "+", "-", 1)
		stored = p.HGetAll(ctx, d.nodes)
		scores = p.ZRangeWithScores(ctx, d.alive, 0, -1)
		now = p.Time(ctx)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", err
	}
	pos := "0-0"
	if l := last.Val(); len(l) > 0 {
		pos = l[0].ID
	}
	redisNow := now.Val().UnixMilli()
	localNow := time.Now()
	score := make(map[string]int64, len(scores.Val()))
	for _, z := range scores.Val() {
		id, _ := z.Member.(string)
		score[id] = int64(z.Score)
	}
	for id, raw := range stored.Val() {
		e, err := DecodeEntry([]byte(raw))
		if err != nil || e.Node.ID != id || e.Op == OpLeave {
			d.log.Warn("discovery: skipping malformed snapshot entry", "peer", id, "err", err, "entry", truncate(raw))
			continue
		}
		s, ok := score[id]
		if !ok {
			continue
		}
		seen := localNow.Add(-time.Duration(redisNow-s) * time.Millisecond)
		if localNow.Sub(seen) > e.TTL {
			d.cleanup(id)
			continue
		}
		d.view.Put(e.Node, e.TTL, e.Rev, seen)
	}
	for id, s := range score {
		if _, ok := stored.Val()[id]; !ok && time.Duration(redisNow-s)*time.Millisecond > d.cfg.ttl {
			d.cleanup(id)
		}
	}
	return pos, nil
}

// beat refreshes this instance's nodes, polls everyone's last heartbeat, and
// re-announces nodes Redis lost.
func (d *Discovery) beat() error {
	d.regMu.Lock()
	defer d.regMu.Unlock()
	d.mu.Lock()
	ids := make([]any, 0, len(d.owned))
	for id := range d.owned {
		ids = append(ids, id)
	}
	d.mu.Unlock()

	ctx, cancel := d.opCtx()
	defer cancel()
	res, err := beatScript.Run(ctx, d.client, []string{d.alive, d.nodes}, ids...).Slice()
	if err != nil {
		return err
	}
	localNow := time.Now()
	redisNow, missing, members, err := parseBeat(res)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		d.mu.Lock()
		for _, id := range missing {
			if o := d.owned[id]; o != nil {
				o.announced = false
			}
		}
		d.mu.Unlock()
		d.log.Info("discovery: redis lost nodes of this instance; announcing them again", "nodes", missing)
	}
	var unknown []string
	seenAt := make(map[string]time.Time, len(members))
	for id, s := range members {
		seen := localNow.Add(-time.Duration(redisNow-s) * time.Millisecond)
		if !d.view.Touch(id, seen) {
			unknown = append(unknown, id)
			seenAt[id] = seen
		}
	}
	if len(unknown) > 0 {
		d.fetch(ctx, unknown, seenAt, localNow)
	}
	d.reannounceLocked()
	return nil
}

// fetch reads the entries of nodes that are alive in Redis but unknown
// here (their announcement was trimmed, or arrived during an outage).
func (d *Discovery) fetch(ctx context.Context, ids []string, seenAt map[string]time.Time, localNow time.Time) {
	vals, err := d.client.HMGet(ctx, d.nodes, ids...).Result()
	if err != nil {
		d.log.Debug("discovery: fetching unknown nodes failed", "err", err)
		return
	}
	for i, v := range vals {
		id := ids[i]
		raw, ok := v.(string)
		if !ok {
			if localNow.Sub(seenAt[id]) > d.cfg.ttl {
				d.cleanup(id)
			}
			continue
		}
		e, err := DecodeEntry([]byte(raw))
		if err != nil || e.Node.ID != id || e.Op == OpLeave {
			d.log.Warn("discovery: skipping malformed snapshot entry", "peer", id, "err", err, "entry", truncate(raw))
			continue
		}
		if localNow.Sub(seenAt[id]) > e.TTL {
			d.cleanup(id)
			continue
		}
		d.view.Put(e.Node, e.TTL, e.Rev, seenAt[id])
	}
}

func parseBeat(res []any) (now int64, missing []string, members map[string]int64, err error) {
	if len(res) != 3 {
		return 0, nil, nil, fmt.Errorf("redisdisc: unexpected heartbeat reply of %d elements", len(res))
	}
	now, ok := res[0].(int64)
	if !ok {
		return 0, nil, nil, fmt.Errorf("redisdisc: unexpected heartbeat time %T", res[0])
	}
	ms, _ := res[1].([]any)
	for _, m := range ms {
		if s, ok := m.(string); ok {
			missing = append(missing, s)
		}
	}
	flat, _ := res[2].([]any)
	members = make(map[string]int64, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		id, ok1 := flat[i].(string)
		sc, ok2 := flat[i+1].(string)
		if !ok1 || !ok2 {
			continue
		}
		f, err := strconv.ParseFloat(sc, 64)
		if err != nil {
			continue
		}
		members[id] = int64(f)
	}
	return now, missing, members, nil
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
		if err != nil {
			d.log.Debug("discovery: re-announcing failed", "peer", o.entry.Node.ID, "err", err)
			return
		}
		d.log.Debug("discovery: node announced again", "peer", o.entry.Node.ID)
	}
}

// cleanup removes an expired node from the snapshot if it has not
// heartbeated meanwhile (several instances may race to do it; the script
// makes that harmless).
func (d *Discovery) cleanup(id string) {
	ctx, cancel := d.opCtx()
	defer cancel()
	if err := expireScript.Run(ctx, d.client, []string{d.alive, d.nodes}, id, d.cfg.ttl.Milliseconds()).Err(); err != nil {
		d.log.Debug("discovery: removing an expired node from redis failed", "peer", id, "err", err)
	}
}

// startReader subscribes to the stream after position pos with
// watermill-redisstream in fan-out mode and starts applying entries.
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
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for msg := range msgs {
			d.apply(msg)
			msg.Ack()
		}
	}()
	return nil
}

// apply merges one stream entry into the view. Malformed entries are logged
// and skipped.
func (d *Discovery) apply(msg *message.Message) {
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
