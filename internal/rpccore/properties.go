package rpccore

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// The engine's side of rpc.Property and rpc.PropertyFunc: the properties
// of an exposed struct, and GET and SET.

// prop is one property of an exposed service.
type prop struct {
	name     string
	cell     rpclink.PropertyCell
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
			return nil, fmt.Errorf("%w: %T has properties: expose a pointer to it", rpc.ErrInvalidService, v)
		}
		return nil, nil
	}
	sv := rv.Elem()
	st := sv.Type()
	var out map[string]*prop
	for i := range st.NumField() {
		f := st.Field(i)
		tag, tagged := f.Tag.Lookup("netron")
		isCell := rpclink.Get().IsCellType(f.Type)
		if !isCell {
			if tagged && tag != "-" && f.IsExported() {
				return nil, fmt.Errorf("%w: %T.%s: a property field must be an rpc.Property[T] or rpc.PropertyFunc[T]", rpc.ErrInvalidService, v, f.Name)
			}
			continue
		}
		if !f.IsExported() || f.Anonymous || tag == "-" {
			continue
		}
		opts := strings.Split(tag, ",")
		p := &prop{name: opts[0], cell: rpclink.Get().CellOf(sv.Field(i).Addr().Interface())}
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
				return nil, fmt.Errorf("%w: %T.%s: unknown property option %q", rpc.ErrInvalidService, v, f.Name, o)
			}
		}
		p.readonly = p.readonly || !p.cell.Writable()
		if !validPropertyName(p.name) {
			return nil, fmt.Errorf("%w: %T.%s: invalid property name %q", rpc.ErrInvalidService, v, f.Name, p.name)
		}
		if !carriable(p.cell.PropertyType()) {
			return nil, fmt.Errorf("%w: %T.%s: %s cannot travel as msgpack", rpc.ErrInvalidService, v, f.Name, p.cell.PropertyType())
		}
		if out == nil {
			out = make(map[string]*prop)
		}
		if _, dup := out[p.name]; dup {
			return nil, fmt.Errorf("%w: %T: two properties named %q", rpc.ErrInvalidService, v, p.name)
		}
		out[p.name] = p
	}
	return out, nil
}

func hasPropertyFields(t reflect.Type) bool {
	for i := range t.NumField() {
		if rpclink.Get().IsCellType(t.Field(i).Type) {
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
			return fmt.Errorf("%w: %T: %q is both a method and a property", rpc.ErrInvalidService, e.value, name)
		}
	}
	e.props = props
	pm := make(map[string]wire.PropertyMeta, len(props))
	for name, p := range props {
		pm[name] = wire.PropertyMeta{Type: jsType(p.cell.PropertyType()), Readonly: p.readonly}
		if p.notify {
			name, qn, id := name, e.qn, e.defID
			p.cell.Bind(func(v any) { r.propertyChanged(PropertyChange{Service: qn, ID: id, Property: name, Value: v}) })
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

func propertyNotFound(name string) *rpc.Error {
	return notFound("Property", name, fmt.Sprintf("Property '%s' not found", name))
}

func propertyReadOnly(name string) *rpc.Error {
	return &rpc.Error{Code: 403, Name: "TitanError", Message: fmt.Sprintf("Property '%s' is read-only", name),
		Details: map[string]any{"property": name, "reason": "ReadOnly"}}
}

// invalidPropertyName is Titan's answer to a GET or SET of a name that
// is not an identifier (c2 #100).
func invalidPropertyName() *rpc.Error {
	return &rpc.Error{Code: 400, Name: "TitanError", Message: "Invalid property name", Details: map[string]any{}}
}

// property answers a GET [defId, name] or a SET [defId, name, value]:
// the value, or undefined once set. A read-only property refuses SET with
// 403 (Titan checks only on its client side); an unknown one is 404 for
// both (Titan answers undefined to GET and creates it on SET); a value of
// the wrong type is 400.
func (s *Server) property(ctx context.Context, conn *transport.Conn, t wire.Type, dec *msgpack.Decoder, n int) (any, error) {
	if n < 2 {
		return nil, badRequest("Malformed", fmt.Sprintf("%s data must be [defId, property, ...]", t), nil)
	}
	target, err := wire.DecodeString(dec)
	if err != nil {
		return nil, &rpc.Error{Code: 400, Name: "TitanError", Message: "Definition ID must be a string", Details: map[string]any{}}
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
		v, err := p.cell.GetAny()
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
	if err := p.cell.SetFrom(dec); err != nil {
		return nil, setError(conn, e, name, err)
	}
	return wire.Undefined{}, nil
}

func setError(conn *transport.Conn, e *exposed, name string, err error) error {
	if se, ok := err.(rpclink.SetterError); ok {
		return se.Err
	}
	return argError(conn, fmt.Sprintf("%s.%s: want %s", e.qn, name, e.props[name].cell.PropertyType()), -1, err)
}

func (r remoteInvoker) GetProperty(ctx context.Context, target, name string) ([]byte, error) {
	return r.c.Request(ctx, r.conn, wire.TypeGet, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendString(b, target)
		return wire.AppendString(b, name), nil
	})
}

func (r remoteInvoker) SetProperty(ctx context.Context, target, name string, v any) error {
	_, err := r.c.Request(ctx, r.conn, wire.TypeSet, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 3)
		b = wire.AppendString(b, target)
		b = wire.AppendString(b, name)
		return appendArgs(b, []any{v})
	})
	return err
}

func (v *viaInvoker) GetProperty(ctx context.Context, _, name string) ([]byte, error) {
	r, id, err := v.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return r.GetProperty(ctx, id, name)
}

func (v *viaInvoker) SetProperty(ctx context.Context, _, name string, val any) error {
	r, id, err := v.resolve(ctx)
	if err != nil {
		return err
	}
	return r.SetProperty(ctx, id, name, val)
}

// get and set of a local service: the same checks and conversions as a
// peer's GET and SET, without the network.
func (l localInvoker) GetProperty(_ context.Context, target, name string) ([]byte, error) {
	e, p, err := l.property(target, name)
	if err != nil {
		return nil, err
	}
	v, err := p.cell.GetAny()
	if err != nil {
		return nil, roundTrip(err)
	}
	res, err := l.reg.result(nil, e, v)
	if err != nil {
		return nil, roundTrip(err)
	}
	return wire.Marshal(res)
}

func (l localInvoker) SetProperty(_ context.Context, target, name string, v any) error {
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
	if err := p.cell.SetFrom(dec); err != nil {
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
