package rpccore

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// The only place that asserts the values package rpc's constructors
// return (internal/rpclink).

func newService(def wire.Definition, h rpclink.Handle) *rpc.Service {
	return rpclink.Get().NewService(def, h).(*rpc.Service)
}

func serviceDef(svc *rpc.Service) wire.Definition { return rpclink.Get().Definition(svc) }

func newResult(raw []byte, max int64) rpc.Result {
	return rpclink.Get().NewResult(raw, max).(rpc.Result)
}

func newArgs(dec *msgpack.Decoder, n int, argErr func(error) error) *rpc.Args {
	return rpclink.Get().NewArgs(dec, n, argErr).(*rpc.Args)
}

// Describe returns the description of def, as users see a service.
func Describe(def wire.Definition) rpc.ServiceDescription {
	return rpclink.Get().Describe(def).(rpc.ServiceDescription)
}

// PublicValue returns v, a value decoded into an empty interface, with
// the values of wire's extension types inside it replaced by what a user
// can name (see package rpc's Result.Decode). Maps and slices are changed
// in place.
func PublicValue(v any) any { return rpclink.Get().PublicValue(v) }

func init() { streamcore.PublicValue = PublicValue }
