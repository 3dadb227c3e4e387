package rpccore

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// The engine's side of rpc.Ref: child services, who holds them, and the
// Reference arguments that name them.

// ref is an rpc.Ref.
type ref struct {
	qn string
	v  any
}

// child is a child service and the connections that hold it (nil: this
// node itself).
type child struct {
	e       *exposed
	key     any // its value in byVal, nil when its value is not comparable
	holders map[*transport.Conn]struct{}
}

// childTable is the registry's child services.
type childTable struct {
	mu     sync.Mutex
	byDef  map[string]*child
	byVal  map[any]*child
	byConn map[*transport.Conn]map[string]struct{}
}

// result turns what a method (or a property) of e returned to conn (nil:
// a local call) into what its reply carries: a Ref becomes the child's
// definition (ext 109), held by conn.
func (r *Registry) result(conn *transport.Conn, parent *exposed, v any) (any, error) {
	if qn, val, ok := rpclink.Get().RefOf(v); ok {
		return r.refChild(conn, parent, ref{qn: qn, v: val})
	}
	return v, nil
}

// refChild registers x as a child of parent held by conn and returns its
// definition.
func (r *Registry) refChild(conn *transport.Conn, parent *exposed, x ref) (wire.Definition, error) {
	if x.v == nil {
		return wire.Definition{}, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("%s returned a Ref without a value", parent.qn)}
	}
	var key any
	if t := reflect.TypeOf(x.v); t.Comparable() {
		key = x.v
		r.mu.RLock()
		for _, e := range r.byDef {
			if e.value == key {
				r.mu.RUnlock()
				return e.def, nil // an exposed service: not counted
			}
		}
		r.mu.RUnlock()
	}
	k := &r.kids
	k.mu.Lock()
	defer k.mu.Unlock()
	var c *child
	if key != nil {
		c = k.byVal[key]
	}
	if c == nil {
		e, err := r.newChild(parent, x)
		if err != nil {
			return wire.Definition{}, err
		}
		c = &child{e: e, key: key, holders: make(map[*transport.Conn]struct{}, 1)}
	}
	if conn != nil {
		select {
		case <-conn.Done():
			// Closed: its references are released (or about to be);
			// it must not hold a new one. The reply will not arrive.
			return c.e.def, nil
		default:
		}
	}
	if len(c.holders) == 0 {
		if k.byDef == nil {
			k.byDef = make(map[string]*child)
			k.byVal = make(map[any]*child)
			k.byConn = make(map[*transport.Conn]map[string]struct{})
		}
		k.byDef[c.e.defID] = c
		if key != nil {
			k.byVal[key] = c
		}
	}
	c.holders[conn] = struct{}{}
	held := k.byConn[conn]
	if held == nil {
		held = make(map[string]struct{})
		k.byConn[conn] = held
	}
	held[c.e.defID] = struct{}{}
	return c.e.def, nil
}

// newChild makes the exposed service of a child.
func (r *Registry) newChild(parent *exposed, x ref) (*exposed, error) {
	name, ver, err := ParseQualified(x.qn)
	if err != nil {
		return nil, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("%s returned a child service: %v", parent.qn, err)}
	}
	methods := methodsOf(x.v)
	props, err := propertiesOf(x.v)
	if err == nil && len(methods) == 0 && len(props) == 0 {
		err = fmt.Errorf("%w: %T has no callable methods or properties", rpc.ErrInvalidService, x.v)
	}
	if err != nil {
		return nil, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("%s returned a child service: %v", parent.qn, err)}
	}
	id := uuid.NewString()
	e := &exposed{
		name: name, version: ver, qn: name + "@" + ver.String(), defID: id, value: x.v, methods: methods,
		def: definitionOf(id, r.peerID, name, ver.String(), methods),
	}
	e.def.ParentID = parent.defID
	for _, m := range methods {
		e.hasReaders = e.hasReaders || m.readers > 0
	}
	if err := r.withProperties(e, props); err != nil {
		return nil, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("%s returned a child service: %v", parent.qn, err)}
	}
	return e, nil
}

// child returns the child service id, if conn holds it (conn nil: this
// node, which may use any).
func (r *Registry) child(conn *transport.Conn, id string) *exposed {
	k := &r.kids
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.byDef[id]
	if c == nil {
		return nil
	}
	if _, ok := c.holders[conn]; !ok && conn != nil {
		return nil
	}
	return c.e
}

// targetFor is target for a request from conn (nil: this node): a
// service exposed by name, or a child service conn holds.
func (r *Registry) targetFor(conn *transport.Conn, s string) *exposed {
	if e := r.target(s); e != nil {
		return e
	}
	return r.child(conn, s)
}

// release drops conn's hold on the child id; a child nobody holds is
// forgotten. It reports whether conn held it.
func (r *Registry) release(conn *transport.Conn, id string) bool {
	k := &r.kids
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.byDef[id]
	if c == nil {
		return false
	}
	if _, ok := c.holders[conn]; !ok {
		return false
	}
	k.drop(c, conn)
	if held := k.byConn[conn]; held != nil {
		delete(held, id)
		if len(held) == 0 {
			delete(k.byConn, conn)
		}
	}
	return true
}

// drop removes conn from c's holders and forgets c when it was the last.
func (k *childTable) drop(c *child, conn *transport.Conn) {
	delete(c.holders, conn)
	if len(c.holders) == 0 {
		delete(k.byDef, c.e.defID)
		if c.key != nil {
			delete(k.byVal, c.key)
		}
	}
}

// releaseConn drops every hold of conn (it closed).
func (r *Registry) releaseConn(conn *transport.Conn) {
	k := &r.kids
	k.mu.Lock()
	defer k.mu.Unlock()
	for id := range k.byConn[conn] {
		if c := k.byDef[id]; c != nil {
			k.drop(c, conn)
		}
	}
	delete(k.byConn, conn)
}

// Children returns how many child services the registry holds for its
// peers and for this node (see Ref).
func (r *Registry) Children() int {
	r.kids.mu.Lock()
	defer r.kids.mu.Unlock()
	return len(r.kids.byDef)
}

// watchDisconnects releases the children a connection held when it
// closes.
func (s *Server) watchDisconnects(b *bus.Bus) error {
	unsub, err := bus.NewTopic[transport.ConnEvent](b, transport.TopicDisconnected).SubscribeFunc(func(_ context.Context, ev transport.ConnEvent) {
		s.reg.releaseConn(ev.Conn)
		s.reg.dropRelayed(ev.Conn)
	})
	if err != nil {
		return err
	}
	s.unsubRefs = unsub
	return nil
}

// unrefService is the task unref_service(defId): the calling peer no
// longer holds the child service defId. It always answers undefined, as
// Titan does, whatever the argument.
func (s *Server) unrefService(_ context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	var id any
	if args.Len() > 0 && args.Next(&id) == nil {
		if sid, ok := id.(string); ok {
			s.reg.release(conn, sid)
		}
	}
	return wire.Undefined{}, nil
}

var (
	serviceType   = reflect.TypeFor[*rpc.Service]()
	referenceType = reflect.TypeFor[wire.Reference]()
)

// refParam reports whether a parameter of type t may take a Reference
// (ext 108): a pointer or an interface.
func refParam(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface
}

// reference decodes the Reference (ext 108) that is the next value of
// dec, argument i of m, and returns the service it names: for a *Service
// parameter a local handle on it, else its value, which must be
// assignable to t. An unknown id (or a child conn does not hold) is 404,
// a service of another type 400.
func (env callEnv) reference(dec *msgpack.Decoder, t reflect.Type, e *exposed, m *method, i int) (reflect.Value, error) {
	var ref wire.Reference
	if err := wire.DecodeArg(dec, reflect.ValueOf(&ref).Elem()); err != nil {
		return reflect.Value{}, argError(env.conn, fmt.Sprintf("%s.%s argument %d: malformed reference", e.qn, m.name, i+1), i, err)
	}
	if ref.DefID == "" {
		return reflect.Value{}, badRequest("ArgumentType", fmt.Sprintf("%s.%s argument %d: a reference without a definition id", e.qn, m.name, i+1), map[string]any{"index": i})
	}
	var target *exposed
	if env.reg != nil {
		target = env.reg.targetFor(env.conn, ref.DefID)
	}
	if target == nil || target.defID != ref.DefID {
		return reflect.Value{}, notFound("Definition", ref.DefID, fmt.Sprintf("Definition with id %s not found", ref.DefID))
	}
	if t == serviceType {
		if target.relay != nil { // published by a peer: a handle that calls it there
			env.reg.mu.RLock()
			c := env.reg.relay
			env.reg.mu.RUnlock()
			if c != nil {
				return reflect.ValueOf(c.Remote(target.relay, target.def)), nil
			}
		}
		return reflect.ValueOf(newService(target.def, localInvoker{reg: env.reg, logger: env.logger})), nil
	}
	v := reflect.ValueOf(target.value)
	if target.value == nil || !v.Type().AssignableTo(t) {
		what := fmt.Sprintf("%T", target.value)
		if target.value == nil {
			what = "served by peer " + target.def.PeerID
		}
		return reflect.Value{}, badRequest("ArgumentType",
			fmt.Sprintf("%s.%s argument %d: want %s, got a reference to %s (%s)", e.qn, m.name, i+1, t, target.qn, what),
			map[string]any{"index": i})
	}
	rv := reflect.New(t).Elem()
	rv.Set(v)
	return rv, nil
}

// heldRef is a handle's hold on a child service.
type heldRef struct {
	inv rpclink.Handle
	id  string
}

// childHolds counts the handles on child services of one connection
// (remote) or of this node (local), and the replies that handed them out:
// the peer hears unref_service once no handle is left, once per reply (a
// Titan node counts replies; a Go node takes the first and ignores the
// rest).
type childHolds struct {
	mu sync.Mutex
	n  map[string]*holdCount
}

// holdCount is the handles on one child not released yet, and the
// replies that handed them out since none was left.
type holdCount struct{ live, replies int }

type childHoldsKey struct{}

func holdsOf(inv rpclink.Handle) *childHolds {
	switch x := inv.(type) {
	case remoteInvoker:
		if v, ok := x.conn.Value(childHoldsKey{}); ok {
			return v.(*childHolds)
		}
		v, _ := x.conn.LoadOrStoreValue(childHoldsKey{}, &childHolds{})
		return v.(*childHolds)
	case localInvoker:
		return &x.reg.localHolds
	}
	return nil
}

func holdChild(inv rpclink.Handle, id string) *heldRef {
	h := holdsOf(inv)
	if h == nil {
		return nil
	}
	h.mu.Lock()
	if h.n == nil {
		h.n = make(map[string]*holdCount)
	}
	c := h.n[id]
	if c == nil {
		c = new(holdCount)
		h.n[id] = c
	}
	c.live++
	c.replies++
	h.mu.Unlock()
	return &heldRef{inv: inv, id: id}
}

// Release gives the hold back.
func (h *heldRef) Release(ctx context.Context) error {
	hs := holdsOf(h.inv)
	hs.mu.Lock()
	c := hs.n[h.id]
	c.live--
	replies := c.replies
	if c.live > 0 {
		hs.mu.Unlock()
		return nil
	}
	delete(hs.n, h.id)
	hs.mu.Unlock()
	switch x := h.inv.(type) {
	case localInvoker:
		x.reg.release(nil, h.id)
	case remoteInvoker:
		if x.conn.Err() != nil {
			return nil // the peer released it when the connection closed
		}
		for range replies {
			if _, err := x.c.RunTask(ctx, x.conn, "unref_service", h.id); err != nil {
				return fmt.Errorf("rpc: releasing service %s: %w", h.id, err)
			}
		}
	}
	return nil
}

// Bind of a remote handle: this connection.
func (r remoteInvoker) Bind(childID string) (rpclink.Handle, rpclink.Held) {
	if childID == "" {
		return r, nil
	}
	return r, holdChild(r, childID)
}

// Bind of a local handle: this node.
func (l localInvoker) Bind(childID string) (rpclink.Handle, rpclink.Held) {
	if childID == "" {
		return l, nil
	}
	return l, holdChild(l, childID)
}

// Bind of a handle that follows reconnects: the connection it uses now
// (the one the result came over; a child lives on one connection).
func (v *viaInvoker) Bind(childID string) (rpclink.Handle, rpclink.Held) {
	b := v.b.Load()
	if b == nil {
		return nil, nil
	}
	return remoteInvoker{c: v.c, conn: b.conn}.Bind(childID)
}
