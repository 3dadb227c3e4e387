package discovery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Default timing of the backends in this module, the values of the original
// Netron.
const (
	DefaultHeartbeat = 5 * time.Second
	DefaultTTL       = 15 * time.Second
)

// Hub is one in-process registry. Every Memory attached to the same Hub sees
// the same nodes. Memory instances use the process-wide default Hub unless
// given WithHub, so every node of a process finds the others with no
// configuration; tests give each case its own Hub.
type Hub struct {
	view *View
}

// NewHub returns an empty, isolated Hub.
func NewHub() *Hub { return &Hub{view: NewView()} }

// defaultHub is the process-wide registry behind NewMemory(): the embedded
// default, shared by every node of the process.
var defaultHub = NewHub()

// MemoryOption configures NewMemory.
type MemoryOption interface{ applyMemory(*memoryConfig) }

type memoryConfig struct {
	hub       *Hub
	heartbeat time.Duration
	ttl       time.Duration
}

type memoryOptionFunc func(*memoryConfig)

func (f memoryOptionFunc) applyMemory(c *memoryConfig) { f(c) }

// WithHub attaches the instance to h instead of the process-wide default Hub.
func WithHub(h *Hub) MemoryOption {
	return memoryOptionFunc(func(c *memoryConfig) {
		if h != nil {
			c.hub = h
		}
	})
}

// WithHeartbeat sets how often the instance refreshes the nodes it
// registered (default DefaultHeartbeat). Values <= 0 keep the default.
func WithHeartbeat(d time.Duration) MemoryOption {
	return memoryOptionFunc(func(c *memoryConfig) {
		if d > 0 {
			c.heartbeat = d
		}
	})
}

// WithTTL sets how long a node this instance registered stays active without
// a heartbeat (default DefaultTTL); it only matters after Kill. Values <= 0
// keep the default; a TTL not longer than the heartbeat becomes three
// heartbeats.
func WithTTL(d time.Duration) MemoryOption {
	return memoryOptionFunc(func(c *memoryConfig) {
		if d > 0 {
			c.ttl = d
		}
	})
}

// Memory is the in-process Discovery backend: every instance attached to
// the same Hub (by default, every instance in the process) sees the nodes
// the others register. It keeps the Redis backend's semantics: registered
// nodes are kept alive by heartbeats, a node whose instance stopped without
// deregistering (Kill) is reported left once its TTL has passed, Deregister
// and Close remove nodes at once.
//
// Memory starts one goroutine, on the first Register or Watch; Close and
// Kill stop it and wait for it.
type Memory struct {
	hub       *Hub
	heartbeat time.Duration
	ttl       time.Duration
	inc       int64
	watches   *WatchGroup

	mu      sync.Mutex
	owned   map[string]memNode
	seq     uint64
	closed  bool
	started bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

type memNode struct {
	info NodeInfo
	rev  Revision
}

var _ Discovery = (*Memory)(nil)

// NewMemory returns an in-process Discovery attached to the process-wide Hub
// (or the one given WithHub).
func NewMemory(opts ...MemoryOption) *Memory {
	c := memoryConfig{hub: defaultHub, heartbeat: DefaultHeartbeat, ttl: DefaultTTL}
	for _, o := range opts {
		o.applyMemory(&c)
	}
	if c.ttl <= c.heartbeat {
		c.ttl = 3 * c.heartbeat
	}
	return &Memory{
		hub:       c.hub,
		heartbeat: c.heartbeat,
		ttl:       c.ttl,
		inc:       NewIncarnation(),
		watches:   c.hub.view.NewWatchGroup(),
		owned:     make(map[string]memNode),
		stop:      make(chan struct{}),
	}
}

var lastIncarnation atomic.Int64

// NewIncarnation returns a Revision.Incarnation for a new backend instance:
// the current Unix time in nanoseconds, made strictly increasing within the
// process.
func NewIncarnation() int64 {
	for {
		last := lastIncarnation.Load()
		next := max(time.Now().UnixNano(), last+1)
		if lastIncarnation.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Register implements Discovery.
func (m *Memory) Register(ctx context.Context, node NodeInfo) error {
	if err := ValidateNode(node); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	node = node.Clone()
	node.LastSeen = time.Time{}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := time.Now()
	if prev, ok := m.owned[node.ID]; ok && prev.info.SameDetails(node) {
		if !m.hub.view.Touch(node.ID, now) {
			m.reannounceLocked(prev.info, now)
		}
		return nil
	}
	m.seq++
	rev := Revision{Incarnation: m.inc, Seq: m.seq}
	m.owned[node.ID] = memNode{info: node, rev: rev}
	m.hub.view.Put(node, m.ttl, rev, now)
	m.startLocked()
	return nil
}

// Deregister implements Discovery.
func (m *Memory) Deregister(ctx context.Context, nodeID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.deregisterLocked(nodeID)
	return nil
}

func (m *Memory) deregisterLocked(id string) {
	if _, ok := m.owned[id]; !ok {
		return
	}
	delete(m.owned, id)
	m.seq++
	m.hub.view.Remove(id, Revision{Incarnation: m.inc, Seq: m.seq}, time.Now())
}

// Nodes implements Discovery.
func (m *Memory) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	m.hub.view.Expire(time.Now())
	return m.hub.view.Nodes(), nil
}

// Find implements Discovery.
func (m *Memory) Find(ctx context.Context, service, versionRange string) ([]NodeInfo, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	m.hub.view.Expire(time.Now())
	return m.hub.view.Find(service, versionRange)
}

// Watch implements Discovery. See Discovery.Watch for the buffering and
// slow-consumer policy.
func (m *Memory) Watch(ctx context.Context) (<-chan Event, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.startLocked()
	m.mu.Unlock()
	m.hub.view.Expire(time.Now())
	return m.watches.Watch(ctx)
}

// Close implements Discovery: it deregisters the nodes this instance
// registered, ends its watches and stops its goroutine. It always returns
// nil.
func (m *Memory) Close() error {
	return m.shutdown(true)
}

// Kill stops the instance as if its process had died: the goroutine stops
// and watches end, but the nodes it registered stay in the Hub and are
// reported left by the other instances once their TTL has passed. Later
// calls fail with ErrClosed. Kill is meant for tests; it is idempotent, and
// Close after Kill does nothing.
func (m *Memory) Kill() error {
	return m.shutdown(false)
}

func (m *Memory) shutdown(deregister bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	if deregister {
		for id := range m.owned {
			m.deregisterLocked(id)
		}
	}
	m.closed = true
	close(m.stop)
	m.mu.Unlock()
	m.wg.Wait()
	m.watches.Close()
	return nil
}

func (m *Memory) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// startLocked starts the heartbeat and expiry goroutine once. m.mu is held.
func (m *Memory) startLocked() {
	if m.started {
		return
	}
	m.started = true
	m.wg.Add(1)
	go m.loop()
}

// loop refreshes this instance's nodes every heartbeat and expires silent
// nodes of the Hub as soon as their TTL passes, so that watchers hear about
// them without anyone querying.
func (m *Memory) loop() {
	defer m.wg.Done()
	t := time.NewTimer(m.heartbeat)
	defer t.Stop()
	nextBeat := time.Now().Add(m.heartbeat)
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		if !now.Before(nextBeat) {
			m.beat(now)
			nextBeat = now.Add(m.heartbeat)
		}
		m.hub.view.Expire(now)
		next := nextBeat
		if e, ok := m.hub.view.NextExpiry(); ok && e.Before(next) {
			next = e.Add(time.Millisecond)
		}
		t.Reset(max(time.Until(next), time.Millisecond))
	}
}

func (m *Memory) beat(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	for id, n := range m.owned {
		if !m.hub.view.Touch(id, now) {
			// Expired while this instance was stalled, or removed by another
			// instance registering and deregistering the same id: announce it
			// again.
			m.reannounceLocked(n.info, now)
		}
	}
}

// reannounceLocked puts an owned node back with a fresh revision, so that
// no tombstone keeps it out. m.mu is held.
func (m *Memory) reannounceLocked(info NodeInfo, now time.Time) {
	m.seq++
	rev := Revision{Incarnation: m.inc, Seq: m.seq}
	m.owned[info.ID] = memNode{info: info, rev: rev}
	m.hub.view.Put(info, m.ttl, rev, now)
}
