package rpc

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// Property is a property of a service that peers read (GET) and, unless
// it is read-only, write (SET), as Titan services' properties. Declare it
// as an exported field of the struct you expose (through a pointer):
//
//	type Counter struct {
//		Count rpc.Property[int]    `netron:"count"`
//		Label rpc.Property[string] `netron:"label,readonly"`
//	}
//
// The field's tag names the property (default: the field's WireName) and
// takes the options readonly (peers cannot SET it: they get 403) and
// notify (every change is reported to the registry's OnPropertyChange
// watchers; a node emits it as the event property:change). The tag "-"
// leaves the field out. The service's methods read and write it with Get,
// Set and Update; every access is safe for concurrent use with the others
// and with peers' GET and SET. The zero value holds T's zero value. A
// Property must not be copied once used.
type Property[T any] struct {
	mu     sync.RWMutex
	v      T
	notify atomic.Pointer[func(any)] // set when the service is exposed with notify
}

// Get returns the value.
func (p *Property[T]) Get() T {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.v
}

// Set sets the value.
func (p *Property[T]) Set(v T) {
	p.mu.Lock()
	p.v = v
	p.mu.Unlock()
	p.changed(v)
}

// Update sets the value to fn of the value, atomically, and returns the
// new value. fn must not use p.
func (p *Property[T]) Update(fn func(T) T) T {
	p.mu.Lock()
	v := fn(p.v)
	p.v = v
	p.mu.Unlock()
	p.changed(v)
	return v
}

func (p *Property[T]) changed(v T) {
	if f := p.notify.Load(); f != nil {
		(*f)(v)
	}
}

func (p *Property[T]) propertyType() reflect.Type { return reflect.TypeFor[T]() }
func (p *Property[T]) writable() bool             { return true }
func (p *Property[T]) getAny() (any, error)       { return p.Get(), nil }
func (p *Property[T]) bind(f func(any))           { p.notify.Store(&f) }

func (p *Property[T]) setFrom(dec *msgpack.Decoder) error {
	var v T
	if err := wire.DecodeArg(dec, reflect.ValueOf(&v).Elem()); err != nil {
		return err
	}
	p.Set(v)
	return nil
}

// PropertyFunc is a property computed by functions: Get returns its value,
// Set (nil: the property is read-only) changes it. Declare it as an
// exported field like Property and set its functions before exposing the
// service; they must be safe for concurrent use. An error from Set goes to
// the peer as a method's error would (an *Error keeps its code; anything
// else is a 500).
type PropertyFunc[T any] struct {
	Get func() T
	Set func(T) error

	notify atomic.Pointer[func(any)]
}

func (p *PropertyFunc[T]) propertyType() reflect.Type { return reflect.TypeFor[T]() }
func (p *PropertyFunc[T]) writable() bool             { return p.Set != nil }
func (p *PropertyFunc[T]) bind(f func(any))           { p.notify.Store(&f) }

func (p *PropertyFunc[T]) getAny() (any, error) {
	if p.Get == nil {
		var zero T
		return zero, nil
	}
	return p.Get(), nil
}

func (p *PropertyFunc[T]) setFrom(dec *msgpack.Decoder) error {
	var v T
	if err := wire.DecodeArg(dec, reflect.ValueOf(&v).Elem()); err != nil {
		return err
	}
	if err := p.Set(v); err != nil {
		return setterError{err}
	}
	if f := p.notify.Load(); f != nil {
		(*f)(v)
	}
	return nil
}

// setterError is an error a PropertyFunc's Set returned: it goes to the
// peer as is, not as an argument error.
type setterError struct{ error }

// propertyCell is what Property and PropertyFunc have in common.
type propertyCell interface {
	propertyType() reflect.Type
	writable() bool
	getAny() (any, error)
	setFrom(dec *msgpack.Decoder) error
	bind(func(any))
}

var propertyCellType = reflect.TypeFor[propertyCell]()

// prop is one property of an exposed service.
type prop struct {
	name     string
	cell     propertyCell
	readonly bool
	notify   bool
}

// PropertyChange reports a change of a property exposed with the tag
// option notify: by a peer's SET, or by the service itself (Property.Set).
type PropertyChange struct {
	Service  string // qualified name, "name@version"
	ID       string // the service's definition id
	Property string
	Value    any
}

// propertyName is Titan's rule for property and method names (1 to 255
// characters).
var propertyName = regexp.MustCompile(`^[\w$][\w$]*$`)

func validPropertyName(s string) bool {
	return len(s) > 0 && len(s) <= 255 && propertyName.MatchString(s)
}

// propertiesOf collects the properties of v: the exported fields of type
// Property[T] or PropertyFunc[T] of the struct v points to.
func propertiesOf(v any) (map[string]*prop, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		if rv.Kind() == reflect.Struct && hasPropertyFields(rv.Type()) {
			return nil, fmt.Errorf("%w: %T has properties: expose a pointer to it", ErrInvalidService, v)
		}
		return nil, nil
	}
	sv := rv.Elem()
	st := sv.Type()
	var out map[string]*prop
	for i := range st.NumField() {
		f := st.Field(i)
		tag, tagged := f.Tag.Lookup("netron")
		isCell := reflect.PointerTo(f.Type).Implements(propertyCellType)
		if !isCell {
			if tagged && tag != "-" && f.IsExported() {
				return nil, fmt.Errorf("%w: %T.%s: a property field must be an rpc.Property[T] or rpc.PropertyFunc[T]", ErrInvalidService, v, f.Name)
			}
			continue
		}
		if !f.IsExported() || f.Anonymous || tag == "-" {
			continue
		}
		opts := strings.Split(tag, ",")
		p := &prop{name: opts[0], cell: sv.Field(i).Addr().Interface().(propertyCell)}
		if p.name == "" {
			p.name = WireName(f.Name)
		}
		for _, o := range opts[1:] {
			switch o {
			case "readonly":
				p.readonly = true
			case "notify":
				p.notify = true
			default:
				return nil, fmt.Errorf("%w: %T.%s: unknown property option %q", ErrInvalidService, v, f.Name, o)
			}
		}
		p.readonly = p.readonly || !p.cell.writable()
		if !validPropertyName(p.name) {
			return nil, fmt.Errorf("%w: %T.%s: invalid property name %q", ErrInvalidService, v, f.Name, p.name)
		}
		if !carriable(p.cell.propertyType()) {
			return nil, fmt.Errorf("%w: %T.%s: %s cannot travel as msgpack", ErrInvalidService, v, f.Name, p.cell.propertyType())
		}
		if out == nil {
			out = make(map[string]*prop)
		}
		if _, dup := out[p.name]; dup {
			return nil, fmt.Errorf("%w: %T: two properties named %q", ErrInvalidService, v, p.name)
		}
		out[p.name] = p
	}
	return out, nil
}

func hasPropertyFields(t reflect.Type) bool {
	for i := range t.NumField() {
		if reflect.PointerTo(t.Field(i).Type).Implements(propertyCellType) {
			return true
		}
	}
	return false
}

// withProperties adds the properties of e to its definition (Titan's
// meta.properties: type and readonly), and binds the notify hooks.
func (r *Registry) withProperties(e *exposed, props map[string]*prop) error {
	for name := range props {
		if _, clash := e.methods[name]; clash {
			return fmt.Errorf("%w: %T: %q is both a method and a property", ErrInvalidService, e.value, name)
		}
	}
	e.props = props
	pm := make(map[string]wire.PropertyMeta, len(props))
	for name, p := range props {
		pm[name] = wire.PropertyMeta{Type: jsType(p.cell.propertyType()), Readonly: p.readonly}
		if p.notify {
			name, qn, id := name, e.qn, e.defID
			p.cell.bind(func(v any) { r.propertyChanged(PropertyChange{Service: qn, ID: id, Property: name, Value: v}) })
		}
	}
	e.def.Meta.Properties = pm
	return nil
}

// OnPropertyChange registers f to be called after every change of a
// property exposed with the tag option notify, in the goroutine that made
// it. f must not block.
func (r *Registry) OnPropertyChange(f func(PropertyChange)) {
	r.mu.Lock()
	r.propWatch = append(r.propWatch, f)
	r.mu.Unlock()
}

func (r *Registry) propertyChanged(c PropertyChange) {
	r.mu.RLock()
	watch := r.propWatch
	r.mu.RUnlock()
	for _, f := range watch {
		f(c)
	}
}

// Sentinels of property errors, for errors.Is.
var (
	// ErrPropertyNotFound: the service has no such property (404).
	ErrPropertyNotFound = &Error{Code: 404, reason: "Property"}
	// ErrPropertyReadOnly: a SET of a read-only property (403).
	ErrPropertyReadOnly = &Error{Code: 403, reason: "ReadOnly"}
)

func propertyNotFound(name string) *Error {
	return notFound("Property", name, fmt.Sprintf("Property '%s' not found", name))
}

func propertyReadOnly(name string) *Error {
	return &Error{Code: 403, Name: "TitanError", Message: fmt.Sprintf("Property '%s' is read-only", name),
		Details: map[string]any{"property": name, "reason": "ReadOnly"}}
}

// invalidPropertyName is Titan's answer to a GET or SET of a name that
// is not an identifier (c2 #100).
func invalidPropertyName() *Error {
	return &Error{Code: 400, Name: "TitanError", Message: "Invalid property name", Details: map[string]any{}}
}

// property answers a GET [defId, name] or a SET [defId, name, value]:
// the value, or undefined once set. A read-only property refuses SET with
// 403 (Titan checks only on its client side); an unknown one is 404 for
// both (Titan answers undefined to GET and creates it on SET); a value of
// the wrong type is 400.
func (s *Server) property(ctx context.Context, conn *peer.Conn, t wire.Type, dec *msgpack.Decoder, n int) (any, error) {
	if n < 2 {
		return nil, badRequest("Malformed", fmt.Sprintf("%s data must be [defId, property, ...]", t), nil)
	}
	target, err := wire.DecodeString(dec)
	if err != nil {
		return nil, &Error{Code: 400, Name: "TitanError", Message: "Definition ID must be a string", Details: map[string]any{}}
	}
	name, err := wire.DecodeString(dec)
	if err != nil || !validPropertyName(name) {
		return nil, invalidPropertyName()
	}
	e := s.reg.targetFor(conn, target)
	if e == nil || !s.allowed(ctx, conn, e.qn, "") {
		return nil, notFound("Service", target, fmt.Sprintf("Service with id %s not found", target))
	}
	if e.relay != nil && s.allowed(ctx, conn, e.qn, name) {
		return relayTo{e}, nil // published by a peer (exposure.go)
	}
	p := e.props[name]
	if p == nil || !s.allowed(ctx, conn, e.qn, name) {
		return nil, propertyNotFound(name)
	}
	if t == wire.TypeGet {
		v, err := p.cell.getAny()
		if err != nil {
			return nil, err
		}
		return s.reg.result(conn, e, v)
	}
	if n < 3 {
		return nil, badRequest("ArgumentCount", "SET data must be [defId, property, value]", nil)
	}
	if p.readonly {
		return nil, propertyReadOnly(name)
	}
	if err := p.cell.setFrom(dec); err != nil {
		return nil, setError(conn, e, name, err)
	}
	return wire.Undefined{}, nil
}

func setError(conn *peer.Conn, e *exposed, name string, err error) error {
	if se, ok := err.(setterError); ok {
		return se.error
	}
	return argError(conn, fmt.Sprintf("%s.%s: want %s", e.qn, name, e.props[name].cell.propertyType()), -1, err)
}

// Get reads the property name of the service (a GET request). A property
// the service's definition does not list fails with ErrPropertyNotFound
// without asking the peer.
func (s *Service) Get(ctx context.Context, name string) (Result, error) {
	if _, ok := s.def.Meta.Properties[name]; !ok {
		return Result{}, s.callError(name, propertyNotFound(name))
	}
	pi, ok := s.inv.(propertyInvoker)
	if !ok {
		return Result{}, fmt.Errorf("%s: properties are not supported by this handle", s.QualifiedName())
	}
	data, err := pi.get(ctx, s.def.ID, name)
	if err != nil {
		return Result{}, s.callError(name, err)
	}
	return Result{raw: data, max: s.inv.decodeMax(), inv: s.inv}, nil
}

// Set writes the property name of the service (a SET request). A property
// the definition marks read-only fails with ErrPropertyReadOnly without
// asking the peer (a Titan node would accept it); one it does not list
// fails with ErrPropertyNotFound.
func (s *Service) Set(ctx context.Context, name string, v any) error {
	pm, ok := s.def.Meta.Properties[name]
	switch {
	case !ok:
		return s.callError(name, propertyNotFound(name))
	case pm.Readonly:
		return s.callError(name, propertyReadOnly(name))
	}
	pi, ok := s.inv.(propertyInvoker)
	if !ok {
		return fmt.Errorf("%s: properties are not supported by this handle", s.QualifiedName())
	}
	if err := pi.set(ctx, s.def.ID, name, v); err != nil {
		return s.callError(name, err)
	}
	return nil
}

// Get reads the property name of s and decodes it as a T.
//
//	n, err := rpc.Get[int](ctx, counter, "count")
func Get[T any](ctx context.Context, s *Service, name string) (T, error) {
	var out T
	r, err := s.Get(ctx, name)
	if err != nil {
		return out, err
	}
	if err := r.decodeInto(&out); err != nil {
		return out, fmt.Errorf("%s.%s: %w", s.QualifiedName(), name, err)
	}
	return out, nil
}

// propertyInvoker reads and writes properties; every invoker is one.
type propertyInvoker interface {
	get(ctx context.Context, target, name string) ([]byte, error)
	set(ctx context.Context, target, name string, v any) error
}

func (r remoteInvoker) get(ctx context.Context, target, name string) ([]byte, error) {
	return r.c.Request(ctx, r.conn, wire.TypeGet, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendString(b, target)
		return wire.AppendString(b, name), nil
	})
}

func (r remoteInvoker) set(ctx context.Context, target, name string, v any) error {
	_, err := r.c.Request(ctx, r.conn, wire.TypeSet, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 3)
		b = wire.AppendString(b, target)
		b = wire.AppendString(b, name)
		return appendArgs(b, []any{v})
	})
	return err
}

func (v *viaInvoker) get(ctx context.Context, _, name string) ([]byte, error) {
	r, id, err := v.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return r.get(ctx, id, name)
}

func (v *viaInvoker) set(ctx context.Context, _, name string, val any) error {
	r, id, err := v.resolve(ctx)
	if err != nil {
		return err
	}
	return r.set(ctx, id, name, val)
}

// get and set of a local service: the same checks and conversions as a
// peer's GET and SET, without the network.
func (l localInvoker) get(_ context.Context, target, name string) ([]byte, error) {
	e, p, err := l.property(target, name)
	if err != nil {
		return nil, err
	}
	v, err := p.cell.getAny()
	if err != nil {
		return nil, roundTrip(err)
	}
	res, err := l.reg.result(nil, e, v)
	if err != nil {
		return nil, roundTrip(err)
	}
	return wire.Marshal(res)
}

func (l localInvoker) set(_ context.Context, target, name string, v any) error {
	e, p, err := l.property(target, name)
	if err != nil {
		return err
	}
	if p.readonly {
		return roundTrip(propertyReadOnly(name))
	}
	b, err := wire.Marshal(v)
	if err != nil {
		return err
	}
	dec := wire.NewTrustedDecoder(b)
	defer wire.ReleaseDecoder(dec)
	if err := p.cell.setFrom(dec); err != nil {
		return roundTrip(setError(nil, e, name, err))
	}
	return nil
}

func (l localInvoker) property(target, name string) (*exposed, *prop, error) {
	e := l.reg.targetFor(nil, target)
	if e == nil {
		return nil, nil, roundTrip(notFound("Service", target, fmt.Sprintf("Service with id %s not found", target)))
	}
	p := e.props[name]
	if p == nil {
		return nil, nil, roundTrip(propertyNotFound(name))
	}
	return e, p, nil
}
