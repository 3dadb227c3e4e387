package netron

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/rpccore"
)

// nodeDiscovery keeps this node registered in discovery, and turns what
// discovery reports into events on the bus.
type nodeDiscovery struct {
	n     *Node
	d     discovery.Discovery
	owned bool
	dirty chan struct{}
	url   string         // where peers reach this node; "" for a client-only node
	wg    sync.WaitGroup // the watch loop and the auto-connect retries
	regWG sync.WaitGroup // the register loop
	stop  context.CancelFunc

	// The auto-connect retries running, by node id (only the watch loop
	// starts and cancels them; see autoConnect).
	retries map[string]context.CancelFunc
	members atomic.Int64 // other nodes the watch loop knows, for Config.Metrics
}

// discoveryBackend builds the backend the configuration asks for: Redis
// when a Redis is named, else the process-wide in-memory registry.
func (n *Node) discoveryBackend() (discovery.Discovery, bool, error) {
	dc := n.cfg.Discovery
	if n.cfg.DiscoveryBackend != nil {
		return n.cfg.DiscoveryBackend, false, nil
	}
	if !dc.Redis.configured() {
		var opts []discovery.MemoryOption
		if dc.Interval > 0 {
			opts = append(opts, discovery.WithHeartbeat(dc.Interval))
		}
		if dc.TTL > 0 {
			opts = append(opts, discovery.WithTTL(dc.TTL))
		}
		return discovery.NewMemory(opts...), true, nil
	}
	opts := []redisdisc.Option{redisdisc.WithLogger(n.logger)}
	if dc.Prefix != "" {
		opts = append(opts, redisdisc.WithPrefix(dc.Prefix))
	}
	if dc.Interval > 0 {
		opts = append(opts, redisdisc.WithHeartbeat(dc.Interval))
	}
	if dc.TTL > 0 {
		opts = append(opts, redisdisc.WithTTL(dc.TTL))
	}
	d, err := redisdisc.ConnectEndpoint(dc.Redis.Endpoint(), opts...)
	if err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// startDiscovery registers the node and starts following the cluster. A
// backend that cannot be reached does not stop the node: it runs, and is
// announced once the backend is back. An id another live node holds does.
// A node restarted after a crash, whose old registration has not expired
// yet, waits within ctx until that registration has been silent long
// enough to be taken over (redisdisc: 1.5 heartbeats).
func (n *Node) startDiscovery(ctx context.Context) error {
	if !n.cfg.Discovery.Enabled && n.cfg.DiscoveryBackend == nil {
		return nil
	}
	d, owned, err := n.discoveryBackend()
	if err != nil {
		return fmt.Errorf("netron: discovery: %w", err)
	}
	nd := &nodeDiscovery{n: n, d: d, owned: owned, dirty: make(chan struct{}, 1), url: n.url}
	err = d.Register(ctx, nd.nodeInfo())
	switch {
	case err == nil:
	case errors.Is(err, discovery.ErrUnavailable) && ctx.Err() == nil:
		n.logger.Warn("netron: discovery is unreachable; the node runs, and is announced when discovery is back", "err", err)
	default:
		if owned {
			d.Close()
		}
		return fmt.Errorf("netron: discovery: register: %w", err)
	}
	wctx, stop := context.WithCancel(n.ctx)
	watch, err := d.Watch(wctx)
	if err != nil {
		stop()
		if owned {
			d.Close()
		}
		return fmt.Errorf("netron: discovery: watch: %w", err)
	}
	n.disc = nd
	n.discM.Store(nd)
	nd.stop = stop
	n.reg.OnChange(func(rpccore.ServiceChange) {
		select {
		case nd.dirty <- struct{}{}:
		default:
		}
	})
	nd.regWG.Go(func() { nd.registerLoop(wctx) })
	nd.wg.Go(func() { nd.watchLoop(wctx, watch) })
	return nil
}

// nodeInfo is what this node announces: its services in the order of
// their qualified names, so that the same services make the same
// announcement (and a re-registration of them is no change).
func (nd *nodeDiscovery) nodeInfo() discovery.NodeInfo {
	defs := nd.n.reg.Definitions()
	info := discovery.NodeInfo{ID: nd.n.cfg.ID, Address: nd.url}
	for _, qn := range slices.Sorted(maps.Keys(defs)) {
		d := defs[qn]
		info.Services = append(info.Services, discovery.ServiceInfo{Name: d.Meta.Name, Version: d.Meta.Version})
	}
	return info
}

// registerLoop re-registers the node when its services change.
func (nd *nodeDiscovery) registerLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-nd.dirty:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := nd.d.Register(rctx, nd.nodeInfo())
		cancel()
		if err != nil && ctx.Err() == nil {
			nd.n.logger.Warn("netron: discovery: re-register failed; retrying", "err", err)
			select {
			case nd.dirty <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// watchLoop turns discovery changes into node:joined, node:left and
// service:discovered events, tells the peers discovery dialled where their
// node is (follow; one that left lets them stop reconnecting), and, when
// AutoConnect is set, connects to new nodes and to nodes that moved.
func (nd *nodeDiscovery) watchLoop(ctx context.Context, watch <-chan discovery.Event) {
	n := nd.n
	known := map[string]map[string]bool{} // node id -> qualified names announced
	addrs := map[string]string{}          // node id -> address announced
	m := n.cfg.Metrics.inner()
	for ev := range watch {
		m.DiscoveryChange("missed", ev.Missed)
		if ev.Missed > 0 {
			n.logger.Warn("netron: discovery: this node did not get some changes of the cluster one by one; resynchronised", "missed", ev.Missed)
		}
		if ev.Kind == discovery.ChangesMissed {
			continue // the count alone: nothing differs
		}
		node := ev.Node
		if node.ID == n.cfg.ID {
			continue
		}
		var names []string
		for _, s := range node.Services {
			names = append(names, s.Name+"@"+s.Version)
		}
		n.observeForPools(ctx, ev)
		if c, ok := presenceOf(ev, names); ok {
			_ = n.ev.publishPresence(ctx, c)
		}
		m.DiscoveryChange(changeKind(ev.Kind), 1)
		switch ev.Kind {
		case discovery.NodeLeft:
			delete(known, node.ID)
			delete(addrs, node.ID)
			nd.stopRetry(node.ID)
			nd.members.Store(int64(len(addrs)))
			for _, rc := range n.reconnects.found(node.ID) {
				rc.nodeLeft()
			}
			_ = n.ev.publishNodeEvent(ctx, NodeEvent{NodeID: node.ID, Address: node.Address, Services: names, Joined: false})
			continue
		case discovery.NodeJoined:
			_ = n.ev.publishNodeEvent(ctx, NodeEvent{NodeID: node.ID, Address: node.Address, Services: names, Joined: true})
		}
		// A join, or an update that moved it (back within its TTL at
		// another address).
		if ev.Kind == discovery.NodeJoined || addrs[node.ID] != node.Address {
			nd.follow(node)
			nd.autoConnect(ctx, node)
		}
		addrs[node.ID] = node.Address
		nd.members.Store(int64(len(addrs)))
		seen := known[node.ID]
		now := map[string]bool{}
		for _, s := range node.Services {
			qn := s.Name + "@" + s.Version
			now[qn] = true
			if !seen[qn] {
				_ = n.ev.publishServiceDiscovered(ctx, ServiceDiscovered{NodeID: node.ID, Address: node.Address, Name: s.Name, Version: s.Version, QualifiedName: qn})
			}
		}
		known[node.ID] = now
	}
}

// changeKind is the kind label of a membership change.
func changeKind(k discovery.EventKind) string {
	switch k {
	case discovery.NodeJoined:
		return "joined"
	case discovery.NodeLeft:
		return "left"
	}
	return "updated"
}

// discoveryStats is what Config.Metrics reports of the node's discovery:
// the other nodes it knows, and the counters of a Redis backend.
func (n *Node) discoveryStats() (obs.DiscoveryStats, bool) {
	nd := n.discM.Load()
	if nd == nil {
		return obs.DiscoveryStats{}, false
	}
	st := obs.DiscoveryStats{Members: int(nd.members.Load())}
	if r, ok := nd.d.(*redisdisc.Discovery); ok {
		st.Redis, st.Errors, st.Reconnects, st.Resyncs = true, r.Errors(), r.Reconnects(), r.Resyncs()
	}
	return st, true
}

// follow tells the peers dialled because discovery named node (by
// AutoConnect or a lookup) where it is now: one of its address reconnects
// as before, at once if it is between connections; one of another address
// stops reconnecting, closed at once, or, while still connected, once its
// connection drops. Peers the user connected are left alone.
func (nd *nodeDiscovery) follow(node discovery.NodeInfo) {
	for _, rc := range nd.n.reconnects.found(node.ID) {
		if rc.url == node.Address {
			rc.nodeJoined()
			continue
		}
		rc.nodeLeft()
		if rc.p.Err() != nil {
			rc.p.Close()
		}
	}
}

// autoConnect connects to node when AutoConnect is set, unless a peer of
// it is connected, or reconnects to its address. A failed dial is tried
// again with the backoff of Config.Reconnect (unless reconnection is
// disabled), in a goroutine of its own, until it succeeds, the node leaves
// or moves, or this node stops: a node announced before it accepts, or a
// network that fails for a moment, is not left unconnected until its
// address changes.
func (nd *nodeDiscovery) autoConnect(ctx context.Context, node discovery.NodeInfo) {
	n := nd.n
	if !n.cfg.Discovery.AutoConnect || node.Address == "" {
		return
	}
	nd.stopRetry(node.ID)
	err := nd.dial(ctx, node)
	if err == nil {
		return
	}
	n.logger.Info("netron: discovery: auto-connect failed", "peer", node.ID, "address", node.Address, "err", err)
	if n.cfg.Reconnect.Disabled || ctx.Err() != nil {
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	if nd.retries == nil {
		nd.retries = map[string]context.CancelFunc{}
	}
	nd.retries[node.ID] = cancel
	nd.wg.Go(func() {
		defer cancel()
		b := backoff{pol: n.cfg.Reconnect.policy()}
		for {
			d, ok := b.next()
			if !ok {
				n.logger.Warn("netron: discovery: auto-connect gave up", "peer", node.ID, "address", node.Address, "attempts", b.attempt+1)
				return
			}
			t := time.NewTimer(d)
			select {
			case <-rctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			err := nd.dial(rctx, node)
			if err == nil || rctx.Err() != nil {
				return
			}
			n.logger.Debug("netron: discovery: auto-connect failed again", "peer", node.ID, "address", node.Address, "err", err)
		}
	})
}

// stopRetry ends the auto-connect retries of the node id, if any.
func (nd *nodeDiscovery) stopRetry(id string) {
	if cancel := nd.retries[id]; cancel != nil {
		cancel()
		delete(nd.retries, id)
	}
}

// dial connects to node at its address unless a peer of it is connected,
// or reconnects to that address (nil then too).
func (nd *nodeDiscovery) dial(ctx context.Context, node discovery.NodeInfo) error {
	n := nd.n
	if p := n.reconnects.find(node.ID, node.Address); p != nil {
		p.rc.nodeJoined() // it reconnects by itself
		return nil
	}
	for _, p := range n.Peers() {
		// A peer discovery dialled to the old address does not count:
		// its connection may be half-open, and nothing would dial the new
		// address later.
		if p.ID() == node.ID && p.Err() == nil && !(p.rc != nil && p.rc.isFound() && p.rc.url != node.Address) {
			return nil
		}
	}
	p, err := n.Connect(ctx, node.Address)
	if err != nil {
		return err
	}
	if p.rc != nil {
		p.rc.markFound()
	}
	return nil
}

// discoveryStopShare bounds the deregistration at Stop, and again the
// closing of a backend the node made: a quarter of what is left of the
// stop's budget, at most a second (a second when ctx has no deadline or has
// ended). Stop says goaway to the peers meanwhile, so a Redis that does
// not answer costs the stop no more than that.
func discoveryStopShare(ctx context.Context) time.Duration {
	share := time.Second
	if dl, ok := ctx.Deadline(); ok && ctx.Err() == nil {
		share = min(share, time.Until(dl)/4)
	}
	return max(share, time.Millisecond)
}

// close stops following the cluster and deregisters the node at once,
// within discoveryStopShare(ctx), then closes a backend the node made,
// within as much again. A backend that cannot be reached is no reason to
// fail the stop: the failed deregistration is logged, and the others see
// the node leave when its TTL has passed.
func (nd *nodeDiscovery) close(ctx context.Context) error {
	share := discoveryStopShare(ctx)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), share)
	defer cancel()
	// The register loop ends first: a registration in flight (an Expose
	// racing Stop) must not land after the deregistration, where nothing
	// would remove it from a shared backend. A registration stuck on a
	// Redis that does not answer holds the backend's writes; the
	// deregistration then gives up at dctx, and the backend's close ends
	// the stuck round trip.
	nd.stop()
	waitGroup(dctx, &nd.regWG)
	var errs []error
	// errors.Is looks into joined errors too: CloseContext joins one
	// error per node, each wrapping ErrUnavailable.
	unavailable := func(what string, err error) {
		if errors.Is(err, discovery.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			nd.n.logger.Warn("netron: discovery: could not "+what+"; the others see the node leave when its TTL has passed", "err", err)
			return
		}
		errs = append(errs, err)
	}
	if err := nd.d.Deregister(dctx, nd.n.cfg.ID); err != nil {
		unavailable("deregister", err)
	}
	if nd.owned {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), share)
		var err error
		if c, ok := nd.d.(interface{ CloseContext(context.Context) error }); ok {
			err = c.CloseContext(cctx)
		} else {
			err = nd.d.Close()
		}
		cancel()
		if err != nil {
			unavailable("close discovery cleanly", err)
		}
	}
	nd.regWG.Wait()
	nd.wg.Wait()
	return errors.Join(errs...)
}

// waitGroup waits for wg, at most until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Discovery returns the node's discovery backend, nil when discovery is off.
func (n *Node) Discovery() discovery.Discovery {
	if n.disc == nil {
		return nil
	}
	return n.disc.d
}

// peerByID returns the connected peer with the node id, connecting to addr
// when there is none. A peer that is reconnecting to addr is not
// duplicated: it tries at once, and is waited for.
//
// Concurrent lookups of one node share one attempt: the first makes it,
// the others wait for its peer (or try themselves if its context ended).
func (n *Node) peerByID(ctx context.Context, id, addr string) (*Peer, error) {
	for {
		n.dialMu.Lock()
		if c := n.dials[id]; c != nil {
			n.dialMu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded) {
				continue // the first caller gave up: not a verdict on the node
			}
			return c.p, c.err
		}
		c := &dialCall{done: make(chan struct{})}
		if n.dials == nil {
			n.dials = make(map[string]*dialCall)
		}
		n.dials[id] = c
		n.dialMu.Unlock()
		c.p, c.err = n.peerByIDOnce(ctx, id, addr)
		n.dialMu.Lock()
		delete(n.dials, id)
		n.dialMu.Unlock()
		close(c.done)
		return c.p, c.err
	}
}

// dialCall is a lookup's attempt to reach a node, shared by the lookups
// of that node that come while it runs.
type dialCall struct {
	done chan struct{} // closed once p and err are set
	p    *Peer
	err  error
}

func (n *Node) peerByIDOnce(ctx context.Context, id, addr string) (*Peer, error) {
	for _, p := range n.Peers() {
		if p.ID() == id && p.Err() == nil {
			return p, nil
		}
	}
	if p := n.reconnects.find(id, addr); p != nil {
		err := p.rc.await(ctx, n.handshakeTimeout())
		select {
		case <-p.Done(): // it gave up or was closed meanwhile: a new peer
		default:
			if err != nil {
				return nil, err
			}
			return p, nil
		}
	}
	p, err := n.Connect(ctx, addr)
	if err == nil && p.rc != nil {
		p.rc.markFound() // it follows discovery: it stops once its node has left
	}
	return p, err
}
