package netron

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/rpc"
)

// nodeDiscovery keeps this node registered in discovery, and turns what
// discovery reports into events on the bus.
type nodeDiscovery struct {
	n     *Node
	d     discovery.Discovery
	owned bool
	dirty chan struct{}
	url   string         // where peers reach this node; "" for a client-only node
	wg    sync.WaitGroup // the watch loop
	regWG sync.WaitGroup // the register loop
	stop  context.CancelFunc
}

// discoveryBackend builds the backend the configuration asks for: Redis
// when a host is set, else the process-wide in-memory registry.
func (n *Node) discoveryBackend() (discovery.Discovery, bool, error) {
	dc := n.cfg.Discovery
	if n.cfg.DiscoveryBackend != nil {
		return n.cfg.DiscoveryBackend, false, nil
	}
	if dc.Redis.Host == "" {
		var opts []discovery.MemoryOption
		if dc.Interval > 0 {
			opts = append(opts, discovery.WithHeartbeat(dc.Interval))
		}
		if dc.TTL > 0 {
			opts = append(opts, discovery.WithTTL(dc.TTL))
		}
		return discovery.NewMemory(opts...), true, nil
	}
	port := dc.Redis.Port
	if port == 0 {
		port = 6379
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
	d, err := redisdisc.Connect(net.JoinHostPort(dc.Redis.Host, strconv.Itoa(port)), dc.Redis.Password, dc.Redis.DB, opts...)
	if err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// startDiscovery registers the node and starts following the cluster.
func (n *Node) startDiscovery(ctx context.Context) error {
	if !n.cfg.Discovery.Enabled && n.cfg.DiscoveryBackend == nil {
		return nil
	}
	d, owned, err := n.discoveryBackend()
	if err != nil {
		return fmt.Errorf("netron: discovery: %w", err)
	}
	nd := &nodeDiscovery{n: n, d: d, owned: owned, dirty: make(chan struct{}, 1), url: urlOf(n.addr)}
	if err := d.Register(ctx, nd.nodeInfo()); err != nil {
		if owned {
			d.Close()
		}
		return fmt.Errorf("netron: discovery: register: %w", err)
	}
	rctx, stop := context.WithCancel(n.ctx)
	watch, err := d.Watch(rctx)
	if err != nil {
		stop()
		if owned {
			d.Close()
		}
		return fmt.Errorf("netron: discovery: watch: %w", err)
	}
	n.disc = nd
	nd.stop = stop
	n.reg.OnChange(func(rpccore.ServiceChange) {
		select {
		case nd.dirty <- struct{}{}:
		default:
		}
	})
	nd.regWG.Go(func() { nd.registerLoop(rctx) })
	nd.wg.Go(func() { nd.watchLoop(rctx, watch) })
	return nil
}

// nodeInfo is what this node announces.
func (nd *nodeDiscovery) nodeInfo() discovery.NodeInfo {
	defs := nd.n.reg.Definitions()
	info := discovery.NodeInfo{ID: nd.n.cfg.ID, Address: nd.url}
	for _, d := range defs {
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
	for ev := range watch {
		node := ev.Node
		if node.ID == n.cfg.ID {
			continue
		}
		var names []string
		for _, s := range node.Services {
			names = append(names, s.Name+"@"+s.Version)
		}
		switch ev.Kind {
		case discovery.NodeLeft:
			delete(known, node.ID)
			delete(addrs, node.ID)
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
// it is connected, or reconnects to its address.
func (nd *nodeDiscovery) autoConnect(ctx context.Context, node discovery.NodeInfo) {
	n := nd.n
	if !n.cfg.Discovery.AutoConnect || node.Address == "" {
		return
	}
	if p := n.reconnects.find(node.ID, node.Address); p != nil {
		p.rc.nodeJoined() // it reconnects by itself
		return
	}
	for _, p := range n.Peers() {
		// A peer discovery dialled to the old address does not count:
		// its connection may be half-open, and nothing would dial the new
		// address later.
		if p.ID() == node.ID && p.Err() == nil && !(p.rc != nil && p.rc.isFound() && p.rc.url != node.Address) {
			return
		}
	}
	p, err := n.Connect(ctx, node.Address)
	if err != nil {
		n.logger.Info("netron: discovery: auto-connect failed", "peer", node.ID, "err", err)
		return
	}
	if p.rc != nil {
		p.rc.markFound()
	}
}

// close stops following the cluster and deregisters the node at once.
func (nd *nodeDiscovery) close(ctx context.Context) error {
	// The register loop ends first: a registration in flight (an Expose
	// racing Stop) must not land after the deregistration, where nothing
	// would remove it from a shared backend.
	nd.stop()
	nd.regWG.Wait()
	err := nd.d.Deregister(ctx, nd.n.cfg.ID)
	if nd.owned {
		err = errors.Join(err, nd.d.Close())
	}
	nd.wg.Wait()
	return err
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

// findService resolves spec ("name", "name@1.2.3", "name@^1") through
// discovery: the node with the highest matching version wins, reusing a
// connection when there is one.
func (n *Node) findService(ctx context.Context, spec string) (*rpc.Service, error) {
	name, rng, _ := strings.Cut(spec, "@")
	if rng == "latest" {
		rng = ""
	}
	nodes, err := n.disc.d.Find(ctx, name, rng)
	if err != nil {
		return nil, fmt.Errorf("netron: discovery: %w", err)
	}
	var errs []error
	for _, node := range nodes {
		if node.ID == n.cfg.ID || node.Address == "" {
			continue
		}
		p, err := n.peerByID(ctx, node.ID, node.Address)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		svc, err := p.Service(ctx, spec)
		if err == nil {
			return svc, nil
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("netron: service %s: %w", spec, errors.Join(errs...))
	}
	return nil, fmt.Errorf("netron: service %s: no node offers it: %w", spec, rpc.ErrServiceNotFound)
}
