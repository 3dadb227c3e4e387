package rpc

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/netron-go/netron/internal/wire"
)

// fromWire turns the data of an error response into an *Error.
func fromWire(v any) *Error {
	switch x := v.(type) {
	case wire.TitanError:
		return causeFromWire(x, 0)
	case *wire.TitanError:
		return fromWire(*x)
	case wire.JSError:
		e := &Error{Code: 500, Kind: JSKind(x.Kind), Name: x.Name, Message: x.Message, Fields: publicMap(x.Fields), Stack: x.Stack}
		if c, ok := numericCode(x.Fields["code"]); ok {
			e.Code = c
		}
		return e
	case *wire.JSError:
		return fromWire(*x)
	case string:
		return &Error{Code: 500, Name: "Error", Message: x, Thrown: x}
	case nil, wire.Undefined:
		return &Error{Code: 500, Name: "Error", Message: "error without data"}
	default: // a thrown value: no wire type inside it (see publicValue)
		msg := fmt.Sprint(x)
		return &Error{Code: 500, Name: "Error", Message: msg, Thrown: publicValue(x)}
	}
}

func numericCode(v any) (int, bool) {
	switch n := v.(type) {
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		return int(n), true
	case int:
		return n, true
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	}
	return 0, false
}

// publicValue returns v, a value decoded into an empty interface, with the
// values of wire's extension types inside it replaced by what a user can
// name: undefined by nil, a service definition by its ServiceDescription, a
// TitanError or JavaScript Error by an *Error, a reference to a definition
// by the definition's id. A stream reference inside a value is left as it
// is: no stream is expected there (OpenStream reads a method's stream).
// Maps and slices are changed in place.
func publicValue(v any) any {
	switch x := v.(type) {
	case wire.Undefined, *wire.Undefined:
		return nil
	case wire.Definition:
		return describe(x)
	case *wire.Definition:
		return describe(*x)
	case wire.TitanError, *wire.TitanError, wire.JSError, *wire.JSError:
		return fromWire(x)
	case wire.Reference:
		return x.DefID
	case *wire.Reference:
		return x.DefID
	case []any:
		for i := range x {
			x[i] = publicValue(x[i])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = publicValue(e)
		}
	}
	return v
}

// publicMap is publicValue of the details or fields of an error from a
// peer.
func publicMap(m map[string]any) map[string]any {
	publicValue(m)
	return m
}

// publicInto applies publicValue to every interface value inside *v (v a
// pointer): what Result.Decode and Args.Next decoded into interfaces.
func publicInto(v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || !holdsInterface(rv.Type().Elem()) {
		return
	}
	publicWalk(rv.Elem(), 0)
}

func publicWalk(v reflect.Value, depth int) {
	if depth > 64 || !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() && v.CanSet() {
			if p := publicValue(v.Interface()); p == nil {
				v.SetZero()
			} else if pv := reflect.ValueOf(p); pv.Type().AssignableTo(v.Type()) {
				v.Set(pv)
			}
		}
	case reflect.Pointer:
		if !v.IsNil() && holdsInterface(v.Type().Elem()) {
			publicWalk(v.Elem(), depth+1)
		}
	case reflect.Slice, reflect.Array:
		if holdsInterface(v.Type().Elem()) {
			for i := range v.Len() {
				publicWalk(v.Index(i), depth+1)
			}
		}
	case reflect.Map:
		if et := v.Type().Elem(); holdsInterface(et) {
			for _, k := range v.MapKeys() {
				e := reflect.New(et).Elem()
				e.Set(v.MapIndex(k))
				publicWalk(e, depth+1)
				v.SetMapIndex(k, e)
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				publicWalk(f, depth+1)
			}
		}
	}
}

var interfaceTypes sync.Map // reflect.Type → bool

// holdsInterface reports whether a value of type t can hold an empty
// interface (an exported field, an element), so that decoding into it may
// have stored a wire value there.
func holdsInterface(t reflect.Type) bool {
	if b, ok := interfaceTypes.Load(t); ok {
		return b.(bool)
	}
	b := holdsInterfaceOf(t, map[reflect.Type]bool{})
	interfaceTypes.Store(t, b)
	return b
}

// holdsInterfaceOf is holdsInterface; seen holds the types on the way
// (a recursive type holds an interface only through another field).
func holdsInterfaceOf(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return t.NumMethod() == 0
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return holdsInterfaceOf(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsInterfaceOf(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
