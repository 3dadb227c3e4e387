package rpc

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/wire"
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
// The field's tag names the property (default: the field's name in
// lowerCamel, as methods are named) and takes the options readonly (peers
// cannot SET it: they get 403) and notify (the node emits every change as
// the event property:change, netron.EventPropertyChange). The tag "-"
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

// The engine (internal/rpccore) reaches a property through these
// (rpclink.PropertyCell, asserted by cellOf).
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
		return rpclink.SetterError{Err: err}
	}
	if f := p.notify.Load(); f != nil {
		(*f)(v)
	}
	return nil
}

// Sentinels of property errors, for errors.Is.
var (
	// ErrPropertyNotFound: the service has no such property (404).
	ErrPropertyNotFound = &Error{Code: 404, reason: "Property"}
	// ErrPropertyReadOnly: a SET of a read-only property (403).
	ErrPropertyReadOnly = &Error{Code: 403, reason: "ReadOnly"}
)

func propertyNotFound(name string) *Error {
	return &Error{Code: 404, Name: "TitanError", Message: fmt.Sprintf("Property '%s' not found", name),
		Details: map[string]any{"resource": "Property", "id": name}}
}

func propertyReadOnly(name string) *Error {
	return &Error{Code: 403, Name: "TitanError", Message: fmt.Sprintf("Property '%s' is read-only", name),
		Details: map[string]any{"property": name, "reason": "ReadOnly"}}
}

// Get reads the property name of the service (a GET request). A property
// the service's definition does not list fails with ErrPropertyNotFound
// without asking the peer.
func (s *Service) Get(ctx context.Context, name string) (Result, error) {
	if _, ok := s.def.Meta.Properties[name]; !ok {
		return Result{}, s.callError(name, propertyNotFound(name))
	}
	data, err := s.h.GetProperty(ctx, s.def.ID, name)
	if err != nil {
		return Result{}, s.callError(name, err)
	}
	return Result{raw: data, max: s.h.DecodeMax(), h: s.h}, nil
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
	if err := s.h.SetProperty(ctx, s.def.ID, name, v); err != nil {
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

// propertyCell is what Property and PropertyFunc have in common.
type propertyCell interface {
	propertyType() reflect.Type
	writable() bool
	getAny() (any, error)
	setFrom(dec *msgpack.Decoder) error
	bind(func(any))
}

var propertyCellType = reflect.TypeFor[propertyCell]()

// cell is a propertyCell as the engine sees it.
type cell struct{ c propertyCell }

func (c cell) PropertyType() reflect.Type         { return c.c.propertyType() }
func (c cell) Writable() bool                     { return c.c.writable() }
func (c cell) GetAny() (any, error)               { return c.c.getAny() }
func (c cell) SetFrom(dec *msgpack.Decoder) error { return c.c.setFrom(dec) }
func (c cell) Bind(f func(any))                   { c.c.bind(f) }

// isCellType reports whether a field of type t is a Property or a
// PropertyFunc.
func isCellType(t reflect.Type) bool { return reflect.PointerTo(t).Implements(propertyCellType) }

// cellOf returns the property at ptr, a pointer to a field of a type
// isCellType accepts.
func cellOf(ptr any) rpclink.PropertyCell { return cell{ptr.(propertyCell)} }
