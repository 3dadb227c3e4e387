package rpccore

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// Registry holds the services a node exposes, by qualified name
// ("name@version") and by definition id. It is safe for concurrent use.
type Registry struct {
	peerID  string
	streams *streamcore.Manager // for local calls of streaming methods

	// notifyMu orders changes with their notifications: a change and its
	// watchers' calls happen under it, so watchers see the changes in the
	// order they were made.
	notifyMu sync.Mutex

	mu     sync.RWMutex
	byQN   map[string]*exposed
	byName map[string][]*exposed // highest version first
	byDef  map[string]*exposed
	watch  []func(ServiceChange)

	propWatch  []func(PropertyChange) // see properties.go
	kids       childTable             // child services (refs.go)
	localHolds childHolds             // this node's handles on them
	relay      *Client                // calls services peers published (exposure.go)
}

// ServiceChange reports a service exposed or unexposed.
type ServiceChange struct {
	Exposed    bool
	Definition wire.Definition
}

// NewRegistry returns an empty registry for the node peerID.
func NewRegistry(peerID string) *Registry {
	return &Registry{
		peerID: peerID,
		byQN:   make(map[string]*exposed),
		byName: make(map[string][]*exposed),
		byDef:  make(map[string]*exposed),
	}
}

// OnChange registers f to be called, synchronously and in order, after
// every Expose and Unexpose. f must not Expose or Unexpose itself.
func (r *Registry) OnChange(f func(ServiceChange)) {
	r.mu.Lock()
	r.watch = append(r.watch, f)
	r.mu.Unlock()
}

// Expose makes v callable as the service qualifiedName ("name@1.2.3"). Its
// exported methods become callable under their WireName; see the package
// documentation for which methods qualify.
func (r *Registry) Expose(qualifiedName string, v any) (wire.Definition, error) {
	name, ver, err := ParseQualified(qualifiedName)
	if err != nil {
		return wire.Definition{}, err
	}
	if v == nil || (reflect.ValueOf(v).Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil()) {
		return wire.Definition{}, fmt.Errorf("%w: nil value for %s", rpc.ErrInvalidService, qualifiedName)
	}
	methods := methodsOf(v)
	props, err := propertiesOf(v)
	if err != nil {
		return wire.Definition{}, err
	}
	if len(methods) == 0 && len(props) == 0 {
		return wire.Definition{}, fmt.Errorf("%w: %T has no callable methods", rpc.ErrInvalidService, v)
	}
	qn := name + "@" + ver.String()
	defID := uuid.NewString()
	e := &exposed{
		name: name, version: ver, qn: qn, defID: defID, value: v, methods: methods,
		def: definitionOf(defID, r.peerID, name, ver.String(), methods),
	}
	for _, m := range methods {
		e.hasReaders = e.hasReaders || m.readers > 0
	}
	if err := r.withProperties(e, props); err != nil {
		return wire.Definition{}, err
	}
	if err := r.add(e, nil); err != nil {
		return wire.Definition{}, err
	}
	return e.def, nil
}

// add registers e and tells the watchers. With replace, a service of
// the same qualified name for which replace reports true is removed
// first (and the watchers told); any other is rpc.ErrAlreadyExposed.
func (r *Registry) add(e *exposed, replace func(old *exposed) bool) error {
	name, qn, defID := e.name, e.qn, e.defID
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	if old := r.lookupQN(qn); old != nil && replace != nil && replace(old) {
		r.removeLocked(old)
	}
	r.mu.Lock()
	if _, dup := r.byQN[qn]; dup {
		r.mu.Unlock()
		return fmt.Errorf("%w: %s", rpc.ErrAlreadyExposed, qn)
	}
	r.byQN[qn] = e
	r.byDef[defID] = e
	list := append(r.byName[name], e)
	slices.SortFunc(list, func(a, b *exposed) int { return b.version.Compare(a.version) })
	r.byName[name] = list
	watch := r.watch
	r.mu.Unlock()
	for _, f := range watch {
		f(ServiceChange{Exposed: true, Definition: e.def})
	}
	return nil
}

func (r *Registry) lookupQN(qn string) *exposed {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byQN[qn]
}

// Unexpose removes the service qualifiedName.
func (r *Registry) Unexpose(qualifiedName string) error {
	name, ver, err := ParseQualified(qualifiedName)
	if err != nil {
		return err
	}
	qn := name + "@" + ver.String()
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	e := r.lookupQN(qn)
	if e == nil {
		return fmt.Errorf("%w: %s", rpc.ErrNotExposed, qn)
	}
	r.removeLocked(e)
	return nil
}

// removeLocked removes e, if still registered, and tells the watchers;
// the caller holds notifyMu.
func (r *Registry) removeLocked(e *exposed) {
	name, qn := e.name, e.qn
	r.mu.Lock()
	if r.byQN[qn] != e {
		r.mu.Unlock()
		return
	}
	delete(r.byQN, qn)
	delete(r.byDef, e.defID)
	for id, x := range r.byDef {
		if x == e { // an id another node gave it (exposure.go)
			delete(r.byDef, id)
		}
	}
	list := slices.DeleteFunc(slices.Clone(r.byName[name]), func(x *exposed) bool { return x == e })
	if len(list) == 0 {
		delete(r.byName, name)
	} else {
		r.byName[name] = list
	}
	watch := r.watch
	r.mu.Unlock()
	for _, f := range watch {
		f(ServiceChange{Exposed: false, Definition: e.def})
	}
}

// Lookup finds a service by "name" (latest), "name@1.2.3" (exact) or
// "name@<range>" (^1, ~1.2, >=1.0 <2; the highest match wins).
func (r *Registry) Lookup(s string) (wire.Definition, error) {
	e, err := r.resolve(s)
	if err != nil {
		return wire.Definition{}, err
	}
	return e.def, nil
}

func (r *Registry) resolve(s string) (*exposed, error) {
	sp, err := parseSpec(s)
	if err != nil {
		return nil, serviceNotFound(s)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	list := r.byName[sp.name]
	for _, e := range list {
		switch {
		case sp.exact != nil && !e.version.Equal(sp.exact):
		case sp.rng != nil && !sp.rng.Check(e.version):
		case sp.exact == nil && sp.rng == nil && e.version.Prerelease() != "":
			// "latest" prefers releases, like npm's dist-tag
		default:
			return e, nil
		}
	}
	if sp.exact == nil && sp.rng == nil && len(list) > 0 {
		return list[0], nil // only pre-releases
	}
	return nil, serviceNotFound(s)
}

func serviceNotFound(s string) *rpc.Error {
	return &rpc.Error{Code: 404, Name: "TitanError", Message: fmt.Sprintf("Service '%s' not found", s), Details: map[string]any{"serviceName": s}}
}

// target finds the service a CALL addresses: a definition id, or a
// qualified name as the browser client sends.
func (r *Registry) target(s string) *exposed {
	r.mu.RLock()
	e := r.byDef[s]
	if e == nil {
		e = r.byQN[s]
	}
	r.mu.RUnlock()
	if e == nil && len(s) > 0 && len(s) < 256 {
		e, _ = r.resolve(s)
	}
	return e
}

// targetBytes is target for a name that aliases a packet: the exact
// lookups allocate nothing (m[string(b)] does not copy b).
func (r *Registry) targetBytes(b []byte) *exposed {
	name := b
	if i := bytes.IndexByte(b, '@'); i >= 0 {
		name = b[:i]
	}
	r.mu.RLock()
	e := r.byDef[string(b)]
	if e == nil {
		e = r.byQN[string(b)]
	}
	known := e != nil || len(r.byName[string(name)]) > 0
	r.mu.RUnlock()
	if e == nil && known && len(b) < 256 {
		e, _ = r.resolve(string(b)) // a bare name or a range of a service we have
	}
	return e
}

// Definitions returns the definitions of every exposed service, by
// qualified name.
func (r *Registry) Definitions() map[string]wire.Definition {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]wire.Definition, len(r.byQN))
	for qn, e := range r.byQN {
		out[qn] = e.def
	}
	return out
}
