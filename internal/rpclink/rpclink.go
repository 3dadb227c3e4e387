// Package rpclink lets internal/rpccore build the values of package rpc
// whose fields are unexported (a *rpc.Service, an rpc.Result, an *rpc.Args):
// rpc registers its constructors in its init, once. Values of rpc's types
// cross as any; rpccore asserts them in one place (link.go).
package rpclink

import (
	"context"

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
	// DecodeMax is the cap of the decode budget of its results (see
	// wire.Budget); Trusted for results this process encoded itself.
	DecodeMax() int64
}

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
