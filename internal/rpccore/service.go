package rpccore

import (
	"context"
	"reflect"
	"sort"
	"strconv"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

var (
	ctxType   = reflect.TypeFor[context.Context]()
	errorType = reflect.TypeFor[error]()
)

// method is one callable method of an exposed value.
type method struct {
	// server is its series in the server's metrics, looked up once (see
	// serverCall.begin).
	server atomic.Pointer[obs.CallMetrics]
	name   string
	// fn is the method's func (receiver first) and rcvr its receiver:
	// calling through a method value (Value.Method) allocates the
	// receiver's closure on every call.
	fn   reflect.Value
	rcvr reflect.Value
	// argBlock, for a method of two or more wire arguments, is a struct
	// of their types: one allocation holds them all (see invoke).
	argBlock reflect.Type
	hasCtx   bool
	args     []reflect.Type
	hasOut   bool
	hasErr   bool
	// source: the result is a stream (a channel, an iter.Seq2 or a
	// stream.Source), sent as a StreamReference and then chunks.
	source bool
	// writer is the *stream.Writer[T] last parameter of a method that
	// streams by writing, nil otherwise; it is not a wire argument.
	writer reflect.Type
	// readers counts the *stream.Reader[T] parameters (wire arguments
	// that carry a StreamReference).
	readers int
	// idempotent: marked so at Expose (rpc.Idempotent).
	idempotent bool
}

// streaming reports whether the method's reply is a stream.
func (m *method) streaming() bool { return m.source || m.writer != nil }

// exposed is a service on this node.
type exposed struct {
	name    string
	version *semver.Version
	qn      string
	defID   string
	value   any
	methods map[string]*method
	def     wire.Definition
	// hasReaders: a method takes a stream argument (see eachStreamArg).
	hasReaders bool
	props      map[string]*prop // see properties.go
	relay      *transport.Conn  // the peer that published it (exposure.go), nil for ours
}

// WireName is the name a Go method is called by on the wire: lowerCamel,
// with a leading initialism lowered whole (Add → add, HTTPGet → httpGet,
// ID → id).
func WireName(goName string) string {
	rs := []rune(goName)
	n := 0
	for n < len(rs) && unicode.IsUpper(rs[n]) {
		n++
	}
	switch {
	case n == 0:
		return goName
	case n == 1 || n == len(rs):
	default:
		n-- // keep the capital that starts the next word: HTTPGet → httpGet
	}
	for i := range n {
		rs[i] = unicode.ToLower(rs[i])
	}
	return string(rs)
}

// methodsOf collects the callable methods of v: exported methods with an
// optional leading context.Context, arguments msgpack can carry, and
// results (), (T), (error) or (T, error). Streams: T may be a receivable
// channel, an iter.Seq2[T, error] or a stream.Source; a parameter may be a
// *stream.Reader[T] (a stream the caller passes); a last parameter
// *stream.Writer[T] (with results () or (error)) makes the method stream
// what it writes.
func methodsOf(v any) map[string]*method {
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	out := make(map[string]*method)
	for i := range rt.NumMethod() {
		m := rt.Method(i)
		if !m.IsExported() {
			continue
		}
		if r, _ := utf8.DecodeRuneInString(m.Name); !unicode.IsUpper(r) {
			continue
		}
		ft := m.Type // includes the receiver
		md := &method{name: WireName(m.Name), fn: m.Func, rcvr: rv}
		in := 1
		if ft.NumIn() > in && ft.In(in) == ctxType {
			md.hasCtx = true
			in++
		}
		ok := !ft.IsVariadic()
		for ; in < ft.NumIn(); in++ {
			t := ft.In(in)
			switch {
			case streamcore.T().IsWriter(t):
				ok = ok && in == ft.NumIn()-1
				md.writer = t
				continue
			case streamcore.T().IsReader(t):
				md.readers++
			case !carriable(t):
				ok = false
			}
			if !ok {
				break
			}
			md.args = append(md.args, t)
		}
		switch ft.NumOut() {
		case 0:
		case 1:
			switch out := ft.Out(0); {
			case out == errorType:
				md.hasErr = true
			case streamcore.T().IsSource(out):
				md.hasOut, md.source = true, true
			default:
				md.hasOut = carriable(out)
				ok = ok && md.hasOut
			}
		case 2:
			md.hasOut, md.hasErr = true, ft.Out(1) == errorType
			md.source = streamcore.T().IsSource(ft.Out(0))
			ok = ok && md.hasErr && (md.source || carriable(ft.Out(0)))
		default:
			ok = false
		}
		if md.writer != nil && (md.hasOut || md.source) {
			ok = false // a writer method's only result is its error
		}
		if ok {
			md.argBlock = argBlockOf(md.args)
			out[md.name] = md
		}
	}
	return out
}

// argBlockOf returns a struct type with a field of each of args, or nil
// for fewer than two (one allocation of its own is as cheap).
func argBlockOf(args []reflect.Type) reflect.Type {
	if len(args) < 2 {
		return nil
	}
	fields := make([]reflect.StructField, len(args))
	for i, t := range args {
		fields[i] = reflect.StructField{Name: "A" + strconv.Itoa(i), Type: t}
	}
	return reflect.StructOf(fields)
}

// carriable reports whether values of t can travel as msgpack.
func carriable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return false
	}
	return t != ctxType
}

// jsType names a Go type the way Titan's method metadata does.
func jsType(t reflect.Type) string {
	if t == nil {
		return "undefined"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "Boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "Number"
	case reflect.String:
		return "String"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "Buffer"
		}
		return "Array"
	case reflect.Array:
		return "Array"
	case reflect.Pointer:
		return jsType(t.Elem())
	}
	return "Object"
}

func definitionOf(defID, peerID string, name, version string, methods map[string]*method) wire.Definition {
	mm := make(map[string]wire.MethodMeta, len(methods))
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := methods[n]
		meta := wire.MethodMeta{Type: "undefined", Arguments: make([]wire.ArgumentMeta, len(m.args)), Idempotent: m.idempotent}
		if m.hasOut {
			meta.Type = jsType(m.fn.Type().Out(0))
		}
		for i, a := range m.args {
			meta.Arguments[i] = wire.ArgumentMeta{Index: i, Type: jsType(a)}
		}
		mm[n] = meta
	}
	return wire.Definition{
		ID:     defID,
		PeerID: peerID,
		Meta: wire.ServiceMeta{
			Name:       name,
			Version:    version,
			Properties: map[string]wire.PropertyMeta{},
			Methods:    mm,
		},
	}
}
