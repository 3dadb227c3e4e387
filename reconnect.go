package netron

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/rpc"
)

// Defaults of Config.Reconnect.
const (
	DefaultReconnectBaseDelay = time.Second
	DefaultReconnectMaxDelay  = 30 * time.Second
	DefaultReconnectJitter    = 0.2
)

// reconnectPolicy is Config.Reconnect with its defaults applied.
type reconnectPolicy struct {
	base, max   time.Duration
	maxAttempts int     // 0: unlimited
	jitter      float64 // 0: none
	rand        func() float64
}

func (c ReconnectConfig) policy() reconnectPolicy {
	p := reconnectPolicy{base: c.BaseDelay, max: c.MaxDelay, maxAttempts: c.MaxAttempts, jitter: c.Jitter, rand: rand.Float64}
	if p.base == 0 {
		p.base = DefaultReconnectBaseDelay
	}
	if p.max == 0 {
		p.max = DefaultReconnectMaxDelay
	}
	p.max = max(p.max, p.base)
	switch {
	case p.jitter == 0:
		p.jitter = DefaultReconnectJitter
	case p.jitter < 0:
		p.jitter = 0
	}
	return p
}

// delay returns the wait before attempt n (from 0): min(base·2ⁿ, max),
// less a random part of up to jitter of it.
func (p reconnectPolicy) delay(n int) time.Duration {
	d := p.max
	if n < 62 && p.base <= p.max>>n {
		d = p.base << n
	}
	if p.jitter > 0 {
		d -= time.Duration(p.jitter * p.rand() * float64(d))
	}
	return d
}

// backoff counts the attempts of one outage.
//
// The backoff resets after a good connection: one that stayed up for at
// least the base delay. A connection that drops sooner (a node that
// accepts and closes at once) continues the backoff where it was, so a
// flapping peer is not dialled every base delay forever.
type backoff struct {
	pol     reconnectPolicy
	attempt int
}

// lost is told how long the connection that just closed was up.
func (b *backoff) lost(up time.Duration) {
	if up >= b.pol.base {
		b.attempt = 0
	}
}

// next returns the delay before the next attempt, or false when the
// attempts are spent.
func (b *backoff) next() (time.Duration, bool) {
	if b.pol.maxAttempts > 0 && b.attempt >= b.pol.maxAttempts {
		return 0, false
	}
	d := b.pol.delay(b.attempt)
	b.attempt++
	return d, true
}

// redialer reconnects one dialled Peer. Its goroutine, owned by the
// node's reconnectSet, lives from Connect until the peer is closed, the
// node stops or the attempts are spent: it waits for the connection to
// close, then dials the same URL again with backoff. A peer dialled
// because discovery named its node (AutoConnect or a lookup) also gives
// up at its first failed attempt after its node left discovery
// (nodeLeft), unless the node came back first (nodeJoined).
type redialer struct {
	p      *Peer
	url    string
	pol    reconnectPolicy
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine ends
	wake   chan struct{} // cuts a backoff wait short (nudge)
	dials  atomic.Int64  // dial attempts, for tests

	mu     sync.Mutex
	closed bool          // no more connections: Close, Node.Stop, or given up
	err    error         // why it gave up
	up     chan struct{} // closed when the next connection is in place
	found  bool          // dialled because discovery named the node (AutoConnect or a lookup), not by the user
	left   bool          // its node left discovery: the next failed attempt is the last
}

func newRedialer(p *Peer, url string, pol reconnectPolicy) *redialer {
	rc := &redialer{p: p, url: url, pol: pol, done: make(chan struct{}), wake: make(chan struct{}, 1), up: make(chan struct{})}
	rc.ctx, rc.cancel = context.WithCancel(context.Background())
	return rc
}

// close stops reconnecting; the connection, if open, stays.
func (rc *redialer) close() {
	rc.mu.Lock()
	rc.closed = true
	rc.mu.Unlock()
	rc.cancel()
}

func (rc *redialer) isClosed() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.closed
}

// connErr is Peer.activeConn's error for the current connection c.
func (rc *redialer) connErr(c *transport.Conn) error {
	cerr := c.Err()
	if cerr == nil {
		return nil
	}
	rc.mu.Lock()
	closed, gaveUp := rc.closed, rc.err
	rc.mu.Unlock()
	switch {
	case gaveUp != nil:
		return gaveUp
	case closed:
		return cerr
	}
	return fmt.Errorf("%w: %s: %v", ErrReconnecting, rc.url, cerr)
}

func (rc *redialer) run() {
	p := rc.p
	log := p.node.logger
	defer func() {
		rc.close()
		close(rc.done)
		if p.conn.Load().Err() != nil {
			// Lost for good: the subscriptions that waited for a new
			// connection end (an open connection ends them as it closes).
			p.ev.closeAll(p.conn.Load().Err())
		}
	}()
	b := backoff{pol: rc.pol}
	for {
		conn := p.conn.Load()
		up := time.Now()
		select {
		case <-conn.Done():
		case <-rc.ctx.Done():
			return
		}
		if rc.isClosed() {
			return
		}
		b.lost(time.Since(up))
		for {
			delay, ok := b.next()
			if !ok {
				rc.giveUp(fmt.Errorf("%w: %s: gave up reconnecting after %d attempts", ErrPeerDisconnected, rc.url, rc.pol.maxAttempts))
				log.Warn("netron: gave up reconnecting", "peer", conn.ID(), "url", rc.url, "attempts", rc.pol.maxAttempts)
				return
			}
			log.Info("netron: reconnecting", "peer", conn.ID(), "url", rc.url, "attempt", b.attempt, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-rc.wake:
				t.Stop()
			case <-rc.ctx.Done():
				t.Stop()
				return
			}
			err := rc.redial()
			if err == nil {
				log.Info("netron: reconnected", "peer", p.ID(), "url", rc.url, "attempt", b.attempt)
				break
			}
			if rc.ctx.Err() != nil {
				return
			}
			if rc.hasLeft() {
				rc.giveUp(fmt.Errorf("%w: %s: gave up reconnecting: the node left discovery: %v", ErrPeerDisconnected, rc.url, err))
				log.Info("netron: gave up reconnecting: the node left discovery", "peer", conn.ID(), "url", rc.url, "err", err)
				return
			}
			log.Info("netron: reconnect attempt failed", "peer", conn.ID(), "url", rc.url, "attempt", b.attempt, "err", err)
		}
	}
}

// giveUp ends reconnecting for good with err, the peer's error from then
// on.
func (rc *redialer) giveUp(err error) {
	rc.mu.Lock()
	rc.closed, rc.err = true, err
	rc.mu.Unlock()
}

// markFound records that the peer was dialled because discovery named its
// node (AutoConnect or a lookup): it follows discovery (nodeLeft,
// nodeJoined).
func (rc *redialer) markFound() {
	rc.mu.Lock()
	rc.found = true
	rc.mu.Unlock()
}

// nodeLeft is told that the peer's node left discovery: the peer makes
// the attempt it waits for, and gives up if that fails. The connection,
// if open, stays (a stopping node deregisters before it drains).
func (rc *redialer) nodeLeft() {
	rc.mu.Lock()
	rc.left = true
	rc.mu.Unlock()
}

// nodeJoined is told that the peer's node is in discovery again at the
// peer's URL: it reconnects as before, and, between connections, tries at
// once. A connected peer is not nudged: the nudge would cut the wait of
// its next outage short.
func (rc *redialer) nodeJoined() {
	rc.mu.Lock()
	rc.left = false
	rc.mu.Unlock()
	if rc.p.conn.Load().Err() != nil {
		rc.nudge() // between connections: now, rather than after its backoff
	}
}

// isFound reports whether the peer was dialled because discovery named
// its node.
func (rc *redialer) isFound() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.found
}

func (rc *redialer) hasLeft() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.left
}

// redial makes a new connection and, once it is set up, makes it the
// peer's: it exchanges abilities, renews the event subscriptions and the
// live catalogue.
func (rc *redialer) redial() error {
	p := rc.p
	rc.dials.Add(1)
	conn, err := p.node.hub.Dial(rc.ctx, rc.url, transport.BeforeStart(p.attach))
	if err != nil {
		return err
	}
	ab, err := p.abilities(rc.ctx, conn)
	if err != nil {
		conn.Close()
		return err
	}
	rc.mu.Lock()
	if rc.closed {
		rc.mu.Unlock()
		conn.Close()
		return context.Canceled
	}
	p.setAbilities(conn, ab)
	p.conn.Store(conn)
	close(rc.up)
	rc.up = make(chan struct{})
	select {
	case <-rc.wake: // a nudge for this outage is spent
	default:
	}
	rc.mu.Unlock()
	p.renew(rc.ctx, ab)
	return nil
}

func (n *Node) handshakeTimeout() time.Duration {
	if n.cfg.HandshakeTimeout > 0 {
		return n.cfg.HandshakeTimeout
	}
	return transport.DefaultHandshakeTimeout
}

// attach makes p the Peer of a connection it dialled, before the
// connection is announced: peer:connect and the first events carry p.
func (p *Peer) attach(c *transport.Conn) {
	p.conn.CompareAndSwap(nil, c)
	c.LoadOrStoreValue(peerKey{}, p)
}

// abilities runs the abilities exchange on conn; a Titan node, which has
// no such task, gets zero abilities.
func (p *Peer) abilities(ctx context.Context, conn *transport.Conn) (rpccore.Abilities, error) {
	ab, err := p.node.client.Abilities(ctx, conn, p.node.offer())
	switch {
	case err == nil:
		return ab, nil
	case errors.Is(err, rpc.ErrTaskNotFound):
		return rpccore.Abilities{}, nil
	}
	return rpccore.Abilities{}, fmt.Errorf("abilities: %w", err)
}

// setup runs the steps after a first connection: abilities, and the live
// catalogue when the peer offers service events.
func (p *Peer) setup(ctx context.Context, conn *transport.Conn) error {
	ab, err := p.abilities(ctx, conn)
	if err != nil {
		return err
	}
	p.setAbilities(conn, ab)
	p.syncLiveCatalog(ctx, ab)
	return nil
}

func (p *Peer) syncLiveCatalog(ctx context.Context, ab rpccore.Abilities) {
	if !ab.AllowServiceEvents {
		return // the catalogue stays the snapshot
	}
	if err := p.syncCatalog(ctx, ab.NetronGo != nil); err != nil {
		p.node.logger.Warn("netron: service events unavailable; the catalogue is a snapshot", "peer", p.ID(), "err", err)
	}
}

// renew re-establishes on a new connection what the peer had on the old
// one: the peer's subscribe task for every event name subscribed to
// locally, then the live catalogue.
func (p *Peer) renew(ctx context.Context, ab rpccore.Abilities) {
	p.mu.Lock()
	old := p.catalogSub
	p.catalogSub = nil
	p.mu.Unlock()
	if old != nil {
		p.ev.drop(old) // its remote side went with the old connection
	}
	p.resubscribe(ctx)
	p.syncLiveCatalog(ctx, ab)
}

// resubscribe runs the subscribe task for every name with local
// subscriptions. A name the new node refuses keeps its local
// subscriptions, which then receive nothing; the refusal is logged.
func (p *Peer) resubscribe(ctx context.Context) {
	e := &p.ev
	e.taskMu.Lock()
	defer e.taskMu.Unlock()
	e.mu.Lock()
	names := make([]string, 0, len(e.refs))
	for name := range e.refs {
		names = append(names, name)
	}
	e.mu.Unlock()
	slices.Sort(names)
	for _, name := range names {
		if _, err := p.RunTask(ctx, "subscribe", name); err != nil {
			if errors.Is(err, ErrPeerDisconnected) || ctx.Err() != nil {
				return // lost again: the next connection renews them
			}
			p.node.logger.Warn("netron: subscription not renewed after reconnecting", "peer", p.ID(), "event", name, "err", err)
		}
	}
}

// willReconnect reports whether the loss of a connection of p leaves its
// subscriptions waiting for a new one.
func (p *Peer) willReconnect() bool {
	return p.rc != nil && !p.rc.isClosed()
}

// reconnectSet owns the reconnect goroutines of a node.
type reconnectSet struct {
	mu      sync.Mutex
	stopped bool
	rcs     map[*redialer]struct{}
	wg      sync.WaitGroup
}

// start runs rc's goroutine; false once the node stops.
func (s *reconnectSet) start(rc *redialer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.rcs == nil {
		s.rcs = make(map[*redialer]struct{})
	}
	s.rcs[rc] = struct{}{}
	s.wg.Go(func() {
		rc.run()
		s.mu.Lock()
		delete(s.rcs, rc)
		s.mu.Unlock()
	})
	return true
}

// stop ends every reconnect goroutine and waits for them. Connections that
// are open stay open. It is idempotent.
func (s *reconnectSet) stop() {
	s.mu.Lock()
	s.stopped = true
	rcs := make([]*redialer, 0, len(s.rcs))
	for rc := range s.rcs {
		rcs = append(rcs, rc)
	}
	s.mu.Unlock()
	for _, rc := range rcs {
		rc.close()
	}
	s.wg.Wait()
}

// find returns the reconnecting peer dialled to url whose node is id.
func (s *reconnectSet) find(id, url string) *Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rc := range s.rcs {
		if rc.url == url && rc.p.ID() == id && !rc.isClosed() {
			return rc.p
		}
	}
	return nil
}

// found returns the redialers of the peers dialled to node id because
// discovery named it (see markFound) that still reconnect.
func (s *reconnectSet) found(id string) []*redialer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*redialer
	for rc := range s.rcs {
		rc.mu.Lock()
		found := rc.found && !rc.closed
		rc.mu.Unlock()
		if found && rc.p.ID() == id {
			out = append(out, rc)
		}
	}
	return out
}

// nudge cuts the current backoff wait short: the next attempt is now.
func (rc *redialer) nudge() {
	select {
	case rc.wake <- struct{}{}:
	default:
	}
}

// await returns nil once the peer is connected, nudging it to try now.
// It gives up after limit, or when ctx ends, or when the peer is gone,
// with the peer's error.
func (rc *redialer) await(ctx context.Context, limit time.Duration) error {
	rc.mu.Lock()
	up := rc.up
	rc.mu.Unlock()
	if _, err := rc.p.activeConn(); err == nil {
		return nil
	}
	rc.nudge()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-up:
		return nil
	case <-rc.done:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := rc.p.activeConn()
	return err
}
