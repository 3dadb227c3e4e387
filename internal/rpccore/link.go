package rpccore

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/rpclink"
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

// PublicValue returns v, a value decoded into an empty interface, with the
// values of wire's extension types inside it replaced by what a user can
// name: undefined by nil, a definition by its rpc.ServiceDescription, a
// TitanError or JS Error by an *rpc.Error, a reference by the id of the
// definition it refers to. Maps and slices are changed in place.
func PublicValue(v any) any {
	switch x := v.(type) {
	case wire.Undefined:
		return nil
	case wire.Definition:
		return Describe(x)
	case *wire.Definition:
		return Describe(*x)
	case wire.TitanError, *wire.TitanError, wire.JSError, *wire.JSError:
		return fromWire(x)
	case wire.Reference:
		return x.DefID
	case []any:
		for i := range x {
			x[i] = PublicValue(x[i])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = PublicValue(e)
		}
	}
	return v
}
