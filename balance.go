package netron

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/rpc"
)

// Balancer is how a service handle from discovery spreads its calls over
// the instances of the highest matching version (see docs/balancing.md).
type Balancer int

const (
	// PowerOfTwoChoices, the default, picks two instances at random and
	// calls the one with fewer calls in flight from this node.
	PowerOfTwoChoices Balancer = iota
	// RoundRobin calls the instances in turn.
	RoundRobin
)

// ServiceOption configures the handle Node.Service returns for a service
// it finds through discovery.
type ServiceOption func(*serviceOptions)

type serviceOptions struct {
	balancer Balancer
	pinned   bool
}

// WithBalancer sets how the handle picks an instance for each call
// (default PowerOfTwoChoices).
func WithBalancer(b Balancer) ServiceOption {
	return func(o *serviceOptions) { o.balancer = b }
}

// WithPinned returns a handle that stays on one instance, picked by the
// balancer when the handle is made: for calls that build on each other's
// state on the instance. It follows that instance's reconnects; once the
// instance is gone its calls fail with ErrPeerDisconnected, and a new
// handle picks another.
func WithPinned() ServiceOption {
	return func(o *serviceOptions) { o.pinned = true }
}

// OutlierDetection ejects, for a while, an instance whose calls keep
// failing in transit, as gRPC's outlier detection does (see
// docs/balancing.md). The zero value takes the defaults.
type OutlierDetection struct {
	// ConsecutiveFailures ejects an instance after this many calls in a
	// row failed with a transport error (the connection closed, a write
	// timed out) or timed out. Default 5.
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty" yaml:"consecutiveFailures,omitempty"`
	// BaseEjectionTime is how long a first ejection lasts; the n-th in a
	// row lasts n times as long, and each BaseEjectionTime an instance
	// serves without being ejected takes one off n. When an ejection ends,
	// one call tries the instance: it is back if that call is answered,
	// ejected again if it fails. Default 30 s.
	BaseEjectionTime time.Duration `json:"baseEjectionTime,omitempty" yaml:"baseEjectionTime,omitempty"`
	// MaxEjectionTime caps an ejection (at least BaseEjectionTime).
	// Default 300 s.
	MaxEjectionTime time.Duration `json:"maxEjectionTime,omitempty" yaml:"maxEjectionTime,omitempty"`
	// MaxEjectionPercent: no instance is ejected while this percentage of
	// a service's instances (or more) already is; one always may be.
	// Default 10.
	MaxEjectionPercent int `json:"maxEjectionPercent,omitempty" yaml:"maxEjectionPercent,omitempty"`
	// Disabled turns ejection off.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// The defaults of OutlierDetection.
const (
	defaultConsecutiveFailures = 5
	defaultBaseEjectionTime    = 30 * time.Second
	defaultMaxEjectionTime     = 300 * time.Second
	defaultMaxEjectionPercent  = 10
)

func (od OutlierDetection) engine() rpccore.Outlier {
	if od.Disabled {
		return rpccore.Outlier{}
	}
	o := rpccore.Outlier{
		ConsecutiveFailures: cmpOr(od.ConsecutiveFailures, defaultConsecutiveFailures),
		BaseEjectionTime:    cmpOr(od.BaseEjectionTime, defaultBaseEjectionTime),
		MaxEjectionTime:     cmpOr(od.MaxEjectionTime, defaultMaxEjectionTime),
		MaxEjectionPercent:  cmpOr(od.MaxEjectionPercent, defaultMaxEjectionPercent),
	}
	return o
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// pools are the instances of the services this node found through
// discovery, one pool per spec asked for, followed live.
type pools struct {
	mu sync.Mutex
	m  map[string]*pool // by name@range
	wg sync.WaitGroup   // joins in flight
}

// pool is the instances of one spec.
type pool struct {
	name string
	rng  *semver.Constraints // nil: every version
	p    *rpccore.Pool

	mu      sync.Mutex
	joining map[string]*joinCall // node id → its join in flight
	members map[string]string    // node id → the version joined
}

// joinCall is a join in flight, which others wait for.
type joinCall struct {
	done chan struct{} // closed once err is set
	err  error
}

// waitJoins waits for the joins in flight, until ctx ends; it reports
// whether there were any.
func (pl *pool) waitJoins(ctx context.Context) bool {
	pl.mu.Lock()
	calls := make([]*joinCall, 0, len(pl.joining))
	for _, c := range pl.joining {
		calls = append(calls, c)
	}
	pl.mu.Unlock()
	for _, c := range calls {
		select {
		case <-c.done:
		case <-ctx.Done():
			return true
		}
	}
	return len(calls) > 0
}

// offers returns the highest version of the pool's service that node
// offers in the pool's range.
func (pl *pool) offers(node discovery.NodeInfo) (string, bool) {
	var best *semver.Version
	for _, s := range node.Services {
		if s.Name != pl.name {
			continue
		}
		v, err := semver.NewVersion(s.Version)
		if err != nil || (pl.rng != nil && !pl.rng.Check(v)) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best = v
		}
	}
	if best == nil {
		return "", false
	}
	return best.Original(), true
}

// poolFor returns the pool of spec, made when it is new.
func (n *Node) poolFor(spec string) (*pool, error) {
	name, rng, _ := strings.Cut(spec, "@")
	if rng == "latest" {
		rng = ""
	}
	key := name + "@" + rng
	n.pools.mu.Lock()
	defer n.pools.mu.Unlock()
	if pl := n.pools.m[key]; pl != nil {
		return pl, nil
	}
	pl := &pool{name: name, joining: map[string]*joinCall{}, members: map[string]string{}}
	pl.p = rpccore.NewPool(n.client, n.cfg.OutlierDetection.engine(), pl.waitJoins)
	if rng != "" {
		c, err := semver.NewConstraint(rng)
		if err != nil {
			return nil, fmt.Errorf("netron: service %s: %w: %w", spec, rpc.ErrServiceNotFound, err)
		}
		pl.rng = c
	}
	if n.pools.m == nil {
		n.pools.m = map[string]*pool{}
	}
	n.pools.m[key] = pl
	return pl, nil
}

// balancedService returns a handle on spec balanced over the nodes that
// discovery says offer it. A pool that has a usable instance answers at
// once; else the nodes are looked up and joined, each in a goroutine of
// its own, and the lookup waits for every attempt (or ctx).
func (n *Node) balancedService(ctx context.Context, spec string, o serviceOptions) (*rpc.Service, error) {
	pl, err := n.poolFor(spec)
	if err != nil {
		return nil, err
	}
	if !pl.p.Usable() {
		name, rng, _ := strings.Cut(spec, "@")
		if rng == "latest" {
			rng = ""
		}
		nodes, err := n.disc.d.Find(ctx, name, rng)
		if err != nil {
			return nil, fmt.Errorf("netron: discovery: %w", err)
		}
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, node := range nodes {
			wg.Go(func() {
				if err := n.join(ctx, pl, node, true); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wait := make(chan struct{})
		go func() { wg.Wait(); close(wait) }()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		if !pl.p.Usable() {
			<-wait // the joins end with ctx
			if len(errs) > 0 {
				return nil, fmt.Errorf("netron: service %s: %w", spec, errors.Join(errs...))
			}
			return nil, fmt.Errorf("netron: service %s: no node offers it: %w", spec, rpc.ErrServiceNotFound)
		}
	}
	policy := rpccore.PowerOfTwo
	if o.balancer == RoundRobin {
		policy = rpccore.RoundRobin
	}
	var svc *rpc.Service
	if o.pinned {
		svc, err = pl.p.Pin(policy)
	} else {
		svc, err = pl.p.Handle(policy)
	}
	if err != nil {
		return nil, fmt.Errorf("netron: service %s: %w", spec, err)
	}
	return svc, nil
}

// join connects to node, when it offers the pool's service, and adds it
// to the pool. A node being joined already is waited for (within ctx);
// one joined already at the same version is left alone unless force.
func (n *Node) join(ctx context.Context, pl *pool, node discovery.NodeInfo, force bool) error {
	if node.ID == n.cfg.ID || node.ClientOnly() {
		return nil
	}
	ver, ok := pl.offers(node)
	if !ok {
		if pl.p.Remove(node.ID) {
			pl.mu.Lock()
			delete(pl.members, node.ID)
			pl.mu.Unlock()
		}
		return nil
	}
	pl.mu.Lock()
	if c := pl.joining[node.ID]; c != nil {
		pl.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !force && pl.members[node.ID] == ver {
		pl.mu.Unlock()
		return nil
	}
	c := &joinCall{done: make(chan struct{})}
	pl.joining[node.ID] = c
	pl.mu.Unlock()
	c.err = n.joinOnce(ctx, pl, node, ver)
	pl.mu.Lock()
	delete(pl.joining, node.ID)
	if c.err == nil {
		pl.members[node.ID] = ver
	}
	pl.mu.Unlock()
	close(c.done)
	return c.err
}

func (n *Node) joinOnce(ctx context.Context, pl *pool, node discovery.NodeInfo, ver string) error {
	p, err := n.peerByID(ctx, node.ID, node.Address)
	if err != nil {
		return fmt.Errorf("%s: %w", node.ID, err)
	}
	if err := pl.p.Join(ctx, node.ID, connSource{p}, pl.name+"@"+ver); err != nil {
		return fmt.Errorf("%s: %w", node.ID, err)
	}
	return nil
}

// observeForPools follows a discovery change in every pool: a node that joined
// or now offers a pool's service is connected to and added (in a
// goroutine of the node's), one that left or stopped offering it is
// removed at once.
func (n *Node) observeForPools(ctx context.Context, ev discovery.Event) {
	n.pools.mu.Lock()
	all := make([]*pool, 0, len(n.pools.m))
	for _, pl := range n.pools.m {
		all = append(all, pl)
	}
	n.pools.mu.Unlock()
	for _, pl := range all {
		if ev.Kind == discovery.NodeLeft {
			if pl.p.Remove(ev.Node.ID) {
				pl.mu.Lock()
				delete(pl.members, ev.Node.ID)
				pl.mu.Unlock()
			}
			continue
		}
		node := ev.Node
		if _, ok := pl.offers(node); !ok || node.ID == n.cfg.ID || node.ClientOnly() {
			if pl.p.Remove(node.ID) {
				pl.mu.Lock()
				delete(pl.members, node.ID)
				pl.mu.Unlock()
			}
			continue
		}
		// A node that moved (another address) is joined anew.
		force := ev.Kind == discovery.NodeJoined || slices.ContainsFunc(n.reconnects.found(node.ID), func(rc *redialer) bool { return rc.url != node.Address })
		n.pools.wg.Go(func() {
			if err := n.join(ctx, pl, node, force); err != nil && ctx.Err() == nil {
				n.logger.Info("netron: balancer: could not add an instance", "peer", node.ID, "service", pl.name, "err", err)
			}
		})
	}
}
