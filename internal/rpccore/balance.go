package rpccore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Policy is how a balanced handle picks among the instances of the
// highest version that has usable ones.
type Policy int

const (
	// PowerOfTwo picks two instances at random and calls the one with
	// fewer calls in flight (from this pool).
	PowerOfTwo Policy = iota
	// RoundRobin takes the instances in turn.
	RoundRobin
)

// Outlier configures the ejection of instances whose calls keep failing
// in transit, after gRPC's outlier detection.
type Outlier struct {
	// ConsecutiveFailures ejects an instance after this many calls in a
	// row failed in transit or timed out; 0 turns ejection off.
	ConsecutiveFailures int
	// BaseEjectionTime is the first ejection's length; the n-th ejection
	// in a row lasts n times as long.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection (at least BaseEjectionTime).
	MaxEjectionTime time.Duration
	// MaxEjectionPercent: no instance is ejected while this share of the
	// pool (or more) already is; one always may be.
	MaxEjectionPercent int
}

// MaxAttempts bounds the attempts of one balanced call, each on another
// instance.
const MaxAttempts = 5

// Pool is the instances of one service that a node balances its calls
// over: at most one per node, each reached through a ConnSource. It is
// safe for concurrent use.
type Pool struct {
	c     *Client
	od    Outlier
	joins func(ctx context.Context) bool // waits for instances joining; nil: none

	mu  sync.RWMutex
	eps []*endpoint // highest version first, then by node id

	size     atomic.Int32 // len(eps)
	ejectedN atomic.Int32 // endpoints ejected now
}

// endpoint is one instance of the service.
type endpoint struct {
	node     string
	version  *semver.Version
	def      wire.Definition // as looked up on the connection of via's first binding
	src      ConnSource
	via      *viaInvoker
	inflight atomic.Int64 // calls of the pool's handles on it now
	served   atomic.Int64 // calls it answered (with a result or an error of its own)
	ejected  atomic.Bool  // mirrors out, for a lock-free pick

	mu         sync.Mutex
	removed    bool      // no longer in the pool: its outcomes change nothing
	failures   int       // in a row
	out        bool      // ejected
	until      time.Time // end of the ejection
	probing    bool      // a call is trying it after its ejection
	multiplier int       // the ejection's length in BaseEjectionTimes
	returned   time.Time // when it came back from its last ejection
	ejections  int
}

// NewPool returns an empty pool whose handles call through c. A call
// that finds no instance to call waits with joins (when not nil) for the
// instances that are joining, and tries again if there were any.
func NewPool(c *Client, od Outlier, joins func(ctx context.Context) bool) *Pool {
	return &Pool{c: c, od: od, joins: joins}
}

// Join looks the service qn ("name@1.2.3") up on src's connection and adds
// the node's instance to the pool, replacing what the pool had of that
// node (its ejection state included).
func (p *Pool) Join(ctx context.Context, node string, src ConnSource, qn string) error {
	conn, err := src.ActiveConn()
	if err != nil {
		return err
	}
	svc, err := p.c.QueryInterface(ctx, conn, qn)
	if err != nil {
		return err
	}
	def := serviceDef(svc)
	v, err := semver.NewVersion(def.Meta.Version)
	if err != nil {
		return fmt.Errorf("rpc: %s on %s: version %q: %w", qn, node, def.Meta.Version, err)
	}
	ep := &endpoint{node: node, version: v, def: def, src: src}
	ep.via = p.c.newVia(src, conn, def)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.eps = slices.DeleteFunc(p.eps, func(e *endpoint) bool {
		if e.node == node {
			p.dropLocked(e)
			return true
		}
		return false
	})
	p.eps = append(p.eps, ep)
	slices.SortFunc(p.eps, func(a, b *endpoint) int {
		if c := b.version.Compare(a.version); c != 0 {
			return c
		}
		return cmp.Compare(a.node, b.node)
	})
	p.size.Store(int32(len(p.eps)))
	return nil
}

// dropLocked forgets e's ejection in the pool's count.
func (p *Pool) dropLocked(e *endpoint) {
	e.mu.Lock()
	e.removed = true
	if e.out {
		e.out = false
		e.ejected.Store(false)
		p.ejectedN.Add(-1)
	}
	e.mu.Unlock()
}

// Remove removes the node's instance; it reports whether there was one.
// Calls in flight on it go on.
func (p *Pool) Remove(node string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.eps)
	p.eps = slices.DeleteFunc(p.eps, func(e *endpoint) bool {
		if e.node == node {
			p.dropLocked(e)
			return true
		}
		return false
	})
	p.size.Store(int32(len(p.eps)))
	return len(p.eps) < n
}

// Member is an instance of a pool as Members reports it.
type Member struct {
	Node      string
	Version   string
	InFlight  int64
	Served    int64
	Ejected   bool
	Ejections int
	Usable    bool // connected and not going away
}

// Members returns the pool's instances, highest version first.
func (p *Pool) Members() []Member {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]Member, 0, len(p.eps))
	for _, e := range p.eps {
		e.mu.Lock()
		m := Member{Node: e.node, Version: e.def.Meta.Version, InFlight: e.inflight.Load(), Served: e.served.Load(),
			Ejected: e.out, Ejections: e.ejections, Usable: e.usable()}
		e.mu.Unlock()
		out = append(out, m)
	}
	return out
}

// Usable reports whether an instance of the pool can be called now.
func (p *Pool) Usable() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, e := range p.eps {
		if e.usable() {
			return true
		}
	}
	return false
}

// usable: connected and not going away.
func (e *endpoint) usable() bool {
	conn, err := e.src.ActiveConn()
	return err == nil && conn.Err() == nil && !conn.GoingAway()
}

// Handle returns a handle that spreads its calls over the pool by policy;
// its description is that of the pool's highest version.
func (p *Pool) Handle(policy Policy) (*rpc.Service, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.eps) == 0 {
		return nil, rpc.ErrNoInstance
	}
	return newService(p.eps[0].def, &balanced{p: p, policy: policy}), nil
}

// Pin returns a handle on one instance, picked by policy, that stays on
// it (following its peer's reconnects). Calls through it do not count in
// the pool's load.
func (p *Pool) Pin(policy Policy) (*rpc.Service, error) {
	var rr atomic.Uint64
	var tried []*endpoint
	for {
		e := p.pick(policy, &rr, tried)
		if e == nil {
			return nil, rpc.ErrNoInstance
		}
		p.done(e, context.Canceled, false) // no call: what pick counted (and a probe it began) is undone
		if !e.ejected.Load() {
			return newService(e.def, e.via), nil
		}
		tried = append(tried, e) // not pinned to an instance on probation
	}
}

// pick returns an instance to call and counts the call in its load: the
// instances of the highest version with a usable one, tried excluded; an
// instance whose ejection has ended is tried by this call (one call at a
// time), else policy picks among the healthy ones. nil: none.
func (p *Pool) pick(policy Policy, rr *atomic.Uint64, tried []*endpoint) *endpoint {
	var buf [8]*endpoint
	cand := buf[:0]
	now := time.Now()
	p.mu.RLock()
	var top *semver.Version
	for _, e := range p.eps {
		if top != nil && !e.version.Equal(top) {
			break
		}
		if slices.Contains(tried, e) || !e.usable() {
			continue
		}
		if e.ejected.Load() {
			if e.tryProbe(now) {
				p.mu.RUnlock()
				e.inflight.Add(1)
				return e
			}
			continue
		}
		top = e.version
		cand = append(cand, e)
	}
	p.mu.RUnlock()
	var e *endpoint
	switch n := len(cand); {
	case n == 0:
		return nil
	case n == 1:
		e = cand[0]
	case policy == RoundRobin:
		e = cand[(rr.Add(1)-1)%uint64(n)]
	default:
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		e = cand[i]
		if cand[j].inflight.Load() < e.inflight.Load() {
			e = cand[j]
		}
	}
	e.inflight.Add(1)
	return e
}

// tryProbe reports whether the caller may try e, ejected, now: its
// ejection has ended and no other call is trying it.
func (e *endpoint) tryProbe(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.out || e.probing || now.Before(e.until) {
		return false
	}
	e.probing = true
	return true
}

// done records the outcome of a call on e: answered, it got a result or
// an error of the instance's own.
func (p *Pool) done(e *endpoint, err error, answered bool) {
	e.inflight.Add(-1)
	if answered {
		e.served.Add(1)
	}
	if p.od.ConsecutiveFailures <= 0 {
		return
	}
	failed := !answered && instanceFailure(err)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return
	}
	switch {
	case failed:
		e.failures++
		switch {
		case e.probing:
			e.probing = false
			p.ejectLocked(e, now)
		case !e.out && e.failures >= p.od.ConsecutiveFailures:
			size := p.size.Load()
			if size > 0 && int(p.ejectedN.Load())*100/int(size) < p.od.MaxEjectionPercent {
				p.ejectLocked(e, now)
			}
		}
	case answered:
		e.failures = 0
		if e.probing {
			e.probing, e.out, e.returned = false, false, now
			e.ejected.Store(false)
			p.ejectedN.Add(-1)
			p.c.logger.Info("netron: balancer: instance back after its ejection", "node", e.node, "service", e.def.Meta.Name)
		}
	case e.probing:
		e.probing = false // cancelled by its caller: another call tries
	}
}

// ejectLocked ejects e (again) for BaseEjectionTime times the number of
// its ejections in a row, capped by MaxEjectionTime; each BaseEjectionTime
// it spent back since its last ejection takes one off that number.
func (p *Pool) ejectLocked(e *endpoint, now time.Time) {
	base := max(p.od.BaseEjectionTime, time.Millisecond)
	if !e.returned.IsZero() {
		e.multiplier = max(0, e.multiplier-int(now.Sub(e.returned)/base))
	}
	e.multiplier++
	d := min(base*time.Duration(e.multiplier), max(base, p.od.MaxEjectionTime))
	e.until, e.returned, e.failures = now.Add(d), time.Time{}, 0
	e.ejections++
	if !e.out {
		e.out = true
		e.ejected.Store(true)
		p.ejectedN.Add(1)
	}
	p.c.logger.Warn("netron: balancer: instance ejected: its calls keep failing in transit", "node", e.node, "service", e.def.Meta.Name, "for", d)
}

// isAnswer reports whether err is an answer of the instance (an error its
// service returned, or its node refused the call with): the instance is
// alive.
func isAnswer(err error) bool {
	var re *rpc.Error
	return errors.As(err, &re) || errors.Is(err, rpc.ErrStreamResult)
}

// instanceFailure reports whether err says something about the instance:
// its connection failed, or it did not answer in time. A caller that
// cancelled says nothing.
func instanceFailure(err error) bool {
	return errors.Is(err, peer.ErrDisconnected) || errors.Is(err, peer.ErrWriteTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// retryable reports whether a call that failed with err on one instance
// may run on another: it never reached the instance (nothing was sent, and
// the reason was the instance's: its connection, or its service gone), or
// its method is idempotent and it failed in transit (the connection
// closed before the reply). Nothing else is run twice.
func retryable(err error, sent, idempotent bool) bool {
	inTransit := errors.Is(err, peer.ErrDisconnected) || errors.Is(err, peer.ErrGoingAway) ||
		errors.Is(err, peer.ErrWriteTimeout) || errors.Is(err, peer.ErrClosed)
	if !sent {
		return inTransit || errors.Is(err, rpc.ErrServiceNotFound)
	}
	return idempotent && inTransit
}

// balanced is the handle of a pool: every call picks its instance.
type balanced struct {
	p      *Pool
	policy Policy
	rr     atomic.Uint64
	last   atomic.Pointer[endpoint] // served the latest call
}

var _ rpclink.Router = (*balanced)(nil)

// attempt runs call on instances of the pool until one answers, or the
// error may not be retried, or MaxAttempts are spent, or none is left.
// ctx must have a deadline: the attempts share it. method names the
// method for its idempotence ("" for none); upload: the call passes
// streams, and is never run twice.
func (b *balanced) attempt(ctx context.Context, method string, upload bool, call func(r remoteInvoker, id string) error) error {
	var tried []*endpoint
	var last error
	waited := false
	for range MaxAttempts {
		e := b.p.pick(b.policy, &b.rr, tried)
		if e == nil && !waited && b.p.joins != nil {
			waited = true
			if b.p.joins(ctx) && ctx.Err() == nil {
				e = b.p.pick(b.policy, &b.rr, tried)
			}
		}
		if e == nil {
			break
		}
		sent := false
		r, id, err := e.via.resolve(ctx)
		resolved := err == nil
		if resolved {
			r.sent = &sent
			err = call(r, id)
		}
		answered := resolved && (err == nil || isAnswer(err))
		b.p.done(e, err, answered)
		if answered {
			b.last.Store(e)
			return err
		}
		last = err
		if ctx.Err() != nil {
			return err
		}
		// Not resolved: nothing of the call left this node (an upload
		// starts only with the call).
		idempotent := method != "" && e.def.Meta.Methods[method].Idempotent
		if resolved && (upload || !retryable(err, sent, idempotent)) {
			return err
		}
		tried = append(tried, e)
	}
	if last == nil {
		return rpc.ErrNoInstance
	}
	return fmt.Errorf("%w (last failure: %w)", rpc.ErrNoInstance, last)
}

// bound gives ctx the client's request timeout when it has no deadline:
// every attempt of a call lives within it.
func (b *balanced) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.p.c.timeout)
}

func (b *balanced) Route(ctx context.Context, method string, args []any) ([]byte, rpclink.Handle, error) {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	var data []byte
	var served rpclink.Handle
	err := b.attempt(ctx, method, hasSources(args), func(r remoteInvoker, id string) error {
		var err error
		data, err = r.Invoke(ctx, id, method, args)
		served = remoteInvoker{c: r.c, conn: r.conn}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return data, served, nil
}

func (b *balanced) Invoke(ctx context.Context, _, method string, args []any) ([]byte, error) {
	data, _, err := b.Route(ctx, method, args)
	return data, err
}

// OpenStream opens the stream on one instance: it stays there.
func (b *balanced) OpenStream(ctx context.Context, _, method string, args []any) (*streamcore.Inbound, error) {
	bctx, cancel := b.bound(ctx)
	defer cancel()
	var in *streamcore.Inbound
	err := b.attempt(bctx, method, hasSources(args), func(r remoteInvoker, id string) error {
		var err error
		in, err = r.OpenStream(ctx, id, method, args) // the stream lives by ctx, not by the call's bound
		return err
	})
	return in, err
}

func (b *balanced) GetProperty(ctx context.Context, _, name string) ([]byte, error) {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	var data []byte
	err := b.attempt(ctx, "", false, func(r remoteInvoker, id string) error {
		var err error
		data, err = r.GetProperty(ctx, id, name)
		return err
	})
	return data, err
}

func (b *balanced) SetProperty(ctx context.Context, _, name string, v any) error {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	return b.attempt(ctx, "", false, func(r remoteInvoker, id string) error {
		return r.SetProperty(ctx, id, name, v)
	})
}

// PeerID is the node that served the latest call, else the first of the
// highest version.
func (b *balanced) PeerID() string {
	if e := b.last.Load(); e != nil {
		return e.node
	}
	b.p.mu.RLock()
	defer b.p.mu.RUnlock()
	if len(b.p.eps) > 0 {
		return b.p.eps[0].node
	}
	return ""
}

// Bind: a result of a balanced call keeps the handle that served it
// (Route), which binds; the pool itself serves no child service.
func (b *balanced) Bind(string) (rpclink.Handle, rpclink.Held) { return nil, nil }

func (b *balanced) DecodeMax() int64 { return 0 }
