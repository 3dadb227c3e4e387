// Package rpclink lets internal/rpccore build the values of package rpc
// whose fields are unexported (a *rpc.Service, an rpc.Result, an *rpc.Args):
// rpc registers its constructors in its init, once. Values of rpc's types
// cross as any; rpccore asserts them in one place (link.go).
package rpclink

import (
	"context"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
)

// Handle is what a *rpc.Service calls through: a connection to a peer, a
// peer that reconnects, or the registry of this node.
type Handle interface {
	// Invoke calls method of the service target and returns its encoded
	// result.
	Invoke(ctx context.Context, target, method string, args []any) ([]byte, error)
	// OpenStream calls a method that produces a stream and returns the
	// stream.
	OpenStream(ctx context.Context, target, method string, args []any) (*streamcore.Inbound, error)
	// PeerID is the id of the node that serves the service.
	PeerID() string
	// GetProperty reads the property name of the service target (GET)
	// and returns its encoded value.
	GetProperty(ctx context.Context, target, name string) ([]byte, error)
	// SetProperty writes the property name of the service target (SET).
	SetProperty(ctx context.Context, target, name string, v any) error
	// Bind returns the handle that calls a service the peer behind this
	// handle handed out in a result: bound to the connection the result
	// came over (nil when there is none). When childID is not empty it also
	// takes a hold on that child service, whose Release sends
	// unref_service when the last hold of the connection goes.
	Bind(childID string) (Handle, Held)
	// DecodeMax is the cap of the decode budget of its results (see
	// wire.Budget); Trusted for results this process encoded itself.
	DecodeMax() int64
}

// Held is a hold on a child service (see Handle.Hold).
type Held interface {
	Release(ctx context.Context) error
}

// PropertyCell is an rpc.Property or rpc.PropertyFunc field as the engine
// reads and writes it.
type PropertyCell interface {
	PropertyType() reflect.Type
	Writable() bool
	GetAny() (any, error)
	SetFrom(dec *msgpack.Decoder) error
	Bind(notify func(any))
}

// SetterError is an error a PropertyFunc's Set returned: it goes to the
// peer as is, not as an argument error.
type SetterError struct{ Err error }

func (e SetterError) Error() string { return e.Err.Error() }
func (e SetterError) Unwrap() error { return e.Err }

// Trusted is DecodeMax of results this process encoded itself: they decode
// without a budget.
const Trusted = -1

// Funcs are package rpc's constructors.
type Funcs struct {
	// NewService returns a *rpc.Service for def that calls through h.
	NewService func(def wire.Definition, h Handle) any
	// Definition returns the definition of a *rpc.Service.
	Definition func(svc any) wire.Definition
	// Describe returns the rpc.ServiceDescription of def.
	Describe func(def wire.Definition) any
	// FromWire returns the *rpc.Error of the data of an error response.
	FromWire func(v any) error
	// PublicValue replaces the wire values inside a value decoded into an
	// empty interface by rpc's (see rpc.Result.Decode).
	PublicValue func(v any) any
	// NewResult returns an rpc.Result of raw, decoded within max.
	NewResult func(raw []byte, max int64) any
	// IsCellType reports whether a struct field of type t is an
	// rpc.Property or rpc.PropertyFunc.
	IsCellType func(t reflect.Type) bool
	// CellOf returns the property at ptr, a pointer to a field of a type
	// IsCellType accepts.
	CellOf func(ptr any) PropertyCell
	// RefOf returns the qualified name and value of an rpc.Ref.
	RefOf func(v any) (qualifiedName string, value any, ok bool)
	// NewArgs returns an *rpc.Args of the n values of dec; argErr turns a
	// decoding error into the error Args.Next returns.
	NewArgs func(dec *msgpack.Decoder, n int, argErr func(error) error) any
}

var funcs *Funcs

// Register is called once, by package rpc's init.
func Register(f Funcs) {
	if funcs != nil {
		panic("rpclink: Register called twice")
	}
	funcs = &f
}

// Get returns what package rpc registered.
func Get() *Funcs {
	if funcs == nil {
		panic("rpclink: package rpc is not linked (import it)")
	}
	return funcs
}
